"""JupyterHub for a class on one machine: every student gets their own server
from the lab image, in their own container, with their own copy of the labs.

Started by `make hub` (deploy/jupyterhub/hub.sh), which runs this hub in a
container next to the students' containers. Every setting a facilitator may
change is an environment variable of deploy/jupyterhub/compose.yml (see
deploy/jupyterhub/README.md); the defaults suit a section of about 30.
"""

# ruff: noqa: F821  (`c`, the configuration object, is provided by JupyterHub)

import os
import sys

import docker.types


def env(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


# -- who may log in ------------------------------------------------------------
# NativeAuthenticator: students sign up at /hub/signup with a password; the
# admin (the facilitator, who signs up first under MLSAFETY_HUB_ADMIN) authorizes
# each one at /hub/authorize. Names are what the spawner can use as container
# and volume names.
ADMIN = env("MLSAFETY_HUB_ADMIN", "facilitator")
c.JupyterHub.authenticator_class = "nativeauthenticator.NativeAuthenticator"
c.Authenticator.admin_users = {ADMIN}
# who gets in is decided by the admin's authorization in NativeAuthenticator, so
# JupyterHub's own allow list (empty by default since JupyterHub 5) lets through
# every user the authenticator lets through
c.Authenticator.allow_all = True
c.NativeAuthenticator.open_signup = env("MLSAFETY_HUB_OPEN_SIGNUP", "false") == "true"
c.NativeAuthenticator.minimum_password_length = 8
c.NativeAuthenticator.check_common_password = True
c.NativeAuthenticator.allowed_failed_logins = 5
c.NativeAuthenticator.seconds_before_next_try = 60
# lower-case letters, digits, '-', '_' and '.', starting with a letter or digit:
# usable as a Docker container and volume name as they are
c.Authenticator.username_pattern = r"^[a-z0-9][a-z0-9_.-]{0,31}$"

# -- where the hub and its proxy listen --------------------------------------
# The proxy (configurable-http-proxy, from npm) is the only port published on the
# host, on 127.0.0.1 by default: put an HTTPS proxy (Caddy, nginx, Traefik) in
# front of it for a class (see README.md).
c.JupyterHub.bind_url = "http://:8000"
c.JupyterHub.hub_ip = "0.0.0.0"
c.JupyterHub.hub_connect_ip = env("MLSAFETY_HUB_CONNECT_IP", "mlsafety-hub")
DATA = env("MLSAFETY_HUB_DATA", "/srv/jupyterhub/data")
c.JupyterHub.cookie_secret_file = os.path.join(DATA, "jupyterhub_cookie_secret")
c.JupyterHub.db_url = "sqlite:///" + os.path.join(DATA, "jupyterhub.sqlite")
c.JupyterHub.cleanup_servers = True  # stopping the hub stops the students' servers

# -- the students' servers -----------------------------------------------------
c.JupyterHub.spawner_class = "dockerspawner.DockerSpawner"
CPU_IMAGE = env("MLSAFETY_HUB_IMAGE", "ghcr.io/mlsafety-labs/mlsafety-labs:cpu")
GPU_IMAGE = env("MLSAFETY_HUB_GPU_IMAGE", "")
if GPU_IMAGE:
    # the spawn page offers both; the GPU one asks Docker for the NVIDIA GPUs
    c.DockerSpawner.allowed_images = {
        "CPU (the cpu profile)": CPU_IMAGE,
        "GPU (CUDA image, the gpu profile)": GPU_IMAGE,
    }
else:
    c.DockerSpawner.image = CPU_IMAGE


def request_gpu(spawner):
    """The CUDA image gets every GPU of the machine (docker run --gpus all)."""
    if GPU_IMAGE and spawner.image == GPU_IMAGE:
        spawner.extra_host_config = {
            **spawner.extra_host_config,
            "device_requests": [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])],
        }


c.Spawner.pre_spawn_hook = request_gpu
c.DockerSpawner.network_name = env("MLSAFETY_HUB_NETWORK", "mlsafety-hub")
c.DockerSpawner.use_internal_ip = True
c.DockerSpawner.remove = True  # containers go; the volume with the student's work stays
c.DockerSpawner.pull_policy = "never"  # the image is built or pulled before the class
c.DockerSpawner.name_template = "mlsafety-{prefix}-{username}"
c.DockerSpawner.prefix = "student"
# each student's own copy of the labs: the image copies them into an empty volume
WORK = "/home/student/work"
c.DockerSpawner.volumes = {"mlsafety-hub-user-{username}": WORK}
c.DockerSpawner.notebook_dir = WORK
c.DockerSpawner.default_url = "/lab"
# the image's entrypoint (under tini) prepares the work folder, then runs this as uid 1000
c.DockerSpawner.cmd = ["jupyterhub-singleuser"]
c.DockerSpawner.environment = {
    "MLSAFETY_PROFILE": env("MLSAFETY_HUB_PROFILE", "cpu"),
    "MLSAFETY_REPO": WORK,
}
c.DockerSpawner.extra_create_kwargs = {"user": "1000:1000"}
# resources per student (the cpu profile: 2 cores and 4 GB run every notebook in 5 minutes)
c.DockerSpawner.cpu_limit = float(env("MLSAFETY_HUB_CPU_LIMIT", "2"))
c.DockerSpawner.mem_limit = env("MLSAFETY_HUB_MEM_LIMIT", "4G")
c.Spawner.start_timeout = int(env("MLSAFETY_HUB_START_TIMEOUT", "180"))
c.Spawner.http_timeout = int(env("MLSAFETY_HUB_HTTP_TIMEOUT", "120"))
c.JupyterHub.concurrent_spawn_limit = int(env("MLSAFETY_HUB_CONCURRENT_SPAWNS", "10"))

# -- idle servers are stopped -------------------------------------------------
CULL_AFTER = env("MLSAFETY_HUB_CULL_AFTER", "3600")
c.JupyterHub.load_roles = [
    {
        "name": "idle-culler",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": ["idle-culler"],
    }
]
c.JupyterHub.services = [
    {
        "name": "idle-culler",
        "command": [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={CULL_AFTER}"],
    }
]
