"""Start JupyterLab for the labs: loopback only, always with a token.

The token comes from ``JUPYTER_TOKEN`` or is generated; it is never empty.
Jupyter refuses to run as root unless told to, so ``--allow-root`` is passed
only when the process really is root (containers, CI), never otherwise.

When the preferred port is taken the next free one is used, and said so. The
URL with the token is printed only once the server answers on it: a small
watcher process polls ``/api/status`` with the token while this process
becomes the server itself (so signals reach Jupyter as before).
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import time
import urllib.error
import urllib.request

from mlsafety import SetupError
from mlsafety.paths import repo_root

TOKEN_ENV = "JUPYTER_TOKEN"
PORT_SEARCH = 20  # ports tried after the preferred one
READY_TIMEOUT = float(os.environ.get("MLSAFETY_LAB_TIMEOUT", 120))  # seconds to answer


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


def pick_port(port: int, ip: str = "127.0.0.1") -> int:
    """``port`` when it is free on ``ip``, else the next free one after it."""
    from mlsafety.doctor import port_free

    for candidate in range(port, port + PORT_SEARCH + 1):
        if port_free(candidate, ip):
            return candidate
    raise SetupError(
        f"ports {port} to {port + PORT_SEARCH} are all in use on {ip}; "
        f"stop a running JupyterLab or choose another with `make lab PORT=<port>`"
    )


def server_answers(base: str, token: str, timeout: float = 2.0) -> bool:
    """Whether the Jupyter server at ``base`` answers ``/api/status`` with ``token``."""
    try:
        with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=timeout) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _announce_when_ready(server_pid: int, base: str, token: str, lines: list[str]):
    """Runs in a detached watcher: print ``lines`` once the server answers,
    or one line saying it did not. Never returns."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the server
    deadline = time.monotonic() + READY_TIMEOUT
    code = 1
    while True:
        if server_answers(base, token):
            for line in lines:
                print(line, flush=True)
            code = 0
            break
        try:
            os.kill(server_pid, 0)
        except ProcessLookupError:
            print(
                "mlsafety: JupyterLab stopped before it answered; see its messages above",
                flush=True,
            )
            break
        if time.monotonic() > deadline:
            print(
                f"mlsafety: JupyterLab did not answer on {base} within {READY_TIMEOUT:.0f} s; "
                f"see its messages above",
                flush=True,
            )
            break
        time.sleep(0.25)
    os._exit(code)


def _detach_watcher(*args) -> None:
    """Fork a watcher that outlives nothing: its parent exits at once (no
    zombie under the server), it polls the server and then exits."""
    child = os.fork()
    if child == 0:
        if os.fork() == 0:
            try:
                _announce_when_ready(*args)
            finally:
                os._exit(1)
        os._exit(0)
    os.waitpid(child, 0)


def run_lab(port: int = 8888, ip: str = "127.0.0.1", notebook: str | None = None) -> int:
    token, generated = lab_token()
    env = {**os.environ, TOKEN_ENV: token}
    chosen = pick_port(port, ip)
    if chosen != port:
        print(f"mlsafety: port {port} is busy; using {chosen}", flush=True)
    path = f"lab/tree/{notebook}" if notebook else "lab"
    host = "127.0.0.1" if ip in ("0.0.0.0", "127.0.0.1") else ip
    base = f"http://{host}:{chosen}"
    lines = [f"mlsafety: JupyterLab on {base}/{path}?token={token}"]
    if generated:
        lines.append(f"mlsafety: (token generated for this session; set {TOKEN_ENV} to choose one)")
    print(f"mlsafety: starting JupyterLab on {base} ...", flush=True)
    cmd = lab_command(chosen, ip)
    _detach_watcher(os.getpid(), base, token, lines)
    os.execvpe(cmd[0], cmd, env)
    return 0  # not reached
