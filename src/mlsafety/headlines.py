"""The lessons' headline numbers at the cpu profile, on real MNIST.

What a student's notebooks at the cpu profile should show, measured the way
the notebooks measure it, with the reference solutions on the profile's
checkpoints:

- week 3: the standard CNN's clean accuracy on MNIST's whole test set, and
  L-inf PGD robust accuracy of the standard and the adversarially trained CNN
  (the notebook's attack: eps of the profile, alpha = 2.5 eps / steps, the
  profile's attack steps, on its attacked images);
- week 6: Neural Cleanse with the notebook's cpu sizes flags the trojaned
  CNN's target label and no label of the standard CNN;
- week 4: the mixup CNN's mCE, relative to the standard CNN, over all
  corruptions and severities on the notebook's test images. Recorded, not
  asserted: on MNIST it is about 2.6 times the standard model's, and week 4's
  notebook explains why (the AugMix model is trained in the notebook itself).

`make bench` records them in docs/benchmarks.md; tests/test_headlines.py
asserts them wherever real MNIST and the cpu checkpoints are present.
"""

from __future__ import annotations

from dataclasses import dataclass

PROFILE = "cpu"
# week 6's notebook, cpu sizes: Neural Cleanse on the first nc_images test images
NEURAL_CLEANSE = {"images": 32, "steps": 400, "lr": 0.2, "lam": 0.02}
CHECKPOINTS = ("standard_cnn", "adversarial_cnn", "mixup_cnn", "trojaned_cnn")


@dataclass
class Headline:
    week: int
    name: str
    value: str
    goal: str
    met: bool
    asserted: bool = True  # False: a shortfall the notebook explains, recorded only


def ready() -> str | None:
    """None when the headlines can be measured here; else why not, in one line."""
    from mlsafety.assets import dataset_state, manifest
    from mlsafety.recipes import find

    mnist = manifest().datasets["mnist"]
    state = dataset_state(mnist)
    if state != "verified":
        return (
            f"real MNIST is {state} here: `make data PROFILE=cpu` "
            "(or FROM=<folder with the published files>) installs it"
        )
    missing = [name for name in CHECKPOINTS if find(name, PROFILE) is None]
    if missing:
        return (
            f"cpu checkpoints missing ({', '.join(missing)}): `make assets PROFILE=cpu` builds them"
        )
    return None


def measure(progress=print) -> list[Headline]:
    """Every headline, measured now (a few minutes on 2 cores: Neural Cleanse
    runs 20 trigger searches)."""
    import torch

    from mlsafety import recipes
    from mlsafety.data import load_tensors, loader
    from mlsafety.grading import load_module
    from mlsafety.hardware import pick_profile
    from mlsafety.recipes import TROJAN, trojan_trigger

    profile = pick_profile(PROFILE)
    models = {name: recipes.load(name, profile, build=False) for name in CHECKPOINTS}
    rows: list[Headline] = []

    x_all, y_all = load_tensors(profile.dataset, train=False)
    with torch.no_grad():
        hits = sum(
            (models["standard_cnn"](xb).argmax(1) == yb).sum().item()
            for xb, yb in loader(x_all, y_all, 1000)
        )
    accuracy = hits / len(y_all)
    rows.append(
        Headline(
            3,
            "standard CNN clean accuracy",
            f"{accuracy:.2%} of {len(y_all)}",
            "at least 98.5%",
            accuracy >= 0.985,
        )
    )
    progress(f"clean accuracy {accuracy:.2%}")

    attacks = load_module("attacks", "week03", "solution")
    x_test, y_test = load_tensors(profile.dataset, train=False, limit=profile.eval_examples)
    x_att, y_att = x_test[: profile.attack_examples], y_test[: profile.attack_examples]
    eps, steps = profile.eps_linf, profile.attack_steps
    robust = {}
    for name in ("standard_cnn", "adversarial_cnn"):
        model = models[name]
        adv = attacks.pgd_linf(model, x_att, y_att, eps, 2.5 * eps / steps, steps)
        with torch.no_grad():
            robust[name] = (model(adv).argmax(1) == y_att).float().mean().item()
    gain = robust["adversarial_cnn"] - robust["standard_cnn"]
    rows.append(
        Headline(
            3,
            f"PGD L-inf robust accuracy (eps {eps:g}, {steps} steps, {len(y_att)} images)",
            f"adversarial {robust['adversarial_cnn']:.1%} vs standard {robust['standard_cnn']:.1%}",
            "adversarial at least 30 points above standard",
            gain >= 0.3,
        )
    )
    progress(f"robust accuracy {robust}")

    trojans = load_module("trojans", "week06", "solution")
    x_nc = x_test[: NEURAL_CLEANSE["images"]]
    settings = {k: v for k, v in NEURAL_CLEANSE.items() if k != "images"}
    flagged, indices = {}, {}
    for name in ("trojaned_cnn", "standard_cnn"):
        norms = []
        for label in range(10):
            g = torch.Generator().manual_seed(label)
            mask, _ = trojans.reverse_engineer_trigger(
                models[name], x_nc, label, generator=g, **settings
            )
            norms.append(mask.sum().item())
        flagged[name] = trojans.detect_trojan(norms)
        indices[name] = trojans.mad_anomaly_index(norms)
        progress(f"Neural Cleanse on {name}: flagged {flagged[name]}")
    target = TROJAN["target"]
    rows.append(
        Headline(
            6,
            f"Neural Cleanse ({NEURAL_CLEANSE['images']} images, {NEURAL_CLEANSE['steps']} steps)",
            f"trojaned: flags {flagged['trojaned_cnn']} (index of {target}: "
            f"{indices['trojaned_cnn'][target]:.2f}); standard: flags {flagged['standard_cnn']}",
            f"trojaned flags exactly [{target}]; standard flags none",
            flagged["trojaned_cnn"] == [target] and flagged["standard_cnn"] == [],
        )
    )
    mask, pattern = trojan_trigger(x_test.shape[1], x_test.shape[-1])
    asr = trojans.attack_success_rate(models["trojaned_cnn"], x_test, y_test, mask, pattern, target)
    rows.append(
        Headline(6, "trojan attack success rate", f"{asr:.1%}", "at least 95%", asr >= 0.95)
    )

    corruptions = load_module("corruptions", "week04", "solution")
    tables = {}
    for name in ("standard_cnn", "mixup_cnn"):
        g = torch.Generator().manual_seed(0)
        tables[name] = corruptions.corruption_error_table(
            models[name], x_test, y_test, corruptions.CORRUPTIONS, (1, 2, 3, 4, 5), g
        )
    mce = corruptions.mce(tables["mixup_cnn"], tables["standard_cnn"])
    rows.append(
        Headline(
            4,
            f"mixup CNN's mCE (standard = 100%, {len(y_test)} images)",
            f"{mce:.1%}",
            "below 100% (not on MNIST: week 4's notebook explains why)",
            mce < 1.0,
            asserted=False,
        )
    )
    return rows


def table(rows: list[Headline]) -> str:
    lines = ["| week | headline | measured | goal | goal met |", "|---|---|---|---|---|"]
    lines += [
        f"| {r.week} | {r.name} | {r.value} | {r.goal} | "
        f"{'yes' if r.met else 'no' if r.asserted else 'no (recorded, not asserted)'} |"
        for r in rows
    ]
    return "\n".join(lines)
