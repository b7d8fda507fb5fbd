"""The class's hub, checked without Docker: the one-machine configuration as
JupyterHub loads it, the cluster values against the chart's classes, the compose
file, the hub's scripts and pins. The hub itself runs for real in the container
test (tests/container/test_hub.py)."""

import functools
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from .conftest import BIN, ROOT, run

HUB = ROOT / "deploy" / "jupyterhub"
PACKAGES = ROOT / ".hub"


def probe(*args: str, env: dict | None = None) -> dict:
    assert (PACKAGES / ".installed").exists(), "the hub's packages are missing: run `make test`"
    result = subprocess.run(
        [str(BIN / "python"), str(ROOT / "tests" / "hub_probe.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(PACKAGES), **(env or {})},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


@functools.cache
def _config(env: tuple, user: str) -> dict:
    return probe("config", str(HUB / "jupyterhub_config.py"), user, env=dict(env))


def config(env: dict | None = None, user: str = "alice") -> dict:
    return _config(tuple(sorted((env or {}).items())), user)


def test_every_setting_is_a_trait_of_the_class_it_configures():
    assert config()["unknown"] == []


def test_each_student_gets_their_own_server_from_the_lab_image():
    c = config({"MLSAFETY_HUB_IMAGE": "lab:cpu"}, user="alice")
    assert c["spawner"] == "dockerspawner.DockerSpawner" and c["image"] == "lab:cpu"
    assert c["container_name"] == "mlsafety-student-alice"
    assert c["volume_names"] == {
        "mlsafety-hub-user-alice": {"bind": "/home/student/work", "mode": "rw"}
    }, "a volume of the student's own holds their copy of the labs"
    assert c["notebook_dir"] == "/home/student/work"
    assert c["cmd"] == ["jupyterhub-singleuser"]
    assert c["environment"]["MLSAFETY_REPO"] == "/home/student/work"
    assert c["remove"] is True, "containers go, volumes stay"


def test_resources_culling_and_authenticator():
    c = config({"MLSAFETY_HUB_CPU_LIMIT": "1.5", "MLSAFETY_HUB_MEM_LIMIT": "3G"})
    assert c["cpu_limit"] == 1.5 and c["mem_limit"] == 3 * 1024**3
    assert c["services"] == ["idle-culler"]
    assert "--timeout=3600" in c["culler"][0]
    assert c["authenticator"] == "nativeauthenticator.NativeAuthenticator"
    assert c["admin_users"] == ["facilitator"] and c["open_signup"] is False
    assert config({"MLSAFETY_HUB_ADMIN": "ta1"})["admin_users"] == ["ta1"]
    assert c["cookie_secret_file"].startswith("/srv/jupyterhub/data/"), "kept in the hub's volume"


def test_usernames_the_spawner_can_use():
    pattern = re.compile(config()["username_pattern"])
    for good in ("alice", "bob-2", "s.lee", "a_b"):
        assert pattern.match(good), good
    for bad in ("Alice", "-x", "a b", "é", "x" * 33, "a/b", ""):
        assert not pattern.match(bad), bad


def test_the_gpu_profile_asks_docker_for_the_gpus():
    c = config({"MLSAFETY_HUB_IMAGE": "lab:cpu", "MLSAFETY_HUB_GPU_IMAGE": "lab:cuda"})
    assert set(c["allowed_images"].values()) == {"lab:cpu", "lab:cuda"}
    assert c["gpu_requests"] == {"lab:cpu": [], "lab:cuda": [[["gpu"]]]}


def test_compose_file_publishes_only_the_proxy_on_localhost():
    compose = yaml.safe_load((HUB / "compose.yml").read_text())
    hub = compose["services"]["hub"]
    assert hub["ports"] == ["${MLSAFETY_HUB_BIND:-127.0.0.1}:${MLSAFETY_HUB_PORT:-8000}:8000"]
    assert "/var/run/docker.sock:/var/run/docker.sock" in hub["volumes"]
    assert compose["networks"]["hub"]["name"] == hub["environment"]["MLSAFETY_HUB_NETWORK"]
    assert hub["container_name"] == hub["environment"]["MLSAFETY_HUB_CONNECT_IP"]
    documented = (HUB / "README.md").read_text()
    for variable in re.findall(r"\$\{(MLSAFETY_HUB_[A-Z_]+)", (HUB / "compose.yml").read_text()):
        assert variable in documented, f"{variable} is not in deploy/jupyterhub/README.md"


def test_compose_file_is_valid():
    compose = ROOT / ".tools" / "compose" / "docker-compose"
    result = run([str(compose), "-f", str(HUB / "compose.yml"), "config", "-q"])
    assert result.returncode == 0, result.stderr


def test_hub_image_lint_and_scripts():
    hadolint = ROOT / ".tools" / "bin" / "hadolint"
    lint = run([str(hadolint), "--ignore", "DL3008", "--ignore", "DL3016", str(HUB / "Dockerfile")])
    assert lint.returncode == 0, lint.stdout + lint.stderr
    shellcheck = run([str(ROOT / ".tools" / "bin" / "shellcheck"), str(HUB / "hub.sh")])
    assert shellcheck.returncode == 0, shellcheck.stdout


def test_the_lab_image_and_the_hub_run_the_same_jupyterhub():
    def pins(path):
        lines = path.read_text().splitlines()
        return dict(line.split("==") for line in lines if "==" in line and not line.startswith("#"))

    hub, lab = (
        pins(ROOT / "environments" / "hub.txt"),
        pins(ROOT / "environments" / "requirements.txt"),
    )
    assert lab.get("jupyterhub") == hub["jupyterhub"], (
        "jupyterhub-singleuser in the lab image must match the hub's JupyterHub"
    )
    for package in ("dockerspawner", "jupyterhub-nativeauthenticator", "jupyterhub-kubespawner"):
        assert package not in lab, f"{package} belongs to the hub, not the lab environment"


def test_cluster_values_use_the_charts_classes_and_kubespawner_traits():
    found = probe("z2jh", str(HUB / "z2jh" / "values.yaml"))
    assert found["problems"] == []
    gpu = [p for p in found["profiles"] if "nvidia.com/gpu" in str(p["override"])]
    assert len(gpu) == 1 and len(found["profiles"]) == 2, "a CPU and a GPU profile"
    override = gpu[0]["override"]
    assert override["extra_resource_limits"] == {"nvidia.com/gpu": "1"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in override[
        "tolerations"
    ]


def test_cluster_values_match_the_one_machine_hub():
    values = yaml.safe_load((HUB / "z2jh" / "values.yaml").read_text())
    single = values["singleuser"]
    one_machine = config()
    assert f"{single['image']['name']}:{single['image']['tag']}" == one_machine["image"]
    assert single["uid"] == 1000 and single["cmd"] == "jupyterhub-singleuser"
    assert single["storage"]["type"] == "dynamic"
    assert single["storage"]["homeMountPath"] == one_machine["notebook_dir"]
    assert single["extraEnv"]["MLSAFETY_REPO"] == one_machine["notebook_dir"]
    assert values["cull"]["enabled"] and values["cull"]["timeout"] == 3600
    assert values["prePuller"]["hook"]["enabled"] and values["prePuller"]["continuous"]["enabled"]
    assert values["prePuller"]["pullProfileListImages"], "the GPU image is pre-pulled too"
    assert (
        values["hub"]["config"]["Authenticator"]["username_pattern"]
        == one_machine["username_pattern"]
    )


def test_cluster_values_against_the_charts_schema():
    """With the chart at hand (`helm pull jupyterhub/jupyterhub --untar`, then
    MLSAFETY_Z2JH_CHART=<its folder>), the values merged into the chart's defaults
    validate against its values.schema.yaml."""
    chart = os.environ.get("MLSAFETY_Z2JH_CHART")
    if not chart:
        pytest.skip("set MLSAFETY_Z2JH_CHART to a jupyterhub chart folder to validate the schema")
    import jsonschema

    def merge(base, extra):
        if isinstance(base, dict) and isinstance(extra, dict):
            return {**base, **{k: merge(base.get(k), v) for k, v in extra.items()}}
        return extra

    schema = yaml.safe_load((Path(chart) / "values.schema.yaml").read_text())
    defaults = yaml.safe_load((Path(chart) / "values.yaml").read_text())
    values = yaml.safe_load((HUB / "z2jh" / "values.yaml").read_text())
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(merge(defaults, values)))
    assert not errors, [f"{e.json_path}: {e.message}" for e in errors]
