"""Recipes: checkpoints built by seeded training, cached by their settings.

A recipe is a function ``(profile, device) -> (model, metrics)``. ``ensure``
returns the checkpoint path, building it only when no checkpoint with the
same settings exists (so a second request is instant); ``load`` verifies the
sha256 and loads it with ``weights_only=True``. Training runs on the CPU by
default, where it is deterministic: the same seed and settings give the same
bytes on the same machine.

A checkpoint that does not match the record written with it (truncated,
altered) or that the safe loader refuses is rebuilt from its recipe, with one
line saying so; in a read-only data root the new one goes to the user cache.
`make assets` also rebuilds one whose sha256 differs from the lock
(environments/assets.lock.json), the trusted record (a record beside a file
can be replaced with it), unless its record says it was built from its
recipe on this type of processor: CPU builds are reproducible on one type of
processor, not across types, so where this machine builds other bytes than
the lock's, a rebuild would only make the same bytes again, at every `make
assets` and `make lab`. (Trusting that line of the record is trusting the
record, as without a lock: the safe loader still refuses any code.)
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
from mlsafety.paths import data_root, repo_root, user_cache, writable


@dataclass(frozen=True)
class Recipe:
    name: str
    build: Callable
    settings: Callable[[Profile], dict]  # everything the result depends on
    description: str
    shared: bool = False  # one file serves every profile (a converted model, not a training run)


RECIPES: dict[str, Recipe] = {}


def recipe(name: str, settings: Callable[[Profile], dict], description: str, shared: bool = False):
    def register(fn):
        RECIPES[name] = Recipe(name, fn, settings, description, shared)
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
        "profile": "shared" if RECIPES[name].shared else profile.name,
        "torch": torch.__version__.split("+")[0],
        **settings,
    }
    blob = json.dumps(settings, sort_keys=True).encode()
    return {"settings": settings, "key": hashlib.sha256(blob).hexdigest()[:16]}


def _locations(name: str, profile: Profile) -> list[Path]:
    """Where a checkpoint may live: the data root (baked into images), then a
    user cache for builds when the data root is read-only."""
    file = f"{'shared' if RECIPES[name].shared else profile.name}/{name}.pt"
    return [data_root() / "checkpoints" / file, user_cache() / "checkpoints" / file]


def find(name: str, profile: Profile | str | None = None) -> Path | None:
    """The path of a built, up-to-date, intact checkpoint, or None."""
    profile = _profile(profile)
    return _find(name, profile, _fingerprint(name, profile)["key"])[0]


def _find(
    name: str, profile: Profile, key: str, strict: bool = False
) -> tuple[Path | None, dict[Path, str]]:
    """The first location holding an intact checkpoint for ``key``, and the
    problems of the damaged ones met before it. ``strict`` also holds each
    one to the lock file."""
    from mlsafety.checkpoints import read_record

    damaged = {}
    # the student edition ships, read-only, the builds it cannot make (REFERENCE_RECIPES)
    shipped = repo_root() / "environments" / "checkpoints" / profile.name / f"{name}.pt"
    for path in [*_locations(name, profile), shipped]:
        record = read_record(path) if path.exists() else None
        if not record or record.get("key") != key:
            continue
        problem = problem_of(name, profile, path, strict, rebuilding=strict)
        if problem is None:
            return path, damaged
        damaged[path] = problem
    return None, damaged


def built_on() -> str:
    """What a CPU build's bytes depend on besides its settings (which hold
    torch's version): the system, architecture and processor model."""
    import platform

    from mlsafety.hardware import cpu_model

    return f"{platform.system()} {platform.machine()} {cpu_model()}"


def problem_of(
    name: str, profile: Profile, path: Path, strict: bool = False, rebuilding: bool = False
) -> str | None:
    """Why the checkpoint at ``path`` must not be used: it differs from its
    record, the safe loader refuses it, or (``strict``) its sha256 is not the
    lock's for the same settings. ``rebuilding``: a file not as locked that
    was built on this type of processor is kept (a rebuild would give the same
    bytes). None when it is fine."""
    from mlsafety.checkpoints import damage, read_record, safe_load_problem

    problem = damage(path) or safe_load_problem(path)
    if problem or not strict:
        return problem
    entry, record = lock_entry_for(name, profile), read_record(path)
    if entry and entry["key"] == record.get("key") and entry["sha256"] != record["sha256"]:
        if rebuilding and record.get("built_on") == built_on():
            return None
        return f"its sha256 {record['sha256'][:12]}... differs from the lock's {entry['sha256'][:12]}..."
    return None


def lock_entry_for(name: str, profile: Profile | str) -> dict | None:
    from mlsafety.assets import lock_entry

    return lock_entry(name, _profile(profile).name)


