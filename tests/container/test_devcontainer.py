"""The dev containers opened as GitHub Codespaces and VS Code open them.

The Dev Containers CLI (@devcontainers/cli, the reference implementation of the
spec both follow) builds and starts `.devcontainer/devcontainer.json` on a fresh
clone whose files belong to a host user other than uid 1000, run as that user
(so `updateRemoteUserUID` maps the container's student onto it, as on a Linux
laptop), and `devcontainer exec` checks what a student meets in the terminal.

The one change to the committed configuration is where the build finds its
inputs: the local Debian base, torch from PyPI and the smoke assets (the
published base image, the CPU wheel index and the real datasets cannot be
reached here). The image the container test built with the same arguments
stands in for the published one, so the build reuses its layers as `cacheFrom`
does in a Codespace.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import json5
import pytest

from .conftest import ARTIFACTS, BASE_IMAGE, ROOT, record_timings, sh

pytestmark = pytest.mark.timeout(2700)

HOST_USER = "mlsafety-host"
HOST_UID = 1234
LABEL = "mlsafety.test=devcontainer"
CONFIG = ROOT / ".devcontainer" / "devcontainer.json"
GPU_CONFIG = ROOT / ".devcontainer" / "gpu" / "devcontainer.json"
BUILD_ARGS = {"BASE_IMAGE": BASE_IMAGE, "TORCH_INDEX": "", "ASSET_PROFILES": "smoke"}


def cli() -> str:
    path = shutil.which("devcontainer")
    assert path, "the Dev Containers CLI is missing: run `make test-container` (it installs it)"
    return path


def as_host(*cmd: str, timeout: float = 1800, check: bool = True, env: dict | None = None):
    """Run a command as the host user who owns the clone, as a student's shell would."""
    extra = [f"{k}={v}" for k, v in (env or {}).items()]
    home = f"HOME=/home/{HOST_USER}"
    return sh(
        ["runuser", "-u", HOST_USER, "--", "env", home, *extra, *cmd], timeout=timeout, check=check
    )


@pytest.fixture(scope="session")
def host_user():
    """A host account with uid 1234 that may use the Docker engine."""
    if subprocess.run(["id", "-u", HOST_USER], capture_output=True).returncode != 0:
        sh(["groupadd", "-f", "docker"])
        sh(["useradd", "-m", "-u", str(HOST_UID), "-G", "docker", HOST_USER])
    socket = Path("/var/run/docker.sock")
    if socket.exists():
        sh(["chgrp", "docker", str(socket)])
        socket.chmod(0o660)
    return HOST_USER


