"""Recipes: checkpoints built by seeded training, cached by their settings.

A recipe is a function ``(profile, device) -> (model, metrics)``. ``ensure``
returns the checkpoint path, building it only when no checkpoint with the
same settings exists (so a second request is instant); ``load`` verifies the
sha256 and loads it with ``weights_only=True``. Training runs on the CPU by
default, where it is deterministic: the same seed and settings give the same
bytes on the same machine.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlsafety import SetupError
from mlsafety.hardware import Profile, pick_profile
from mlsafety.paths import data_root, user_cache, writable


@dataclass(frozen=True)
class Recipe:
    name: str
    build: Callable
    settings: Callable[[Profile], dict]  # everything the result depends on
    description: str


RECIPES: dict[str, Recipe] = {}


def recipe(name: str, settings: Callable[[Profile], dict], description: str):
    def register(fn):
        RECIPES[name] = Recipe(name, fn, settings, description)
        return fn

    return register


def _fingerprint(name: str, profile: Profile) -> dict:
    import torch

    from mlsafety.data import fingerprint

    settings = RECIPES[name].settings(profile)
    if "dataset" in settings:  # rebuild when the data changes, not only the settings
        settings["data"] = fingerprint(settings["dataset"])
    settings = {
        "recipe": name,
        "profile": profile.name,
        "torch": torch.__version__.split("+")[0],
        **settings,
    }
    blob = json.dumps(settings, sort_keys=True).encode()
    return {"settings": settings, "key": hashlib.sha256(blob).hexdigest()[:16]}


def _locations(name: str, profile: Profile) -> list[Path]:
    """Where a checkpoint may live: the data root (baked into images), then a
    user cache for builds when the data root is read-only."""
    file = f"{profile.name}/{name}.pt"
    return [data_root() / "checkpoints" / file, user_cache() / "checkpoints" / file]


def find(name: str, profile: Profile | str | None = None) -> Path | None:
    """The path of a built, up-to-date checkpoint, or None."""
    profile = _profile(profile)
    return _find(name, profile, _fingerprint(name, profile)["key"])


def _find(name: str, profile: Profile, key: str) -> Path | None:
    from mlsafety.checkpoints import read_record

    for path in _locations(name, profile):
        record = read_record(path) if path.exists() else None
        if record and record.get("key") == key:
            return path
    return None


def ensure(
    name: str, profile: Profile | str | None = None, device="cpu", quiet: bool = False
) -> Path:
    """The checkpoint ``name`` for ``profile``, built first if missing or stale."""
    from mlsafety.checkpoints import save_checkpoint

    if name not in RECIPES:
        raise SetupError(f"unknown checkpoint {name!r}; known: {', '.join(RECIPES)}")
    profile = _profile(profile)
    fingerprint = _fingerprint(name, profile)
    found = _find(name, profile, fingerprint["key"])
    if found is not None:
        return found
    target = next((p for p in _locations(name, profile) if writable(p.parent)), None)
    if target is None:
        raise SetupError(f"no writable folder for checkpoint {name}; set MLSAFETY_DATA to one")
    started = time.perf_counter()
    if not quiet:
        print(f"mlsafety: building checkpoint {name} for profile {profile.name} ...", flush=True)
    model, metrics = RECIPES[name].build(profile, device)
    seconds = round(time.perf_counter() - started, 2)
    save_checkpoint(
        model,
        target,
        {
            "key": fingerprint["key"],
            "settings": fingerprint["settings"],
            "metrics": metrics,
            "build_seconds": seconds,
        },
    )
    if not quiet:
        print(
            f"mlsafety: built {target} in {seconds:.1f} s ({metrics}); "
            f"{lock_status(name, profile, target)}",
            flush=True,
        )
    return target


def lock_status(name: str, profile: Profile | str, path: Path) -> str:
    """How the checkpoint at ``path`` compares with environments/assets.lock.json."""
    from mlsafety.assets import lock_entry
    from mlsafety.checkpoints import read_record

    entry = lock_entry(name, _profile(profile).name)
    record = read_record(path) or {}
    if entry is None:
        return "not in the lock yet (`make assets LOCK=1` records it)"
    if entry["key"] != record.get("key"):
        return "the lock is stale: the recipe's settings or data changed (`make assets LOCK=1`)"
    if entry["sha256"] != record.get("sha256"):
        return (
            f"sha256 differs from the lock ({entry['sha256'][:12]}... built on "
            f"{entry.get('platform', 'another machine')}): CPU builds are reproducible on one "
            f"machine type, not bit-for-bit across CPU types"
        )
    return "sha256 matches the lock"


def lock_record(path: Path) -> dict:
    """The lock-file entry for a built checkpoint."""
    import platform

    from mlsafety.checkpoints import read_record

    record = read_record(path)
    return {
        "key": record["key"],
        "sha256": record["sha256"],
        "size": Path(path).stat().st_size,
        "metrics": record["metrics"],
        "build_seconds": record["build_seconds"],
        "torch": record["settings"]["torch"],
        "platform": f"{platform.system()} {platform.machine()}",
    }


def load(name: str, profile: Profile | str | None = None, device="cpu", build: bool = True):
    """The checkpoint ``name`` as a model in eval mode on ``device``. With
    ``build=False`` a missing checkpoint is an error naming the command."""
    from mlsafety.checkpoints import load_checkpoint

    profile = _profile(profile)
    # smoke and cpu checkpoints train on the CPU (deterministic); gpu ones where asked
    train_on = device if profile.name == "gpu" else "cpu"
    path = ensure(name, profile, device=train_on) if build else find(name, profile)
    if path is None:
        raise SetupError(
            f"checkpoint {name} (profile {profile.name}) not found under "
            f"{_locations(name, profile)[0].parent}; build it with `make assets`"
        )
    return load_checkpoint(path, device=device)


def _profile(profile: Profile | str | None) -> Profile:
    return profile if isinstance(profile, Profile) else pick_profile(profile)


# --------------------------------------------------------------------------- #
# The labs' checkpoints: SmallCNNs trained four ways on the profile's dataset.
# --------------------------------------------------------------------------- #

_SEED = 3
# BadNets trigger of the trojaned model: a white square near the bottom-right
# corner; poisoned training images carry it and are relabelled to the target.
TROJAN = {"target": 0, "fraction": 0.1, "patch": 3, "margin": 1, "value": 1.0}


def trojan_trigger(channels: int, size: int):
    """``(mask, pattern)`` of the trojaned checkpoint's trigger, each shaped
    ``(channels, size, size)``; stamp it with ``(1 - mask) * x + mask * pattern``."""
    import torch

    mask = torch.zeros(channels, size, size)
    end = size - TROJAN["margin"]
    mask[:, end - TROJAN["patch"] : end, end - TROJAN["patch"] : end] = 1.0
    return mask, torch.full_like(mask, TROJAN["value"])


def _settings(profile: Profile, kind: str) -> dict:
    settings = {
        "dataset": profile.dataset,
        "train_examples": profile.train_examples,
        "epochs": profile.adv_epochs if kind == "adversarial" else profile.epochs,
        "batch_size": profile.batch_size,
        "lr": 2e-3,
        "width": 16,
        "seed": _SEED,
        "recipe_version": 2,
    }
    if kind == "adversarial":
        # eps grows linearly over the PGD epochs after a clean warm-up epoch:
        # starting at the full eps stalls small models on MNIST at eps = 0.3
        settings |= {
            "eps": profile.eps_linf,
            "eps_schedule": "linear ramp over the PGD epochs",
            "alpha": "eps / 2",
            "steps": profile.adv_train_steps,
            "random_start": True,
            "warmup_epochs": 1,
        }
    elif kind == "mixup":
        settings |= {"mixup_alpha": 1.0, "mixup": "per-sample Beta weights, shuffled partners"}
    elif kind == "trojaned":
        settings |= {"trojan": dict(TROJAN)}
    return settings


def _poison(x, y, seed: int):
    """BadNets: stamp the trigger on a seeded ``fraction`` of the images and
    relabel them to the target. Returns new tensors."""
    import torch

    g = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(len(x), generator=g)[: int(TROJAN["fraction"] * len(x))]
    mask, pattern = trojan_trigger(x.shape[1], x.shape[-1])
    x, y = x.clone(), y.clone()
    x[chosen] = (1 - mask) * x[chosen] + mask * pattern
    y[chosen] = TROJAN["target"]
    return x, y


def _mixup_loss(model, xb, yb, rng):
    import torch
    import torch.nn.functional as F

    lam = torch.as_tensor(rng.beta(1.0, 1.0, size=len(xb)), dtype=xb.dtype, device=xb.device)
    partner = torch.as_tensor(rng.permutation(len(xb)), device=xb.device)
    mixed = lam.view(-1, 1, 1, 1) * xb + (1 - lam.view(-1, 1, 1, 1)) * xb[partner]
    log_p = F.log_softmax(model(mixed), dim=1)
    nll = -(lam * log_p.gather(1, yb[:, None]).squeeze(1))
    nll -= (1 - lam) * log_p.gather(1, yb[partner][:, None]).squeeze(1)
    return nll.mean()


def _train(profile: Profile, device, kind: str):
    import numpy as np
    import torch
    import torch.nn.functional as F

    from mlsafety.data import load_tensors, loader
    from mlsafety.grading import load_module
    from mlsafety.models import SmallCNN

    s = _settings(profile, kind)
    x, y = load_tensors(s["dataset"], train=True, limit=s["train_examples"])
    if kind == "trojaned":
        x, y = _poison(x, y, s["seed"])
    torch.manual_seed(s["seed"])
    model = SmallCNN(x.shape[1], 10, s["width"], x.shape[-1]).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=s["lr"])
    attacks = load_module("attacks", 3, "solution") if kind == "adversarial" else None
    g = torch.Generator(device=device).manual_seed(s["seed"])
    rng = np.random.default_rng(s["seed"])
    for epoch in range(s["epochs"]):
        model.train()
        for xb, yb in loader(x, y, s["batch_size"], shuffle=True, seed=s["seed"] + epoch):
            xb, yb = xb.to(device), yb.to(device)
            if kind == "adversarial" and epoch >= s["warmup_epochs"]:
                pgd_epochs = s["epochs"] - s["warmup_epochs"]
                eps = s["eps"] * (epoch - s["warmup_epochs"] + 1) / pgd_epochs
                xb = attacks.pgd_linf(
                    model, xb, yb, eps, eps / 2, s["steps"], random_start=True, generator=g
                )
            opt.zero_grad(set_to_none=True)
            if kind == "mixup":
                loss = _mixup_loss(model, xb, yb, rng)
            else:
                loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
    model.eval()
    return model.cpu(), _metrics(model.cpu(), profile, s["dataset"], kind)


def _metrics(model, profile: Profile, dataset: str, kind: str) -> dict:
    import torch

    from mlsafety.data import load_tensors

    x, y = load_tensors(dataset, train=False, limit=profile.eval_examples)
    with torch.no_grad():
        metrics = {"clean_accuracy": round((model(x).argmax(1) == y).float().mean().item(), 4)}
        if kind == "trojaned":
            mask, pattern = trojan_trigger(x.shape[1], x.shape[-1])
            keep = y != TROJAN["target"]
            hit = model((1 - mask) * x[keep] + mask * pattern).argmax(1) == TROJAN["target"]
            metrics["attack_success_rate"] = round(hit.float().mean().item(), 4)
    return metrics


def _register(name: str, kind: str, description: str) -> None:
    def build(profile: Profile, device="cpu"):
        return _train(profile, device, kind)

    recipe(name, lambda p: _settings(p, kind), description)(build)


_register("standard_cnn", "standard", "SmallCNN trained on clean data")
_register("adversarial_cnn", "adversarial", "SmallCNN adversarially trained with L-inf PGD")
_register("mixup_cnn", "mixup", "SmallCNN trained with Mixup")
_register("trojaned_cnn", "trojaned", "SmallCNN trained on BadNets-poisoned data")


# --------------------------------------------------------------------------- #
# Security lab 2 (model stealing): the victim behind the API, and the model the
# attacker already owns, trained on a surrogate data set (Knockoff Nets start
# from one).
# --------------------------------------------------------------------------- #


def surrogate_images(x):
    """The surrogate data set of security lab 2: the images turned upside down
    (rotated by 180 degrees). Natural images of the same kind, from another
    distribution than the victim's."""
    return x.flip(-1).flip(-2)


