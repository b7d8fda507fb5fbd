import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture
def server():
    """A local HTTP server on 127.0.0.1 whose files misbehave on request (tests/http_server.py)."""
    from .http_server import LocalServer, start

    state = LocalServer()
    httpd = start(state)
    yield state
    httpd.shutdown()


@pytest.fixture(scope="session")
def smoke_copy(tmp_path_factory):
    """The offline digits written into a fresh folder (not the shared data root)."""
    from mlsafety.data import write_smoke_data

    return write_smoke_data(tmp_path_factory.mktemp("smoke") / "smoke")


def run(cmd, timeout=600, env=None, cwd=ROOT):
    """Run a command from the repository root; returns the CompletedProcess."""
    return subprocess.run(
        cmd,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