def ensure(
    name: str,
    profile: Profile | str | None = None,
    device="cpu",
    quiet: bool = False,
    strict: bool = False,
) -> Path:
    """The checkpoint ``name`` for ``profile``, built first if missing, stale,
    damaged or refused by the safe loader (``strict``: or not as locked)."""
    from mlsafety.checkpoints import save_checkpoint
    from mlsafety.data import note

    if name not in RECIPES:
        raise SetupError(f"unknown checkpoint {name!r}; known: {', '.join(RECIPES)}")
    profile = _profile(profile)
    fingerprint = _fingerprint(name, profile)
    found, damaged = _find(name, profile, fingerprint["key"], strict)
    if found is not None:
        return found
    target = next((p for p in _locations(name, profile) if writable(p.parent)), None)
    if target is None:
        raise SetupError(
            f"no writable folder for checkpoint {name}; point MLSAFETY_DATA at one and run "
            f"`make assets PROFILE={profile.name}`"
        )
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
            "built_on": built_on(),
        },
    )
    for path, problem in damaged.items():
        where = "" if path == target else f" (its folder is read-only: rebuilt in {target})"
        note(f"checkpoint {path} was not usable ({problem}); rebuilt from its recipe{where}")
    if not quiet:
        print(
            f"mlsafety: built {target} in {seconds:.1f} s ({metrics}); "
            f"{lock_status(name, profile, target)}",
            flush=True,
        )
    return target


def checkpoint_state(name: str, profile: Profile | str | None = None) -> tuple[str, Path | None]:
    """What `make doctor` says of checkpoint ``name``, and the file it means:
    ``"verified"`` (sha256 as the lock records it, or as built here when the
    lock has no entry for these settings, and the safe loader accepts it),
    ``"differs from the lock: ..."`` (intact and loadable, but not the locked
    bytes), ``"corrupt: ..."`` or ``"missing"``."""
    profile = _profile(profile)
    key = _fingerprint(name, profile)["key"]
    found, damaged = _find(name, profile, key)
    if found is None:
        if damaged:
            path, problem = next(iter(damaged.items()))
            return f"corrupt: {problem}", path
        return "missing", None
    problem = problem_of(name, profile, found, strict=True)
    return (f"differs from the lock: {problem}" if problem else "verified"), found


def lock_status(name: str, profile: Profile | str, path: Path) -> str:
    """How the checkpoint at ``path`` compares with environments/assets.lock.json."""
    from mlsafety.checkpoints import read_record

    entry = lock_entry_for(name, profile)
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
    fix = f"make assets PROFILE={profile.name}"
    if build:
        path = ensure(name, profile, device=train_on)
    else:
        path, damaged = _find(name, profile, _fingerprint(name, profile)["key"])
        for bad, problem in damaged.items() if path is None else ():
            raise SetupError(f"checkpoint {bad} is not usable ({problem}); `{fix}` rebuilds it")
    if path is None:
        raise SetupError(
            f"checkpoint {name} (profile {profile.name}) not found under "
            f"{_locations(name, profile)[0].parent}; build it with `{fix}`"
        )
    return load_checkpoint(path, device=device, fix=fix)


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


# The cpu profile's standard, mixup and trojaned models decay the learning rate
# to 0 on a cosine (per batch) from a higher peak: on real MNIST, 3 epochs of
# 60,000 images reach 98.8% of the test set this way, 98.4% at a constant 2e-3.
_SCHEDULES = {"cpu": {"lr": 4e-3, "lr_schedule": "cosine to 0 over the run, per batch"}}


def _settings(profile: Profile, kind: str) -> dict:
    settings = {
        "dataset": profile.dataset,
        "train_examples": (
            profile.train_examples if kind == "adversarial" else profile.checkpoint_examples
        ),
        "epochs": profile.adv_epochs if kind == "adversarial" else profile.checkpoint_epochs,
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
    else:
        settings |= _SCHEDULES.get(profile.name, {})
    if kind == "mixup":
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
    from mlsafety.models import SmallCNN

    s = _settings(profile, kind)
    x, y = load_tensors(s["dataset"], train=True, limit=s["train_examples"])
    if kind == "trojaned":
        x, y = _poison(x, y, s["seed"])
    torch.manual_seed(s["seed"])
    model = SmallCNN(x.shape[1], 10, s["width"], x.shape[-1]).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=s["lr"])
    schedule = None
    if "lr_schedule" in s:
        batches = -(-len(x) // s["batch_size"]) * s["epochs"]
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=batches)
    attacks = _reference_attacks(profile) if kind == "adversarial" else None
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
            if schedule is not None:
                schedule.step()
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


# Recipes that train with a reference solution: the student edition ships their builds.
REFERENCE_RECIPES = {"adversarial_cnn": "week03", "privacy_target_dp": "security1"}


