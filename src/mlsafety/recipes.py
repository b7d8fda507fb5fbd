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
        print(f"mlsafety: built {target} in {seconds:.1f} s ({metrics})", flush=True)
    return target


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
# Week 3: a standard and a PGD-adversarially-trained SmallCNN.
# --------------------------------------------------------------------------- #

_WEEK03_SEED = 3


def _week03_settings(profile: Profile, adversarial: bool) -> dict:
    settings = {
        "dataset": profile.dataset,
        "train_examples": profile.train_examples,
        "epochs": profile.adv_epochs if adversarial else profile.epochs,
        "batch_size": profile.batch_size,
        "lr": 2e-3,
        "width": 16,
        "seed": _WEEK03_SEED,
        "recipe_version": 2,
    }
    if adversarial:
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
    return settings


def _train_week03(profile: Profile, device, adversarial: bool):
    import torch
    import torch.nn.functional as F

    from mlsafety.data import load_tensors, loader
    from mlsafety.grading import load_module
    from mlsafety.models import SmallCNN

    s = _week03_settings(profile, adversarial)
    x, y = load_tensors(s["dataset"], train=True, limit=s["train_examples"])
    torch.manual_seed(s["seed"])
    model = SmallCNN(x.shape[1], 10, s["width"], x.shape[-1]).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=s["lr"])
    attacks = load_module("attacks", 3, "solution") if adversarial else None
    g = torch.Generator(device=device).manual_seed(s["seed"])
    if adversarial:
        pgd_epochs = s["epochs"] - s["warmup_epochs"]
        ramp = [(k + 1) / pgd_epochs for k in range(pgd_epochs)]
    for epoch in range(s["epochs"]):
        model.train()
        for xb, yb in loader(x, y, s["batch_size"], shuffle=True, seed=s["seed"] + epoch):
            xb, yb = xb.to(device), yb.to(device)
            if adversarial and epoch >= s["warmup_epochs"]:
                eps = s["eps"] * ramp[epoch - s["warmup_epochs"]]
                xb = attacks.pgd_linf(
                    model, xb, yb, eps, eps / 2, s["steps"], random_start=True, generator=g
                )
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
    model.eval()
    x_test, y_test = load_tensors(s["dataset"], train=False, limit=profile.eval_examples)
    with torch.no_grad():
        acc = (model(x_test.to(device)).argmax(1).cpu() == y_test).float().mean().item()
    return model.cpu(), {"clean_accuracy": round(acc, 4)}


@recipe(
    "week03_standard",
    lambda p: _week03_settings(p, False),
    "SmallCNN trained on clean data (week 3's standard model)",
)
def _week03_standard(profile: Profile, device="cpu"):
    return _train_week03(profile, device, adversarial=False)


@recipe(
    "week03_adversarial",
    lambda p: _week03_settings(p, True),
    "SmallCNN adversarially trained with L-inf PGD (week 3's robust model)",
)
def _week03_adversarial(profile: Profile, device="cpu"):
    return _train_week03(profile, device, adversarial=True)