@pytest.fixture(scope="session")
def clone(host_user):
    """A fresh clone of this checkout (plus its uncommitted files), owned by the host user."""
    base = Path(tempfile.mkdtemp(prefix="mlsafety-devcontainer-"))
    base.chmod(0o755)
    work = base / "mlsafety-labs"
    sh(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(work)])
    listed = subprocess.run(
        ["git", "ls-files", "-cmo", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = ROOT / name.decode()
        if source.is_file():
            dest = work / name.decode()
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest)
    copy_extra_certificates(work)
    sh(["chown", "-R", f"{HOST_UID}:{HOST_UID}", str(base)])
    yield work
    shutil.rmtree(base, ignore_errors=True)


def copy_extra_certificates(work: Path) -> None:
    """The host's extra CA certificates, which the container test puts in
    docker/certs/ for the builds (git ignores them, so a clone lacks them): a
    student behind a TLS-inspecting proxy puts them there the same way."""
    for cert in (ROOT / "docker" / "certs").glob("*.crt"):
        shutil.copy2(cert, work / "docker" / "certs" / cert.name)


def config_for(work: Path, source: Path = CONFIG) -> Path:
    """The committed configuration with the build arguments of this machine, in a
    folder of its own under the clone's .devcontainer/ (the CLI takes only files
    named devcontainer.json), its build paths pointing at the same files."""
    config = json5.loads(source.read_text())
    folder = work / ".devcontainer" / ("test-gpu" if source == GPU_CONFIG else "test-cpu")
    folder.mkdir(parents=True, exist_ok=True)
    build = config["build"]
    for key in ("dockerfile", "context"):
        target = work / (source.parent / build[key]).resolve().relative_to(ROOT)
        build[key] = os.path.relpath(target, folder)
    build["args"] = {**build.get("args", {}), **BUILD_ARGS}
    path = folder / "devcontainer.json"
    path.write_text(json.dumps(config, indent=2))
    for made in (folder, path):
        os.chown(made, HOST_UID, HOST_UID)
    return path


class Opened:
    def __init__(self, work: Path, config: Path, result: dict, seconds: float):
        self.work, self.config, self.result, self.seconds = work, config, result, seconds

    def exec(self, *cmd: str, timeout: float = 900, check: bool = True):
        return as_host(
            cli(),
            "exec",
            "--workspace-folder",
            str(self.work),
            "--config",
            str(self.config),
            "--id-label",
            LABEL,
            *cmd,
            timeout=timeout,
            check=check,
        )


def remove_containers(label: str = LABEL) -> None:
    """The test's dev containers and the images the CLI built for them (each
    clone's path gives them a new name, so they would pile up run after run)."""
    ids = sh(["docker", "ps", "-aq", "--filter", f"label={label}"], check=False).stdout.split()
    if not ids:
        return
    images = set(
        sh(["docker", "inspect", "-f", "{{.Config.Image}}", *ids], check=False).stdout.split()
    )
    sh(["docker", "rm", "-f", *ids], check=False)
    # vsc-<folder>-<hash>-uid (the one run) sits on vsc-<folder>-<hash> (the build)
    built = {name for name in images if name.startswith("vsc-")}
    built |= {name.removesuffix("-uid") for name in built}
    if built:
        sh(["docker", "rmi", "-f", *sorted(built)], check=False)


@pytest.fixture(scope="session")
def opened(clone, cpu_image):
    """`devcontainer up` on the clone, as the host user: what a student's first open does."""
    remove_containers()
    # the image the container test built stands in for the published one (cacheFrom)
    published = json5.loads(CONFIG.read_text())["build"]["cacheFrom"]
    sh(["docker", "tag", cpu_image, published])
    config = config_for(clone)
    started = time.perf_counter()
    up = as_host(
        cli(),
        "up",
        "--workspace-folder",
        str(clone),
        "--config",
        str(config),
        "--id-label",
        LABEL,
        "--log-level",
        "info",
        check=False,
    )
    seconds = time.perf_counter() - started
    (ARTIFACTS / "devcontainer-up.log").write_text(up.stdout + up.stderr)
    lines = [line for line in up.stdout.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else {}
    assert up.returncode == 0 and result.get("outcome") == "success", (
        f"devcontainer up failed ({up.returncode}); see artifacts/devcontainer-up.log:\n"
        f"{up.stdout[-3000:]}\n{up.stderr[-3000:]}"
    )
    yield Opened(clone, config, result, seconds)
    remove_containers()


def record(**timings: float) -> None:
    record_timings("devcontainer", **timings)


def test_up_runs_as_the_student_and_post_create_succeeded(opened):
    assert opened.result["remoteUser"] == "student"
    print(f"\ndevcontainer up took {opened.seconds:.0f} s (layers of the published image)")
    record(up_from_published_layers_s=opened.seconds)
    hook = opened.work / ".git" / "hooks" / "pre-commit"
    assert hook.exists(), "postCreateCommand (pre-commit install) did not run"
    assert hook.stat().st_uid == HOST_UID


def test_the_interpreter_in_the_settings_has_the_pinned_torch(opened):
    settings = json5.loads(CONFIG.read_text())["customizations"]["vscode"]["settings"]
    python = settings["python.defaultInterpreterPath"]
    out = opened.exec(
        python, "-c", "import torch, torchvision; print(torch.__version__, torchvision.__version__)"
    )
    pins = dict(
        line.split("==")
        for line in (ROOT / "environments" / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    torch_version, vision_version = out.stdout.split()[-2:]
    assert torch_version.split("+")[0] == pins["torch"]
    assert vision_version.split("+")[0] == pins["torchvision"]


def test_the_kernel_is_registered(opened):
    out = opened.exec("jupyter", "kernelspec", "list", "--json")
    names = [k["spec"]["display_name"] for k in json.loads(out.stdout)["kernelspecs"].values()]
    assert "Python (ML Safety)" in names, names


def test_the_student_is_the_host_user_and_files_belong_to_them(opened):
    ids = opened.exec("sh", "-c", "id -u; id -un").stdout.split()
    assert ids[-2:] == [str(HOST_UID), "student"], (
        "updateRemoteUserUID maps student to the host uid"
    )
    opened.exec("sh", "-c", "echo notes > labs/my-notes.txt")
    written = opened.work / "labs" / "my-notes.txt"
    try:
        assert written.stat().st_uid == HOST_UID, (
            "a file written in the workspace belongs to the host user"
        )
    finally:
        written.unlink(missing_ok=True)


def test_make_test_week3_grades_the_opened_workspace(opened):
    stub = opened.work / "labs" / "week03_adversarial" / "attacks.py"
    original = stub.read_text()
    try:
        started = time.perf_counter()
        opened.exec("cp", "solutions/week03_adversarial/attacks.py", "labs/week03_adversarial/")
        graded = opened.exec("make", "test-week3", check=False)
        record(first_make_test_week3_s=time.perf_counter() - started)
        assert re.search(r"pgd_linf\s+core\s+PASS", graded.stdout), graded.stdout[-2000:]
        assert "graded functions pass" in graded.stdout, "the self-check table"
    finally:
        stub.write_text(original)
        os.chown(stub, HOST_UID, HOST_UID)
    record(
        open_to_passing_week3_s=opened.seconds
        + json.loads((ARTIFACTS / "devcontainer-timings.json").read_text())[
            "first_make_test_week3_s"
        ]
    )


def test_jupyterlab_answers_on_the_forwarded_port_with_a_token(opened):
    """`make lab` in the terminal, as the README says; VS Code forwards port 8888."""
    opened.exec("sh", "-c", "nohup make lab PROFILE=smoke > /tmp/lab.log 2>&1 &")
    probe = (
        "import re, sys, time, urllib.request, urllib.error\n"
        "deadline = time.time() + 180\n"
        "while time.time() < deadline:\n"
        "    # the lab's own line, printed once the server answers; Jupyter's lines mask the token\n"
        "    m = re.search(r'mlsafety: JupyterLab on http://127.0.0.1:(\\d+)/lab\\?token=(\\S+)', open('/tmp/lab.log').read())\n"
        "    if m:\n"
        "        try:\n"
        "            base = 'http://127.0.0.1:' + m.group(1)\n"
        "            ok = urllib.request.urlopen(base + '/api/status?token=' + m.group(2), timeout=5).status\n"
        "            try:\n"
        "                urllib.request.urlopen(base + '/api/status', timeout=5)\n"
        "                bare = 200\n"
        "            except urllib.error.HTTPError as err:\n"
        "                bare = err.code\n"
        "            print(m.group(1), ok, bare)\n"
        "            sys.exit(0)\n"
        "        except OSError:\n"
        "            pass\n"
        "    time.sleep(1)\n"
        "print(open('/tmp/lab.log').read())\n"
        "sys.exit(1)\n"
    )
    out = opened.exec("python", "-c", probe, check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    port, with_token, without = out.stdout.split()[-3:]
    assert port == "8888" and with_token == "200" and without == "403", out.stdout


def test_the_gpu_configuration_as_the_cli_reads_it(clone):
    config = config_for(clone, GPU_CONFIG)
    out = as_host(
        cli(), "read-configuration", "--workspace-folder", str(clone), "--config", str(config)
    )
    read = json.loads([line for line in out.stdout.splitlines() if line.startswith("{")][-1])
    configuration = read["configuration"]
    assert configuration["runArgs"] == ["--gpus", "all"]
    built = (config.parent / configuration["build"]["dockerfile"]).resolve()
    assert built == (clone / "Dockerfile.cuda").resolve()
    assert configuration["remoteUser"] == "student"


def test_docker_not_running_is_one_clear_line(clone):
    config = config_for(clone)
    out = as_host(
        cli(),
        "up",
        "--workspace-folder",
        str(clone),
        "--config",
        str(config),
        "--id-label",
        "mlsafety.test=no-docker",
        timeout=120,
        check=False,
        env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"},
    )
    assert out.returncode != 0
    assert re.search(r"docker", out.stdout + out.stderr, re.I), out.stdout + out.stderr
    left = sh(["docker", "ps", "-aq", "--filter", "label=mlsafety.test=no-docker"]).stdout.split()
    assert not left, "nothing half-configured is left behind"


def test_a_workspace_the_student_cannot_write_is_one_clear_line(cpu_image, tmp_path):
    """Opened by root (no uid to map onto), a root-owned clone is not the student's:
    the post-create step says so in one line instead of half-configuring it."""
    work = tmp_path / "rooted" / "mlsafety-labs"
    sh(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(work)])
    for name in ("docker/post-create.sh", ".devcontainer/devcontainer.json"):
        shutil.copy2(ROOT / name, work / name)
    copy_extra_certificates(work)
    config = config_for(work)
    os.chown(config, 0, 0)
    label = "mlsafety.test=rooted"
    try:
        out = sh(
            [
                cli(),
                "up",
                "--workspace-folder",
                str(work),
                "--config",
                str(config),
                "--id-label",
                label,
            ],
            timeout=1800,
            check=False,
        )
        said = out.stdout + out.stderr
        assert "mlsafety: the workspace" in said and "cannot write to it" in said, said[-3000:]
        assert not (work / ".git" / "hooks" / "pre-commit").exists(), "no hooks half-installed"
    finally:
        remove_containers(label)
