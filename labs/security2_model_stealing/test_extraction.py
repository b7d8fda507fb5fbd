"""Specs for extraction.py: stealing a substitute through the API, measuring
its fidelity, budget curves and Jacobian-based augmentation.

Run them with `make test-security2` (add IMPL=solution to see the reference pass).
Every failure message starts with the graded function it is about.
"""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mlsafety.grading import graded
from mlsafety.specs import python_float

GRADED = {
    "extract": "core",
    "fidelity": "core",
    "budget_curve": "stretch",
    "jacobian_augment": "stretch",
}
pytestmark = pytest.mark.timeout(60)

SHAPE = (1, 28, 28)


class Spy:
    """Stands in for a black box: answers through a real one and records the queries."""

    def __init__(self, box):
        self.box, self.batches = box, []

    def __call__(self, x):
        self.batches.append(x.clone())
        return self.box(x)


class Dominant(nn.Module):
    """A victim whose top-1 label is always 0: 0.55 of the probability on class 0
    and 0.45 spread as the real victim spreads it. Labels say nothing; the
    probabilities say a lot."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        p = 0.55 * F.one_hot(torch.zeros(len(x), dtype=torch.long), 10) + 0.45 * self.model(
            x
        ).softmax(1)
        return p.log()


def weights(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def narrow(pool, width, seed=0):
    """A narrower SmallCNN to start substitutes from: the same lessons, a fraction of the time."""
    from mlsafety.models import small_cnn_for

    return small_cnn_for(pool, width=width, seed=seed)


def steal(blackbox, extraction, model, pool, budget, mode, seed, **kw):
    box = blackbox.victim(model, budget, SHAPE, mode, k=kw.pop("k", 3))
    kw = {"epochs": 2, "batch_size": 16, **kw}
    return extraction.extract(
        box, pool, budget, generator=torch.Generator().manual_seed(seed), **kw
    )


# --------------------------------------------------------------------------- #
# extract
# --------------------------------------------------------------------------- #


@graded("extract")
def test_extract_spends_exactly_the_budget_on_distinct_pool_images(
    blackbox, extraction, victim_model, pool
):
    box = blackbox.victim(victim_model, 50, SHAPE)
    spy = Spy(box)
    extraction.extract(
        spy, pool, 50, epochs=0, batch_size=16, generator=torch.Generator().manual_seed(4)
    )
    sizes = [len(b) for b in spy.batches]
    assert sizes == [16, 16, 16, 2], (
        f"extract: with budget 50 and batch_size 16 the victim should be asked 16, 16, 16, 2 "
        f"images, got calls of {sizes}; ask once about each chosen image, batch_size at a time"
    )
    asked = torch.cat(spy.batches)
    chosen = torch.randperm(len(pool), generator=torch.Generator().manual_seed(4))[:50]
    assert torch.equal(asked, pool[chosen]), (
        "extract: the queries should be pool[torch.randperm(len(pool), generator=generator)[:budget]], "
        "in that order: choose the images at random with the generator, each at most once"
    )
    assert box.used == 50, f"extract: spent {box.used} queries of a budget of 50"


@graded("extract")
def test_extract_learns_the_probabilities_not_just_the_labels(
    blackbox, extraction, victim_model, pool
):
    teacher = Dominant(victim_model)
    sub = steal(
        blackbox,
        extraction,
        teacher,
        pool,
        64,
        "probs",
        0,
        epochs=10,
        lr=5e-3,
        init=narrow(pool, 8),
    )
    x = pool[:200]
    with torch.no_grad():
        want = teacher(x).softmax(1)[:, 0]
        got = sub(x).softmax(1)[:, 0]
    gap = (got - want).abs().mean().item()
    assert gap < 0.15, (
        f"extract: the victim puts {want.mean().item():.2f} of its probability on class 0, the "
        f"substitute {got.mean().item():.2f} (mean gap {gap:.2f}); with probability answers, train "
        f"on the cross-entropy against the probabilities (soft targets), not against their argmax"
    )


@graded("extract")
def test_extract_renormalises_top_k_answers(blackbox, extraction, victim_model, pool):
    # top-1 answers, renormalised, are one-hot: the same training as label answers
    top1 = steal(blackbox, extraction, victim_model, pool, 48, "top_k", 5, k=1)
    labels = steal(blackbox, extraction, victim_model, pool, 48, "label", 5)
    gap = (weights(top1) - weights(labels)).abs().max().item()
    assert gap < 1e-4, (
        f"extract: top-1 answers should train exactly like label answers once each row is "
        f"renormalised to sum to 1 (largest weight difference {gap:.2e})"
    )


@graded("extract")
def test_extract_probabilities_beat_labels_at_the_same_budget(
    blackbox, extraction, victim_model, pool, held_out
):
    with torch.no_grad():
        target = victim_model(held_out).argmax(1)
    scores = {}
    for mode in ("probs", "label"):  # the same start and the same query set for both modes
        kw = {"epochs": 20, "batch_size": 20, "lr": 5e-3, "init": narrow(pool, 8, seed=2)}
        sub = steal(blackbox, extraction, victim_model, pool, 80, mode, 2, **kw)
        with torch.no_grad():
            scores[mode] = (sub(held_out).argmax(1) == target).float().mean().item()
    assert scores["probs"] >= 0.85, (
        f"extract: 80 probability answers should give a substitute that agrees with the victim on "
        f">= 85% of held-out digits, got {scores['probs']:.1%}"
    )
    assert scores["probs"] > scores["label"] + 0.03, (
        f"extract: at a budget of 80, probabilities should steal better than labels (fidelity "
        f"{scores['probs']:.1%} vs {scores['label']:.1%})"
    )


@graded("extract")
def test_extract_is_reproducible_from_its_generator(blackbox, extraction, victim_model, pool):
    first = steal(blackbox, extraction, victim_model, pool, 32, "probs", 7)
    again = steal(blackbox, extraction, victim_model, pool, 32, "probs", 7)
    other = steal(blackbox, extraction, victim_model, pool, 32, "probs", 8)
    assert torch.equal(weights(first), weights(again)), (
        "extract: the same seeded generator gave different substitutes; draw every random choice "
        "(the images, the initial seed, the shuffling) from `generator`"
    )
    assert not torch.equal(weights(first), weights(other)), (
        "extract: different generators gave the same substitute"
    )
    assert not first.training, "extract: return the substitute in eval mode"


@graded("extract")
def test_extract_starts_from_a_copy_of_init(blackbox, extraction, victim_model, pool):
    from mlsafety.models import small_cnn_for

    init = small_cnn_for(pool, seed=21)
    before = weights(init)
    same = steal(blackbox, extraction, victim_model, pool, 16, "probs", 0, epochs=0, init=init)
    assert same is not init, "extract: return a copy of init, not init itself"
    assert torch.equal(weights(same), before), (
        "extract: with epochs=0 the substitute should be an untrained copy of init"
    )
    trained = steal(blackbox, extraction, victim_model, pool, 16, "probs", 0, epochs=2, init=init)
    assert torch.equal(weights(init), before), "extract: trained init itself; train a copy"
    assert not torch.equal(weights(trained), before), "extract: the substitute did not train"


@graded("extract")
def test_extract_starts_from_a_seeded_small_cnn(blackbox, extraction, victim_model, pool):
    from mlsafety.models import small_cnn_for

    g = torch.Generator().manual_seed(9)
    torch.randperm(len(pool), generator=g)
    seed = int(torch.randint(2**31 - 1, (1,), generator=g))
    box = blackbox.victim(victim_model, 16, SHAPE)
    sub = extraction.extract(box, pool, 16, epochs=0, generator=torch.Generator().manual_seed(9))
    assert torch.equal(weights(sub), weights(small_cnn_for(pool, 10, seed=seed))), (
        "extract: the fresh substitute should be small_cnn_for(pool, num_classes, seed=s) with s "
        "drawn by torch.randint(2**31 - 1, (1,), generator=generator) after choosing the images"
    )


@pytest.mark.parametrize(
    "budget", [2.5, "8", True, np.int64(8)], ids=["float", "str", "bool", "numpy-int"]
)
@graded("extract")
def test_extract_rejects_a_budget_that_is_not_an_int(
    blackbox, extraction, victim_model, pool, budget
):
    box = blackbox.victim(victim_model, 10, SHAPE)
    with pytest.raises(TypeError):
        extraction.extract(box, pool, budget)


@pytest.mark.parametrize("budget", [0, -1])
@graded("extract")
def test_extract_rejects_a_budget_that_is_not_positive(
    blackbox, extraction, victim_model, pool, budget
):
    box = blackbox.victim(victim_model, 10, SHAPE)
    with pytest.raises(ValueError, match="budget"):
        extraction.extract(box, pool, budget)


@graded("extract")
def test_extract_rejects_a_budget_larger_than_the_pool(blackbox, extraction, victim_model, pool):
    box = blackbox.victim(victim_model, 100, SHAPE)
    with pytest.raises(ValueError):
        extraction.extract(box, pool[:20], 30)
    assert box.used == 0, "extract: spent queries before rejecting its arguments"


@pytest.mark.parametrize("bad", ["3d", "uint8"])
@graded("extract")
def test_extract_rejects_a_pool_that_is_not_float_images(
    blackbox, extraction, victim_model, pool, bad
):
    box = blackbox.victim(victim_model, 100, SHAPE)
    x = pool[:20, 0] if bad == "3d" else (pool[:20] * 255).to(torch.uint8)
    with pytest.raises(ValueError):
        extraction.extract(box, x, 10)


# --------------------------------------------------------------------------- #
# fidelity
# --------------------------------------------------------------------------- #


class Noisy(nn.Module):
    """A model with dropout: its train mode answers differently from its eval mode."""

    def __init__(self, model):
        super().__init__()
        self.model, self.drop = model, nn.Dropout(0.9)

    def forward(self, x):
        return self.drop(self.model(x))


def brute_force_agreement(a, b, x):
    with torch.no_grad():
        return sum(
            int(a(x[i : i + 1]).argmax() == b(x[i : i + 1]).argmax()) for i in range(len(x))
        ) / len(x)


@graded("fidelity")
def test_fidelity_is_top1_agreement_over_every_image(extraction, victim_model, held_out):
    from mlsafety.models import small_cnn_for

    other = small_cnn_for(held_out, seed=3).eval()
    x = held_out[:70]
    expected = brute_force_agreement(other, victim_model, x)
    got = python_float("fidelity", extraction.fidelity(other, victim_model, x, batch_size=32))
    assert abs(got - expected) < 1e-9, (
        f"fidelity: expected {expected:.4f} (agreeing images / all 70 images), got {got:.4f}; "
        f"count agreements over every image, not a mean of per-batch rates"
    )
    assert extraction.fidelity(victim_model, victim_model, x) == 1.0, (
        "fidelity: a model agrees with itself on every image"
    )


@graded("fidelity")
def test_fidelity_runs_both_models_in_eval_mode_and_restores_them(
    extraction, victim_model, held_out
):
    a, b = Noisy(victim_model).train(), Noisy(copy.deepcopy(victim_model)).train()
    got = extraction.fidelity(a, b, held_out[:100])
    assert got == 1.0, (
        f"fidelity: two copies of one model (with dropout) agreed on {got:.1%}; evaluate both "
        f"in eval mode"
    )
    assert a.training and b.training, "fidelity: put both models back in the mode they were in"


@graded("fidelity")
def test_fidelity_rejects_an_empty_set(extraction, victim_model, held_out):
    with pytest.raises(ValueError):
        extraction.fidelity(victim_model, victim_model, held_out[:0])


# --------------------------------------------------------------------------- #
# budget_curve
# --------------------------------------------------------------------------- #


@graded("budget_curve")
def test_budget_curve_steals_once_per_budget_and_measures_on_held_out(
    blackbox, extraction, victim_model, pool, held_out
):
    asked = []

    def make_victim(budget):
        asked.append(budget)
        return blackbox.victim(victim_model, budget, SHAPE)

    kw = {"epochs": 5, "batch_size": 12, "lr": 1e-2, "init": narrow(pool, 4)}
    curve = extraction.budget_curve(
        make_victim,
        victim_model,
        pool,
        held_out,
        [48, 24],
        generator=torch.Generator().manual_seed(2),
        **kw,
    )
    assert asked == [48, 24], f"budget_curve: make_victim should be called with 48, 24; got {asked}"
    assert isinstance(curve, list) and len(curve) == 2, (
        f"budget_curve: expected a list of 2, got {curve!r}"
    )
    for value in curve:
        python_float("budget_curve", value)
    g = torch.Generator().manual_seed(2)
    expected = []
    for budget in (48, 24):
        sub = extraction.extract(
            blackbox.victim(victim_model, budget, SHAPE), pool, budget, generator=g, **kw
        )
        with torch.no_grad():
            same = sub(held_out).argmax(1) == victim_model(held_out).argmax(1)
        expected.append(same.sum().item() / len(held_out))
    assert curve == pytest.approx(expected, abs=1e-9), (
        f"budget_curve: expected {expected} (extract with the shared generator, then fidelity on "
        f"x_test, never on the pool), got {curve}"
    )


@graded("budget_curve")
def test_budget_curve_rises_with_the_budget(blackbox, extraction, victim_model, pool, held_out):
    curve = extraction.budget_curve(
        lambda b: blackbox.victim(victim_model, b, SHAPE),
        victim_model,
        pool,
        held_out,
        [10, 80],
        generator=torch.Generator().manual_seed(0),
        epochs=8,
        batch_size=20,
        lr=5e-3,
        init=narrow(pool, 8),
    )
    assert curve[1] > curve[0] + 0.1, (
        f"budget_curve: fidelity at 10 and 80 queries is {curve}; more queries should steal better"
    )


# --------------------------------------------------------------------------- #
# jacobian_augment
# --------------------------------------------------------------------------- #


def reference_augment(model, x, labels, lam):
    out = []
    for xi, yi in zip(x, labels, strict=True):
        xi = xi[None].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(model(xi)[0, yi], xi)
        out.append((xi.detach() + lam * g.sign()).clamp(0, 1))
    return torch.cat([x, *out])


@pytest.mark.parametrize("lam", [0.1, -0.2])
@graded("jacobian_augment")
def test_jacobian_augment_steps_along_the_label_logit_gradient(
    extraction, victim_model, held_out, lam
):
    from mlsafety.models import small_cnn_for

    sub = small_cnn_for(held_out, seed=1).eval()
    x = held_out[:12]
    labels = victim_model(x).argmax(1).detach()
    got = extraction.jacobian_augment(sub, x, labels, lam)
    expected = reference_augment(sub, x, labels, lam)
    assert got.shape == (24, *SHAPE), (
        f"jacobian_augment: expected shape (24, 1, 28, 28), got {tuple(got.shape)}"
    )
    assert torch.equal(got[:12], x), "jacobian_augment: the first half must be x itself"
    frac = ((got - expected).abs() > 1e-5).float().mean().item()
    assert frac < 0.005, (
        f"jacobian_augment: new points differ from clamp(x + lam * sign(d logit_label / dx), 0, 1) "
        f"on {frac:.1%} of pixels (lam={lam})"
    )
    assert got.min() >= 0 and got.max() <= 1, "jacobian_augment: clamp the new points to [0, 1]"


@graded("jacobian_augment")
def test_jacobian_augment_leaves_model_and_input_alone(extraction, held_out):
    from mlsafety.models import small_cnn_for

    sub = small_cnn_for(held_out, seed=2).train()
    params = dict(sub.named_parameters())
    for i, p in enumerate(params.values()):
        p.grad = torch.full_like(p, float(i + 1))
    x = held_out[:6].clone()
    before = x.clone()
    out = extraction.jacobian_augment(sub, x, torch.arange(6), 0.1)
    assert torch.equal(x, before), "jacobian_augment: modified x in place"
    assert not out.requires_grad, "jacobian_augment: return a detached tensor"
    assert sub.training, "jacobian_augment: left the substitute in another mode"
    for i, (k, p) in enumerate(params.items()):
        assert torch.all(p.grad == i + 1), (
            f"jacobian_augment: changed {k}.grad; use torch.autograd.grad with respect to x"
        )
