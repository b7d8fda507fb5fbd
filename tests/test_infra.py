"""Static checks of the images, the compose file and the dev containers: lint,
validation, and the contracts they share. The container test
(`make test-container`) then builds and runs them for real."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import json5
import pytest

from .conftest import ROOT

TOOLS = ROOT / ".tools"
DOCKERFILES = ["Dockerfile", "Dockerfile.cuda"]
SHARED_STEPS = [
    "build.sh system",
    'build.sh python "${TORCH_INDEX}"',
    "build.sh toolkit",
    "build.sh assets",
]


def tool(*parts: str) -> str:
    path = TOOLS.joinpath(*parts)
    assert path.exists(), (
        f"{path.relative_to(ROOT)} is missing: run `make test` (it installs .tools/)"
    )
    return str(path)


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120, **kwargs)


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_hadolint(dockerfile):
    result = run([tool("bin", "hadolint"), "--no-color", dockerfile])
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_of_the_image_scripts():
    scripts = [
        "docker/build.sh",
        "docker/entrypoint.sh",
        "docker/post-create.sh",
        "scripts/container_test.sh",
    ]
    result = run([tool("bin", "shellcheck"), *scripts])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerfile_contract(dockerfile):
    text = (ROOT / dockerfile).read_text()
    assert "ARG BASE_IMAGE=debian:bookworm-slim\nFROM ${BASE_IMAGE}" in text
    assert "# syntax=" not in text and "--mount" not in text, (
        "plain Docker only: no BuildKit syntax"
    )
    assert re.search(r"^ARG TORCH_INDEX=", text, re.M), "the torch wheel index is a build argument"
    assert "COPY docker/certs/ /tmp/extra-certs/" in text, "optional extra CA certificates"
    for step in SHARED_STEPS:
        assert step in text, f"{dockerfile} should run the shared step `{step}`"
    assert "USER 1000:1000" in text
    assert "HEALTHCHECK" in text and "/api" in text
    # an init process as PID 1; without -s, which QEMU's user-mode emulation cannot serve
    assert re.search(r'ENTRYPOINT \["/usr/bin/tini", "--", ', text), "an init process"


def test_the_two_dockerfiles_differ_only_in_flavour():
    """One image, two torch flavours: the instructions are the same apart from
    the index, the baked profiles and the GPU-only settings."""

    def instructions(name):
        text = (ROOT / name).read_text().replace("\\\n", " ")
        return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]

    cpu, cuda = instructions("Dockerfile"), instructions("Dockerfile.cuda")
    allowed = re.compile(r"^(ARG TORCH_INDEX=|ARG ASSET_PROFILES=|ENV MLSAFETY_GPU_IMAGE=1 )")
    extra = [line for line in set(cpu) ^ set(cuda) if not allowed.match(line)]
    assert not extra, f"unexpected differences between the Dockerfiles: {extra}"
    assert [line for line in cpu if not allowed.match(line)] == [
        line for line in cuda if not allowed.match(line)
    ], "same instructions in the same order"


def test_dockerignore_keeps_local_state_out():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".git", ".venv", "data", ".env"):
        assert entry in ignored
    assert "docker/certs/*.crt" in (ROOT / ".gitignore").read_text(), "never commit a certificate"


def compose_config(*args: str) -> dict:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(ROOT)}  # no .env values leak in
    result = run([tool("compose", "docker-compose"), *args, "config", "--format", "json"], env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compose_file_valid_for_compose_v2():
    cpu = compose_config()
    assert list(cpu["services"]) == ["lab"], "plain `docker compose up` starts the CPU service only"
    both = compose_config("--profile", "gpu")["services"]
    assert set(both) == {"lab", "lab-gpu"}
    for name, service in both.items():
        assert "init" not in service, f"{name}: the image's tini is PID 1, no second init"
        (port,) = service["ports"]
        assert (port["host_ip"], port["published"], port["target"]) == ("127.0.0.1", "8888", 8888)
        (volume,) = service["volumes"]
        assert (volume["type"], volume["source"], volume["target"]) == (
            "bind",
            str(ROOT),
            "/home/student/work",
        )
        assert "/api" in " ".join(service["healthcheck"]["test"])
        assert "JUPYTER_TOKEN" in service["environment"]
    assert both["lab"]["build"]["dockerfile"] == "Dockerfile"
    assert both["lab-gpu"]["build"]["dockerfile"] == "Dockerfile.cuda"
    (device,) = both["lab-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert device["capabilities"] in (["gpu"], [["gpu"]])  # v2 prints one list per set
    assert device.get("count") in ("all", -1)


@pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="docker-compose 1.29 not installed (CI installs Debian's)",
)
def test_compose_file_valid_for_compose_v1():
    version = run(["docker-compose", "version", "--short"]).stdout.strip()
    if not version.startswith("1."):
        pytest.skip(f"docker-compose on PATH is {version}, not 1.x")
    for args in ([], ["--profile", "gpu"]):
        result = run(["docker-compose", *args, "config", "-q"])
        assert result.returncode == 0, result.stderr


def test_env_example_lists_every_compose_variable():
    used = set(re.findall(r"\$\{([A-Z_]+)", (ROOT / "docker-compose.yml").read_text()))
    documented = set(re.findall(r"^#? ?([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert used - {"BASE_IMAGE"} <= documented, used - documented


DEVCONTAINERS = {
    "cpu": (ROOT / ".devcontainer" / "devcontainer.json", "Dockerfile"),
    "gpu": (ROOT / ".devcontainer" / "gpu" / "devcontainer.json", "Dockerfile.cuda"),
}


@pytest.mark.parametrize("flavour", DEVCONTAINERS)
def test_devcontainer(flavour):
    path, dockerfile = DEVCONTAINERS[flavour]
    config = json5.loads(path.read_text())  # JSON with comments
    build = config["build"]
    assert (path.parent / build["dockerfile"]).resolve() == ROOT / dockerfile
    assert (path.parent / build["context"]).resolve() == ROOT
    assert config["remoteUser"] == "student"
    vscode = config["customizations"]["vscode"]
    for extension in ("ms-python.python", "ms-toolsai.jupyter", "ms-python.vscode-pylance"):
        assert extension in vscode["extensions"]
    venv = re.search(r"VIRTUAL_ENV=(\S+)", (ROOT / dockerfile).read_text()).group(1)
    assert vscode["settings"]["python.defaultInterpreterPath"] == f"{venv}/bin/python"
    assert vscode["settings"]["python.testing.pytestEnabled"] is True
    assert 8888 in config["forwardPorts"]
    assert config["postCreateCommand"] == "sh docker/post-create.sh"
    assert "pre-commit install" in (ROOT / "docker" / "post-create.sh").read_text()
    assert config["hostRequirements"]["cpus"] >= 2
    if flavour == "gpu":
        assert config["runArgs"] == ["--gpus", "all"]
        assert "gpu" not in config.get("hostRequirements", {}), (
            "use runArgs, not hostRequirements.gpu"
        )
    else:
        assert "runArgs" not in config


def test_vscode_settings_parse():
    for name in ("settings.json", "extensions.json"):
        json5.loads((ROOT / ".vscode" / name).read_text())


def test_the_repository_workflows_pass_actionlint():
    """The images workflow (both platforms of the CPU image, the manifest job) and
    any other workflow of the repository, as GitHub would read them."""
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    assert workflows, "no workflows under .github/workflows"
    lint = subprocess.run(
        [tool("bin", "actionlint"), *map(str, workflows)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_the_cpu_image_is_published_for_amd64_and_arm64_and_cuda_for_amd64():
    import yaml

    jobs = yaml.safe_load((ROOT / ".github" / "workflows" / "images.yml").read_text())["jobs"]
    builds = {
        (m["flavour"], m["platform"]) for m in jobs["publish"]["strategy"]["matrix"]["include"]
    }
    assert builds == {("cpu", "amd64"), ("cpu", "arm64"), ("cuda", "amd64")}, builds
    runners = {m["platform"]: m["runner"] for m in jobs["publish"]["strategy"]["matrix"]["include"]}
    assert runners["arm64"].endswith("-arm"), "the arm64 image is built natively, not emulated"
    joined = "\n".join(s.get("run", "") for s in jobs["manifest"]["steps"])
    assert "imagetools create" in joined and "cpu-arm64" in joined and "cpu-amd64" in joined