def _reference(module: str, lab: str, checkpoint: str, profile: Profile):
    """The reference solution's ``module`` of ``lab``, which ``checkpoint``
    trains with; one line where this copy of the labs has no solutions."""
    from mlsafety.grading import load_module
    from mlsafety.weeks import find_week, solution_dir

    if not solution_dir(find_week(lab)).is_dir():
        raise SetupError(
            f"checkpoint {checkpoint} ({profile.name}) trains with {lab}'s reference {module}.py, "
            f"which this copy of the labs does not have; use the course image "
            f"(docker compose pull), where it is built in"
        )
    return load_module(module, lab, "solution")


def _reference_attacks(profile: Profile):
    return _reference("attacks", "week03", "adversarial_cnn", profile)


def _register(name: str, kind: str, description: str) -> None:
    def build(profile: Profile, device="cpu"):
        return _train(profile, device, kind)

    recipe(name, lambda p: _settings(p, kind), description)(build)


_register("standard_cnn", "standard", "SmallCNN trained on clean data")
_register("adversarial_cnn", "adversarial", "SmallCNN adversarially trained with L-inf PGD")
_register("mixup_cnn", "mixup", "SmallCNN trained with Mixup")
_register("trojaned_cnn", "trojaned", "SmallCNN trained on BadNets-poisoned data")


# --------------------------------------------------------------------------- #
# Security lab 1 (privacy): an overfit target, the same target trained with
# DP-SGD, and shadow models that double as LiRA's OUT reference models.
# --------------------------------------------------------------------------- #

# Sizes per profile. The candidates of the membership experiment are the first
# 2 * members training images: the first half trained the target (members), the
# second half did not (non-members). Each shadow model draws its own shard of
# 2 * members images after them and trains on the first half of its shard.
PRIVACY_SHADOWS = 4  # one checkpoint each: privacy_shadow0 ... privacy_shadow3
PRIVACY = {
    "smoke": {
        "members": 128,
        "shadows": PRIVACY_SHADOWS,
        "epochs": 60,
        "dp_epochs": 15,
        "batch_size": 32,
    },
    "cpu": {
        "members": 2000,
        "shadows": PRIVACY_SHADOWS,
        "epochs": 30,
        "dp_epochs": 15,
        "batch_size": 64,
    },
    "gpu": {
        "members": 5000,
        "shadows": PRIVACY_SHADOWS,
        "epochs": 40,
        "dp_epochs": 20,
        "batch_size": 128,
    },
}
# DP-SGD of privacy_target_dp: Poisson sampling at rate batch_size / members.
PRIVACY_DP = {"max_norm": 1.0, "noise_multiplier": 2.0, "lr": 0.5, "delta": 1e-5}


def privacy_data(profile: Profile | str | None = None) -> dict:
    """The membership experiment's data at ``profile``: ``x`` and ``y`` (the
    first ``(2 + 2 * shadows) * members`` training images of the profile's
    dataset), ``members`` and ``non_members`` (index tensors of the target's
    candidates, the first ``2 * members`` images) and ``shards``: per shadow
    model, ``(in, out)`` index tensors of its own ``2 * members`` images.

    Each pair of halves is class-balanced (its class counts differ by at most
    one): with the few hundred candidates of the smoke profile, a chance
    difference in the classes of members and non-members would otherwise let a
    model that learnt only the members' class frequencies look like it leaks."""
    import torch

    from mlsafety.data import load_tensors

    profile = _profile(profile)
    m, k = PRIVACY[profile.name]["members"], PRIVACY[profile.name]["shadows"]
    x, y = load_tensors(profile.dataset, train=True, limit=(2 + 2 * k) * m)
    if len(x) < (2 + 2 * k) * m:
        raise SetupError(
            f"{profile.dataset} has {len(x)} training images, {(2 + 2 * k) * m} needed"
        )

    def halves(start: int):
        block = torch.arange(start, start + 2 * m)
        by_class = block[torch.argsort(y[block], stable=True)]  # class by class, in order
        return by_class[0::2].sort().values, by_class[1::2].sort().values

    members, non_members = halves(0)
    return {
        "x": x,
        "y": y,
        "members": members,
        "non_members": non_members,
        "shards": [halves((2 + 2 * i) * m) for i in range(k)],
    }


def _privacy_settings(profile: Profile, kind: str, shadow: int | None = None) -> dict:
    settings = {
        "dataset": profile.dataset,
        **PRIVACY[profile.name],
        "optimizer": "adam",
        "lr": 2e-3,
        "width": 16,
        "seed": _SEED + (shadow + 1 if shadow is not None else 0),
        "recipe_version": 2,  # 2: class-balanced halves
    }
    if shadow is not None:
        settings["shard"] = shadow
    if kind == "dp":
        settings |= {
            "optimizer": "sgd",
            "dp": dict(PRIVACY_DP),
            "sampling": "Poisson",
            "solution": "dpsgd.py of security1",
        }
    return settings


