"""`make lab`'s server: a real JupyterLab on loopback that refuses requests without the token."""

import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from mlsafety import SetupError
from mlsafety.lab import lab_command, lab_token

from .conftest import BIN, ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def test_a_token_is_always_set(monkeypatch):
    monkeypatch.delenv("JUPYTER_TOKEN", raising=False)
    token, generated = lab_token()
    assert generated and len(token) >= 24
    monkeypatch.setenv("JUPYTER_TOKEN", "   ")
    assert lab_token()[0].strip()  # blank means "generate one", never an open server
    monkeypatch.setenv("JUPYTER_TOKEN", "chosen")
    assert lab_token() == ("chosen", False)


def test_allow_root_only_for_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "--allow-root" not in lab_command(8888)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert "--allow-root" in lab_command(8888)
    assert "--ServerApp.ip=127.0.0.1" in lab_command(8888)


@pytest.mark.timeout(120)
def test_the_lab_server_answers_only_with_the_token():
    port = free_port()
    env = {**os.environ, "JUPYTER_TOKEN": "s3cret-token-for-test"}
    proc = subprocess.Popen(
        [str(BIN / "mlsafety"), "lab", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if status(f"{base}/api/status?token=s3cret-token-for-test") == 200:
                    break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("JupyterLab did not answer within 60 s")
        assert status(f"{base}/api/status") == 403
        assert status(f"{base}/api/status?token=wrong") == 403
        assert status(f"{base}/api/contents/labs?token=s3cret-token-for-test") == 200
        assert status(f"{base}/lab?token=s3cret-token-for-test") == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert f"http://127.0.0.1:{port}/lab?token=s3cret-token-for-test" in out


@pytest.mark.timeout(150)
def test_a_busy_port_moves_to_the_next_and_the_url_waits_for_the_server():
    token = "busy-port-token-for-test"
    with socket.socket() as taken:  # something else holds the preferred port on 127.0.0.1
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = subprocess.Popen(
            [str(BIN / "mlsafety"), "lab", "--port", str(port)],
            cwd=ROOT,
            env={**os.environ, "JUPYTER_TOKEN": token},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            lines = []
            for line in proc.stdout:  # the spec's timeout bounds a server that never answers
                lines.append(line)
                if "mlsafety: JupyterLab on http" in line:
                    break
            moved = [x for x in lines if f"port {port} is busy; using " in x]
            assert moved, f"no line says port {port} is busy: {lines}"
            chosen = int(re.search(r"using (\d+)", moved[0]).group(1))
            assert chosen != port and f"127.0.0.1:{chosen}/lab?token={token}" in lines[-1], lines
            assert not any(f":{port}/" in x for x in lines), f"a URL on the busy port: {lines}"
            # printed only once the server answered, so it answers at once
            assert status(f"http://127.0.0.1:{chosen}/api/status?token={token}") == 200
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.communicate(timeout=30)


def test_no_url_is_printed_for_a_server_that_stopped():
    gone = subprocess.Popen(["true"])
    gone.wait()  # a server process that has exited
    script = (
        "from mlsafety import lab; "
        f"lab._announce_when_ready({gone.pid}, 'http://127.0.0.1:{free_port()}', 't', ['URL'])"
    )
    result = subprocess.run(
        [str(BIN / "python"), "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1 and "URL" not in result.stdout, result.stdout
    assert "JupyterLab stopped before it answered" in result.stdout


def test_when_every_port_is_busy_the_message_names_the_variable(monkeypatch):
    from mlsafety import doctor
    from mlsafety.lab import pick_port

    monkeypatch.setattr(doctor, "port_free", lambda port, host="127.0.0.1": port == 9000)
    assert pick_port(8990) == 9000
    monkeypatch.setattr(doctor, "port_free", lambda port, host="127.0.0.1": False)
    with pytest.raises(SetupError, match=r"ports 8888 to 8908 are all in use.*make lab PORT="):
        pick_port(8888)