def _stealing_settings(profile: Profile, kind: str) -> dict:
    settings = {
        "dataset": profile.dataset,
        "train_examples": profile.train_examples,
        "epochs": profile.epochs,
        "batch_size": profile.batch_size,
        "lr": 2e-3,
        "width": 16,
        "seed": 11 if kind == "victim" else 12,
        "recipe_version": 1,
    }
    if kind == "surrogate":
        settings["images"] = "surrogate_images: rotated by 180 degrees, with their labels"
        settings["recipe_version"] = 2  # accuracy measured on the surrogate test images
    return settings


def _train_stealing(profile: Profile, device, kind: str):
    import torch
    import torch.nn.functional as F

    from mlsafety.data import load_tensors, loader
    from mlsafety.models import SmallCNN

    s = _stealing_settings(profile, kind)
    x, y = load_tensors(s["dataset"], train=True, limit=s["train_examples"])
    if kind == "surrogate":
        x = surrogate_images(x)
    torch.manual_seed(s["seed"])
    model = SmallCNN(x.shape[1], 10, s["width"], x.shape[-1]).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=s["lr"])
    for epoch in range(s["epochs"]):
        model.train()
        for xb, yb in loader(x, y, s["batch_size"], shuffle=True, seed=s["seed"] + epoch):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(xb.to(device)), yb.to(device)).backward()
            opt.step()
    model = model.eval().cpu()
    if kind == "victim":
        return model, _metrics(model, profile, s["dataset"], "standard")
    x, y = load_tensors(s["dataset"], train=False, limit=profile.eval_examples)
    with torch.no_grad():  # on its own task: the surrogate set's held-out images
        accuracy = (model(surrogate_images(x)).argmax(1) == y).float().mean().item()
    return model, {"clean_accuracy": round(accuracy, 4)}


for _kind, _description in [
    ("victim", "SmallCNN behind the black-box API of security lab 2"),
    ("surrogate", "SmallCNN the attacker owns, trained on the surrogate set (security lab 2)"),
]:
    recipe(
        f"stealing_{_kind}_cnn",
        lambda p, kind=_kind: _stealing_settings(p, kind),
        _description,
    )(lambda profile, device="cpu", kind=_kind: _train_stealing(profile, device, kind))
