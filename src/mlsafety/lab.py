"""Start JupyterLab for the labs: loopback only, always with a token.

The token comes from ``JUPYTER_TOKEN`` or is generated; it is never empty.
Jupyter refuses to run as root unless told to, so ``--allow-root`` is passed
only when the process really is root (containers, CI), never otherwise.
"""

from __future__ import annotations

import os
import secrets
import sys

from mlsafety.paths import repo_root

TOKEN_ENV = "JUPYTER_TOKEN"


def lab_token() -> tuple[str, bool]:
    """The token to use and whether it was generated here."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return token, False
    return secrets.token_urlsafe(24), True


def lab_command(port: int, ip: str = "127.0.0.1") -> list[str]:
    """The jupyter command line, without the token (it travels in the environment)."""
    cmd = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        f"--ServerApp.ip={ip}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={repo_root()}",
    ]
    cmd.append("--ServerApp.open_browser=False")  # the URL with the token is printed instead
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    return cmd


def run_lab(port: int = 8888, ip: str = "127.0.0.1", notebook: str | None = None) -> int:
    token, generated = lab_token()
    env = {**os.environ, TOKEN_ENV: token}
    path = f"lab/tree/{notebook}" if notebook else "lab"
    host = "127.0.0.1" if ip in ("0.0.0.0", "127.0.0.1") else ip
    print(f"mlsafety: JupyterLab on http://{host}:{port}/{path}?token={token}", flush=True)
    if generated:
        print(
            f"mlsafety: (token generated for this session; set {TOKEN_ENV} to choose one)",
            flush=True,
        )
    cmd = lab_command(port, ip)
    os.execvpe(cmd[0], cmd, env)
    return 0  # not reached
