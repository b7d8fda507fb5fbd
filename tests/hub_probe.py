"""What the hub's configurations set, as JSON, read with the hub's own packages
(run by tests/test_hub.py with .hub/ on the path, in a process of its own):

    hub_probe.py config deploy/jupyterhub/jupyterhub_config.py [user]
        loads the one-machine configuration the way JupyterHub does
    hub_probe.py z2jh deploy/jupyterhub/z2jh/values.yaml
        checks the cluster values' hub.config and profile overrides against the
        traits of the classes the chart's hub runs (KubeSpawner's validate each value)
"""

import json
import sys
from pathlib import Path
from types import SimpleNamespace

from dockerspawner import DockerSpawner
from jupyterhub.app import JupyterHub
from jupyterhub.auth import Authenticator
from jupyterhub.spawner import Spawner
from nativeauthenticator import NativeAuthenticator

CLASSES = {
    "JupyterHub": JupyterHub,
    "Authenticator": Authenticator,
    "NativeAuthenticator": NativeAuthenticator,
    "Spawner": Spawner,
    "DockerSpawner": DockerSpawner,
}


def z2jh(path: str) -> dict:
    import yaml
    from kubespawner import KubeSpawner

    values = yaml.safe_load(Path(path).read_text())
    classes = {**CLASSES, "KubeSpawner": KubeSpawner}
    problems = [
        f"hub.config.{section}.{key}: not a trait of {section}"
        for section, traits in values["hub"]["config"].items()
        for key in traits
        if section not in classes or key not in classes[section].class_trait_names()
    ]
    spawner = KubeSpawner.__new__(KubeSpawner)  # traits only: no cluster to talk to
    profiles = []
    for profile in values["singleuser"]["profileList"]:
        override = profile.get("kubespawner_override", {})
        for key, value in override.items():
            try:
                setattr(spawner, key, value)
            except Exception as err:  # a TraitError, or an unknown trait
                problems.append(f"{profile['display_name']}: {key}: {err}")
            if key not in KubeSpawner.class_trait_names():
                problems.append(f"{profile['display_name']}: {key} is not a KubeSpawner trait")
        profiles.append({"name": profile["display_name"], "override": override})
    return {"problems": problems, "profiles": profiles}


if sys.argv[1] == "z2jh":
    print(json.dumps(z2jh(sys.argv[2])))
    sys.exit(0)

app = JupyterHub()
app.load_config_file(sys.argv[2])
config = app.config
unknown = [
    f"{section}.{key}"
    for section, cls in CLASSES.items()
    for key in config.get(section, {})
    if key not in cls.class_trait_names()
]
unknown += [s for s in config if s not in CLASSES]
student = SimpleNamespace(name=sys.argv[3] if len(sys.argv) > 3 else "alice", id=1, url="/")
spawner = DockerSpawner(config=config, user=student)
hooked = {}
for image in sorted(set((config.DockerSpawner.get("allowed_images") or {}).values())) or [
    spawner.image
]:
    spawner.image = image
    spawner.extra_host_config = {}
    config.Spawner.pre_spawn_hook(spawner)
    hooked[image] = [
        r.get("Capabilities") for r in spawner.extra_host_config.get("device_requests", [])
    ]
print(
    json.dumps(
        {
            "unknown": unknown,
            "authenticator": config.JupyterHub.authenticator_class,
            "spawner": config.JupyterHub.spawner_class,
            "admin_users": sorted(config.Authenticator.admin_users),
            "username_pattern": config.Authenticator.username_pattern,
            "open_signup": config.NativeAuthenticator.open_signup,
            "image": spawner.image if not config.DockerSpawner.get("allowed_images") else None,
            "allowed_images": dict(config.DockerSpawner.get("allowed_images") or {}),
            "volumes": dict(spawner.volumes),
            "volume_names": spawner.volume_binds,
            "container_name": spawner.object_name,
            "notebook_dir": spawner.notebook_dir,
            "cmd": list(spawner.cmd),
            "cpu_limit": spawner.cpu_limit,
            "mem_limit": spawner.mem_limit,
            "network": spawner.network_name,
            "remove": spawner.remove,
            "environment": dict(spawner.environment),
            "gpu_requests": hooked,
            "services": [s["name"] for s in config.JupyterHub.services],
            "culler": [
                s["command"] for s in config.JupyterHub.services if s["name"] == "idle-culler"
            ],
            "bind_url": config.JupyterHub.bind_url,
            "cookie_secret_file": config.JupyterHub.cookie_secret_file,
        }
    )
)