def _train_privacy(profile: Profile, device, kind: str, shadow: int | None = None):
    import torch
    import torch.nn.functional as F

    from mlsafety.data import loader
    from mlsafety.models import SmallCNN

    s = _privacy_settings(profile, kind, shadow)
    data = privacy_data(profile)
    train = data["members"] if shadow is None else data["shards"][shadow][0]
    x, y = data["x"][train], data["y"][train]
    torch.manual_seed(s["seed"])
    model = SmallCNN(x.shape[1], 10, s["width"], x.shape[-1]).to(device)
    model.train()
    if kind == "dp":
        dpsgd = _reference("dpsgd", "security1", "privacy_target_dp", profile)
        opt = torch.optim.SGD(model.parameters(), lr=s["dp"]["lr"])
        g = torch.Generator().manual_seed(s["seed"])
        noise = torch.Generator(device=device).manual_seed(s["seed"] + 1)
        rate = s["batch_size"] / len(x)
        for _ in range(s["dp_epochs"] * round(1 / rate)):
            batch = dpsgd.poisson_sample(len(x), rate, g)
            dpsgd.dp_sgd_step(
                model,
                opt,
                x[batch].to(device),
                y[batch].to(device),
                max_norm=s["dp"]["max_norm"],
                noise_multiplier=s["dp"]["noise_multiplier"],
                expected_batch_size=s["batch_size"],
                generator=noise,
            )
    else:
        opt = torch.optim.Adam(model.parameters(), lr=s["lr"])
        for epoch in range(s["epochs"]):
            for xb, yb in loader(x, y, s["batch_size"], shuffle=True, seed=s["seed"] + epoch):
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(xb.to(device)), yb.to(device)).backward()
                opt.step()
    model.eval()
    model = model.cpu()
    return model, _privacy_metrics(model, profile, data, s, kind, shadow)


def _privacy_metrics(model, profile, data, s, kind, shadow) -> dict:
    import torch

    from mlsafety.data import load_tensors

    train = data["members"] if shadow is None else data["shards"][shadow][0]
    x_test, y_test = load_tensors(profile.dataset, train=False, limit=profile.eval_examples)
    with torch.no_grad():
        train_acc = (model(data["x"][train]).argmax(1) == data["y"][train]).float().mean()
        test_acc = (model(x_test).argmax(1) == y_test).float().mean()
    metrics = {
        "train_accuracy": round(train_acc.item(), 4),
        "clean_accuracy": round(test_acc.item(), 4),
    }
    if kind == "dp":
        accountant = _reference("accountant", "security1", "privacy_target_dp", profile)
        rate = s["batch_size"] / len(train)
        steps = s["dp_epochs"] * round(1 / rate)
        orders = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))
        rdp = accountant.rdp_subsampled_gaussian(rate, s["dp"]["noise_multiplier"], steps, orders)
        eps, _ = accountant.epsilon_from_rdp(rdp, orders, s["dp"]["delta"])
        metrics["epsilon"] = round(eps, 3)
    return metrics


def _register_privacy(name: str, kind: str, description: str, shadow: int | None = None) -> None:
    def build(profile: Profile, device="cpu"):
        return _train_privacy(profile, device, kind, shadow)

    recipe(name, lambda p: _privacy_settings(p, kind, shadow), description)(build)


_register_privacy("privacy_target", "standard", "SmallCNN overfit on the members (security1)")
_register_privacy("privacy_target_dp", "dp", "SmallCNN trained on the members with DP-SGD")
for _k in range(PRIVACY_SHADOWS):
    _register_privacy(
        f"privacy_shadow{_k}", "standard", f"shadow / OUT reference model {_k}", shadow=_k
    )
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


# --------------------------------------------------------------------------- #
# Security lab 3 (LLM security): the instruct model, converted once from its
# GGUF file, and a tiny random model of the same architecture for fast specs.
# One file serves every profile: nothing in them depends on the profile.
# --------------------------------------------------------------------------- #


def _llm_settings(kind: str) -> dict:
    from mlsafety.llm import recipe_settings

    return recipe_settings(kind)


def _build_llm(kind: str):
    from mlsafety.llm import build

    return build(kind)


for _name, _kind, _description in [
    ("smollm2_instruct", "real", "SmolLM2-135M-Instruct de-quantized from its GGUF file"),
    ("smollm2_tiny", "tiny", "a random 2-layer model of SmolLM2's architecture and tokenizer"),
]:
    recipe(_name, lambda p, kind=_kind: _llm_settings(kind), _description, shared=True)(
        lambda profile, device="cpu", kind=_kind: _build_llm(kind)
    )
