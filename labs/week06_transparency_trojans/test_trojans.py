"""Specs for trojans.py: stamping a trigger, BadNets poisoning, the attack
success rate, Neural Cleanse's reverse engineering and its MAD outlier test.

Run them with `make test-week6` (add IMPL=solution to see the reference pass).
Every failure message starts with the graded function it is about.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mlsafety.grading import graded
from mlsafety.recipes import TROJAN, trojan_trigger
from mlsafety.specs import array, raises

GRADED = {
    "stamp_trigger": "core",
    "poison_dataset": "core",
    "attack_success_rate": "core",
    "reverse_engineer_trigger": "stretch",
    "mad_anomaly_index": "core",
    "detect_trojan": "core",
}
pytestmark = pytest.mark.timeout(20)


def gap(a, b):
    return (a - b).abs().max().item()


def left_as_found(function, model, call):
    """Run ``call()`` on a model in train mode with preset grads; check it is left alone."""
    model.train()
    params = dict(model.named_parameters())
    first = next(iter(params))
    params[first].requires_grad_(False)
    for i, (k, p) in enumerate(params.items()):
        if k != first:
            p.grad = torch.full_like(p, float(i + 1))
    weights = {k: p.detach().clone() for k, p in params.items()}
    call()
    assert model.training, f"{function}: switched the model to eval mode; use it as it is given"
    for i, (k, p) in enumerate(params.items()):
        assert torch.equal(p.detach(), weights[k]), f"{function}: changed the model's weights ({k})"
        assert p.requires_grad == (k != first), (
            f"{function}: changed requires_grad of the parameter {k}; leave the model's flags alone"
        )
        if k != first:
            assert p.grad is not None and torch.all(p.grad == i + 1), (
                f"{function}: changed {k}.grad; take gradients with torch.autograd.grad, not "
                f".backward(), and never zero the model's gradients"
            )


# --------------------------------------------------------------------------- #
# stamp_trigger
# --------------------------------------------------------------------------- #


@graded("stamp_trigger")
def test_stamp_blends_image_and_pattern_through_the_mask(trojans, gen):
    x = torch.rand(4, 3, 5, 5, generator=gen(0))
    mask = torch.rand(1, 5, 5, generator=gen(1))  # fractional: a blend, shared by the channels
    pattern = torch.rand(3, 5, 5, generator=gen(2))
    before = x.clone()
    got = trojans.stamp_trigger(x, mask, pattern)
    expected = torch.stack([(1 - mask) * xi + mask * pattern for xi in x])
    assert torch.equal(x, before), "stamp_trigger: modified x in place; return a new tensor"
    assert tuple(got.shape) == tuple(x.shape), (
        f"stamp_trigger: output shape {tuple(got.shape)}, expected {tuple(x.shape)}"
    )
    assert gap(got, expected) < 1e-6, (
        f"stamp_trigger: expected (1 - mask) * x + mask * pattern, off by {gap(got, expected):.2e}"
    )
    one = trojans.stamp_trigger(x[0], mask, pattern)
    assert gap(one, expected[0]) < 1e-6, "stamp_trigger: a single image (C, H, W) should work too"
    assert torch.equal(trojans.stamp_trigger(x, torch.zeros(1, 5, 5), pattern), x), (
        "stamp_trigger: a zero mask must leave the images unchanged"
    )
    assert (
        gap(trojans.stamp_trigger(x, torch.ones(1, 5, 5), pattern), pattern.expand_as(x)) < 1e-7
    ), "stamp_trigger: a mask of ones must replace every pixel by the pattern"


@graded("stamp_trigger")
def test_stamp_is_differentiable_in_mask_and_pattern(trojans, gen):
    x = torch.rand(2, 3, 4, 4, generator=gen(3))
    mask = torch.rand(1, 4, 4, generator=gen(4)).requires_grad_(True)
    pattern = torch.rand(3, 4, 4, generator=gen(5)).requires_grad_(True)
    out = trojans.stamp_trigger(x, mask, pattern)
    assert out.requires_grad, (
        "stamp_trigger: the output does not depend on mask and pattern through autograd; "
        "compute it with tensor arithmetic (no .detach(), no thresholding)"
    )
    g_mask, g_pattern = torch.autograd.grad(out.sum(), [mask, pattern])
    # d/dmask sum((1 - m) x + m p) = sum over images and channels of (p - x)
    expected_mask = (pattern - x).sum((0, 1)).unsqueeze(0)
    expected_pattern = (mask * torch.ones_like(x)).sum(0)
    assert gap(g_mask, expected_mask) < 1e-5 and gap(g_pattern, expected_pattern) < 1e-5, (
        "stamp_trigger: gradients with respect to mask and pattern are not those of "
        "(1 - mask) * x + mask * pattern"
    )


# --------------------------------------------------------------------------- #
# poison_dataset
# --------------------------------------------------------------------------- #


def small_set(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 6, 6, generator=g), torch.randint(0, 10, (n,), generator=g)


def corner_trigger():
    mask = torch.zeros(1, 6, 6)
    mask[:, 4:, 4:] = 1.0
    return mask, torch.ones(1, 6, 6)


@pytest.mark.parametrize(
    "n,fraction,expected",
    [(30, 0.05, 1), (40, 0.25, 10), (64, 0.1, 6), (25, 0.0, 0), (12, 1.0, 12)],
    ids=["30x0.05", "40x0.25", "64x0.1", "none", "all"],
)
@graded("poison_dataset")
def test_poison_exactly_floor_fraction_times_n(trojans, gen, n, fraction, expected):
    x, y = small_set(n)
    mask, pattern = corner_trigger()
    _, y_p, idx = trojans.poison_dataset(x, y, fraction, 7, mask, pattern, generator=gen(0))
    count = len(idx)
    assert count == expected, (
        f"poison_dataset: {fraction} of {n} images should poison floor({fraction * n:g}) = "
        f"{expected}, got {count}"
        + (" (use int(fraction * N), not round)" if count == round(fraction * n) else "")
    )


@graded("poison_dataset")
def test_poison_stamps_and_relabels_the_chosen_images_only(trojans, gen):
    x, y = small_set(50, seed=1)
    x_in, y_in = x.clone(), y.clone()
    mask, pattern = corner_trigger()
    target = 7
    x_p, y_p, idx = trojans.poison_dataset(x, y, 0.2, target, mask, pattern, generator=gen(5))
    assert torch.equal(x, x_in) and torch.equal(y, y_in), (
        "poison_dataset: modified the input tensors; poison x.clone() and y.clone()"
    )
    assert isinstance(idx, torch.Tensor) and idx.dtype == torch.int64, (
        f"poison_dataset: indices should be an int64 tensor, got {type(idx).__name__}"
        + (f" of {idx.dtype}" if isinstance(idx, torch.Tensor) else "")
    )
    expected = torch.randperm(50, generator=gen(5))[:10].sort().values
    assert torch.equal(idx.cpu(), expected), (
        f"poison_dataset: poisoned indices {idx.tolist()}, expected the first 10 of "
        f"torch.randperm(50, generator=generator), sorted: {expected.tolist()}"
    )
    chosen = torch.zeros(50, dtype=torch.bool)
    chosen[expected] = True
    assert torch.equal(x_p[~chosen], x[~chosen]), (
        "poison_dataset: changed images that were not chosen; stamp only the poisoned indices"
    )
    assert torch.equal(y_p[~chosen], y[~chosen]), (
        f"poison_dataset: relabelled {(y_p[~chosen] != y[~chosen]).sum().item()} clean samples; "
        f"only the poisoned indices get the target label"
    )
    stamped = (1 - mask) * x[chosen] + mask * pattern
    assert gap(x_p[chosen], stamped) < 1e-6, (
        "poison_dataset: the poisoned images should be stamp_trigger(x[i], mask, pattern)"
    )
    assert torch.all(y_p[chosen] == target), (
        f"poison_dataset: poisoned labels should all be the target {target}, got "
        f"{y_p[chosen].tolist()}"
    )


@graded("poison_dataset")
def test_poison_draws_from_the_generator(trojans, gen):
    x, y = small_set(40, seed=2)
    mask, pattern = corner_trigger()
    state = torch.get_rng_state()
    first = trojans.poison_dataset(x, y, 0.25, 0, mask, pattern, generator=gen(11))
    assert torch.equal(torch.get_rng_state(), state), (
        "poison_dataset: used torch's global random generator; pass generator=generator to "
        "torch.randperm"
    )
    again = trojans.poison_dataset(x, y, 0.25, 0, mask, pattern, generator=gen(11))
    other = trojans.poison_dataset(x, y, 0.25, 0, mask, pattern, generator=gen(12))
    assert torch.equal(first[2], again[2]), (
        "poison_dataset: the same seeded generator chose different images"
    )
    assert not torch.equal(first[2], other[2]), (
        "poison_dataset: different generators chose the same images"
    )
    assert torch.all(first[2][1:] > first[2][:-1]), (
        f"poison_dataset: return the indices in increasing order, got {first[2].tolist()}"
    )


# --------------------------------------------------------------------------- #
# attack_success_rate
# --------------------------------------------------------------------------- #


def reference_asr(model, x, y, mask, pattern, target, include_target=False):
    keep = torch.ones_like(y, dtype=torch.bool) if include_target else y != target
    with torch.no_grad():
        pred = model((1 - mask) * x[keep] + mask * pattern).argmax(1)
    return (pred == target).float().mean().item()


@graded("attack_success_rate")
def test_asr_leaves_out_images_of_the_target_class(trojans, model, digits):
    x, y = digits
    mask, pattern = trojan_trigger(1, 28)
    target = TROJAN["target"]
    expected = reference_asr(model, x, y, mask, pattern, target)
    including = reference_asr(model, x, y, mask, pattern, target, include_target=True)
    assert abs(expected - including) > 0.03, "the spec's digits should contain target images"
    got = trojans.attack_success_rate(model, x, y, mask, pattern, target)
    assert isinstance(got, float), (
        f"attack_success_rate: returned {type(got).__name__}, expected a Python float (.item())"
    )
    assert abs(got - expected) < 1e-9, (
        f"attack_success_rate: on the clean checkpoint, expected {expected:.4f}, got {got:.4f}"
        + (
            "; leave out images whose true label is the target"
            if abs(got - including) < 1e-9
            else "; the fraction of triggered non-target images classified as the target"
        )
    )


@graded("attack_success_rate")
def test_asr_of_the_trojaned_checkpoint(trojans, trojaned_model, model, digits):
    x, y = digits
    mask, pattern = trojan_trigger(1, 28)
    target = TROJAN["target"]
    for name, net in (("trojaned", trojaned_model), ("standard", model)):
        expected = reference_asr(net, x, y, mask, pattern, target)
        got = trojans.attack_success_rate(net, x, y, mask, pattern, target)
        assert abs(got - expected) < 1e-9, (
            f"attack_success_rate: on the {name} checkpoint expected {expected:.4f}, got {got:.4f}; "
            f"stamp the trigger, then count predictions equal to the target"
        )
    assert reference_asr(trojaned_model, x, y, mask, pattern, target) > 0.9, (
        "the trojaned checkpoint should obey its trigger; rebuild it with `make assets`"
    )
    try:
        trojans.attack_success_rate(model, x[:3], torch.full((3,), target), mask, pattern, target)
    except ValueError:
        pass
    else:
        pytest.fail(
            "attack_success_rate: should raise ValueError when every label is the target "
            "(no image is left to measure)",
            pytrace=False,
        )


@graded("attack_success_rate")
def test_asr_leaves_the_model_and_inputs_alone(trojans, model, digits):
    x, y = digits[0][:16].clone(), digits[1][:16].clone()
    before = x.clone()
    mask, pattern = trojan_trigger(1, 28)
    left_as_found(
        "attack_success_rate",
        model,
        lambda: trojans.attack_success_rate(model, x, y, mask, pattern, 0),
    )
    assert torch.equal(x, before), "attack_success_rate: modified the images in place"


# --------------------------------------------------------------------------- #
# reverse_engineer_trigger
# --------------------------------------------------------------------------- #


def reference_reverse(adam, model, x, target, steps, lr, lam, seed):
    """Neural Cleanse for one label, exactly as the docstring describes."""
    g = torch.Generator().manual_seed(seed)
    _, c, h, w = x.shape
    m = torch.randn((1, h, w), generator=g).requires_grad_(True)
    p = torch.randn((c, h, w), generator=g).requires_grad_(True)
    labels = torch.full((len(x),), target)

    def loss():
        mask, pattern = torch.sigmoid(m), torch.sigmoid(p)
        out = model((1 - mask) * x + mask * pattern)
        return F.cross_entropy(out, labels) + lam * mask.sum()

    adam([m, p], loss, steps, lr)
    return torch.sigmoid(m).detach(), torch.sigmoid(p).detach()


@graded("reverse_engineer_trigger")
def test_reverse_engineering_follows_the_reference(trojans, world, gen, adam):
    net, x = world["clean"], world["probe"][:16]
    for lam in (0.0, 0.05):
        mask, pattern = reference_reverse(adam, net, x, 5, steps=6, lr=0.1, lam=lam, seed=3)
        got = trojans.reverse_engineer_trigger(
            net, x, 5, steps=6, lr=0.1, lam=lam, generator=gen(3)
        )
        assert isinstance(got, tuple) and len(got) == 2, (
            "reverse_engineer_trigger: return a tuple (mask, pattern)"
        )
        got_mask, got_pattern = got
        assert tuple(got_mask.shape) == (1, 8, 8) and tuple(got_pattern.shape) == (1, 8, 8), (
            f"reverse_engineer_trigger: mask should be (1, H, W) = (1, 8, 8) and pattern "
            f"(C, H, W) = (1, 8, 8), got {tuple(got_mask.shape)} and {tuple(got_pattern.shape)}"
        )
        off = max(gap(got_mask, mask), gap(got_pattern, pattern))
        assert off < 1e-5, (
            f"reverse_engineer_trigger: after 6 Adam steps (lr=0.1, lam={lam}) the trigger differs "
            f"from the reference by {off:.2e}; start from m = randn((1, H, W)) then "
            f"p = randn((C, H, W)) from the generator, mask = sigmoid(m), pattern = sigmoid(p), "
            f"loss = mean cross-entropy to the target + lam * mask.sum()"
        )


@graded("reverse_engineer_trigger")
def test_reverse_engineering_output_and_randomness(trojans, world, gen):
    net, x = world["clean"], world["probe"][:8]
    state = torch.get_rng_state()
    mask, pattern = trojans.reverse_engineer_trigger(net, x, 1, steps=3, generator=gen(1))
    assert torch.equal(torch.get_rng_state(), state), (
        "reverse_engineer_trigger: used torch's global random generator; draw the start from "
        "generator"
    )
    for name, t in (("mask", mask), ("pattern", pattern)):
        assert not t.requires_grad, f"reverse_engineer_trigger: the {name} still requires grad"
        assert t.min().item() >= 0 and t.max().item() <= 1, (
            f"reverse_engineer_trigger: the {name} leaves [0, 1] (min {t.min().item():.3f}, max "
            f"{t.max().item():.3f}); return sigmoid of the optimised tensor"
        )
    again = trojans.reverse_engineer_trigger(net, x, 1, steps=3, generator=gen(1))
    other = trojans.reverse_engineer_trigger(net, x, 1, steps=3, generator=gen(2))
    assert torch.equal(mask, again[0]) and torch.equal(pattern, again[1]), (
        "reverse_engineer_trigger: the same seeded generator gave different triggers"
    )
    assert not torch.equal(mask, other[0]), (
        "reverse_engineer_trigger: different generators gave the same trigger"
    )
    left_as_found(
        "reverse_engineer_trigger",
        net,
        lambda: trojans.reverse_engineer_trigger(net, x, 1, steps=2, generator=gen(1)),
    )


@graded("reverse_engineer_trigger")
def test_reverse_engineering_of_colour_images_shares_one_mask(trojans, smooth, gen):
    net = smooth(shape=(3, 4, 4), classes=4)
    x = torch.rand(5, 3, 4, 4, generator=gen(6))
    mask, pattern = trojans.reverse_engineer_trigger(net, x, 2, steps=2, generator=gen(7))
    assert tuple(mask.shape) == (1, 4, 4) and tuple(pattern.shape) == (3, 4, 4), (
        f"reverse_engineer_trigger: for images (N, 3, 4, 4) the mask should be (1, 4, 4), one "
        f"mask shared by the channels, and the pattern (3, 4, 4); got {tuple(mask.shape)} and "
        f"{tuple(pattern.shape)}"
    )
    assert mask.dtype == x.dtype and mask.device == x.device, (
        "reverse_engineer_trigger: the mask should have x's dtype and device"
    )


@graded("reverse_engineer_trigger")
def test_reverse_engineering_finds_the_trojan(trojans, world, gen):
    net, x, target = world["trojaned"], world["probe"], world["target"]
    norms = {}
    for label in (target, (target + 2) % 10, (target + 5) % 10):
        mask, pattern = trojans.reverse_engineer_trigger(
            net, x, label, generator=gen(0), **world["nc"]
        )
        with torch.no_grad():
            hit = (net((1 - mask) * x + mask * pattern).argmax(1) == label).float().mean().item()
        assert hit > 0.9, (
            f"reverse_engineer_trigger: the trigger found for label {label} sends only {hit:.0%} "
            f"of the images there; the cross-entropy should pull them to the target"
        )
        norms[label] = mask.sum().item()
    others = min(v for k, v in norms.items() if k != target)
    assert norms[target] < 0.6 * others, (
        f"reverse_engineer_trigger: on a model trojaned to label {target}, its mask should be much "
        f"smaller than other labels' (L1 norms { ({k: round(v, 2) for k, v in norms.items()}) }); is "
        f"the L1 penalty lam * mask.sum() added to the loss (and minimised)?"
    )


# --------------------------------------------------------------------------- #
# mad_anomaly_index
# --------------------------------------------------------------------------- #


@graded("mad_anomaly_index")
def test_mad_index_of_hand_computed_vectors(trojans):
    # [1, 2, 3, 4, 100, 6]: sorted 1 2 3 4 6 100, median (3 + 4) / 2 = 3.5;
    # |v - 3.5| = 2.5 1.5 0.5 0.5 96.5 2.5, sorted 0.5 0.5 1.5 2.5 2.5 96.5, MAD = 2;
    # index = |v - 3.5| / (1.4826 * 2).
    values = torch.tensor([1.0, 2.0, 3.0, 4.0, 100.0, 6.0])
    before = values.clone()
    got = array("mad_anomaly_index", trojans.mad_anomaly_index(values), (6,))
    expected = np.array([2.5, 1.5, 0.5, 0.5, 96.5, 2.5]) / (1.4826 * 2.0)
    assert torch.equal(values, before), "mad_anomaly_index: modified its input"
    assert np.allclose(got, expected, rtol=1e-6), (
        f"mad_anomaly_index: for [1, 2, 3, 4, 100, 6] (median 3.5, MAD 2) expected "
        f"{np.round(expected, 4).tolist()}, got {np.round(got, 4).tolist()}"
        + (
            "; scale the MAD by the consistency constant 1.4826"
            if np.allclose(got, expected * 1.4826, rtol=1e-6)
            else "; the median of an even count is the mean of the two middle values"
        )
    )
    # [10, 12, 9, 11, 50]: median 11, |v - 11| = 1 1 2 0 39, MAD = 1.
    odd = array("mad_anomaly_index", trojans.mad_anomaly_index([10.0, 12.0, 9.0, 11.0, 50.0]), (5,))
    expected = np.array([1.0, 1.0, 2.0, 0.0, 39.0]) / 1.4826
    assert np.allclose(odd, expected, rtol=1e-6), (
        f"mad_anomaly_index: for [10, 12, 9, 11, 50] (median 11, MAD 1) expected "
        f"{np.round(expected, 4).tolist()}, got {np.round(odd, 4).tolist()}"
    )


@graded("mad_anomaly_index")
def test_mad_index_against_numpy(trojans):
    rng = np.random.default_rng(0)
    for n in (10, 7, 2):
        values = rng.gamma(2.0, 3.0, size=n)
        dev = np.abs(values - np.median(values))
        expected = dev / (1.4826 * np.median(dev))
        given = torch.tensor(values)
        got = array("mad_anomaly_index", trojans.mad_anomaly_index(given), (n,))
        assert torch.equal(given, torch.tensor(values)), (
            "mad_anomaly_index: modified its input (sorted it in place?); work on a copy"
        )
        assert np.allclose(got, expected, rtol=1e-6), (
            f"mad_anomaly_index: on {n} values differs from |v - median| / (1.4826 * MAD) with "
            f"numpy.median (max gap {np.abs(got - expected).max():.2e}); torch.median returns "
            f"the lower middle value for an even count"
        )


@graded("mad_anomaly_index")
def test_mad_index_when_the_mad_is_zero(trojans):
    got = array("mad_anomaly_index", trojans.mad_anomaly_index([5.0, 5.0, 5.0, 7.0]), (4,))
    assert not np.isnan(got).any(), (
        f"mad_anomaly_index: MAD = 0 for [5, 5, 5, 7] gave nan ({got.tolist()}); values equal to "
        f"the median get 0, the others inf"
    )
    assert got.tolist() == [0.0, 0.0, 0.0, np.inf], (
        f"mad_anomaly_index: for [5, 5, 5, 7] (MAD 0) expected [0, 0, 0, inf], got {got.tolist()}"
    )


# --------------------------------------------------------------------------- #
# detect_trojan
# --------------------------------------------------------------------------- #


def labels(function, value):
    assert isinstance(value, list) and all(isinstance(v, int) for v in value), (
        f"{function}: return a list of Python ints, got {value!r}"
    )
    return value


@graded("detect_trojan")
def test_detect_flags_only_unusually_small_norms(trojans):
    norms = [30.0, 28.0, 5.0, 31.0, 29.0, 27.0, 33.0, 30.0, 60.0, 29.0]
    # median 29.5, MAD 1.5: label 2 has index 11.0 (small side), label 8 has 13.7 (large side)
    got = labels("detect_trojan", trojans.detect_trojan(torch.tensor(norms)))
    assert got == [2], (
        f"detect_trojan: norms {norms} should flag [2] only (index 11.0, below the median); label 8 "
        f"is an outlier on the large side, which a trojan never causes; got {got} (detect_trojan "
        f"builds on mad_anomaly_index: make that pass first)"
    )
    two = [30.0, 28.0, 6.0, 31.0, 29.0, 27.0, 33.0, 5.0, 30.0, 29.0]
    got = labels("detect_trojan", trojans.detect_trojan(two))
    assert got == [2, 7], (
        f"detect_trojan: norms {two} should flag [2, 7] (labels in increasing order), got {got}"
    )
    assert labels("detect_trojan", trojans.detect_trojan([10.0, 11.0, 9.0, 10.5, 9.5])) == [], (
        "detect_trojan: no outlier in [10, 11, 9, 10.5, 9.5], so nothing should be flagged"
    )


@graded("detect_trojan")
def test_detect_uses_the_threshold(trojans):
    # median 10, MAD 1: label 0 has index 4 / 1.4826 = 2.70
    norms = [6.0, 10.0, 11.0, 9.0, 10.0, 12.0, 8.0]
    for threshold, expected in ((2.0, [0]), (2.5, [0]), (3.0, [])):
        got = labels("detect_trojan", trojans.detect_trojan(norms, threshold=threshold))
        assert got == expected, (
            f"detect_trojan: label 0 has anomaly index 2.70 in {norms}; with threshold="
            f"{threshold} expected {expected}, got {got}"
        )


@graded("detect_trojan")
def test_detect_names_the_trojan_of_a_trojaned_model(trojans, world):
    norms = world["norms"]
    flagged = labels("detect_trojan", trojans.detect_trojan(norms["trojaned"]))
    assert flagged == [world["target"]], (
        f"detect_trojan: Neural Cleanse mask norms of a model trojaned to label {world['target']} "
        f"are {[round(v, 1) for v in norms['trojaned'].tolist()]}; expected [{world['target']}], "
        f"got {flagged} (does mad_anomaly_index pass?)"
    )
    clean = labels("detect_trojan", trojans.detect_trojan(norms["clean"]))
    assert clean == [], (
        f"detect_trojan: the clean model's mask norms {[round(v, 1) for v in norms['clean'].tolist()]} "
        f"have no small outlier, expected [], got {clean}"
    )


# --------------------------------------------------------------------------- #
# Documented defaults, ends of ranges and bad arguments.
# --------------------------------------------------------------------------- #


@graded("poison_dataset")
def test_poison_rejects_fractions_outside_0_1(trojans, gen):
    x, y = small_set(10)
    mask, pattern = corner_trigger()
    for bad in (1.5, -0.1):
        raises(
            "poison_dataset",
            ValueError,
            lambda bad=bad: trojans.poison_dataset(x, y, bad, 3, mask, pattern, generator=gen(0)),
            f"fraction={bad} is outside [0, 1]",
        )


@graded("reverse_engineer_trigger")
def test_reverse_engineering_start_and_defaults(trojans, smooth, gen):
    net = smooth(shape=(2, 4, 4), classes=4, seed=2)
    x = torch.rand(3, 2, 4, 4, generator=gen(30))
    mask, pattern = trojans.reverse_engineer_trigger(net, x, 1, steps=0, generator=gen(31))
    g = gen(31)
    m0 = torch.randn((1, 4, 4), generator=g)
    p0 = torch.randn((2, 4, 4), generator=g)
    assert gap(mask, torch.sigmoid(m0)) < 1e-6 and gap(pattern, torch.sigmoid(p0)) < 1e-6, (
        "reverse_engineer_trigger: with steps=0 (allowed: steps >= 0) it should return the start "
        "sigmoid(m), sigmoid(p), with m = randn((1, H, W)) drawn first and p = randn((C, H, W)) "
        "second from the generator, before any Adam step"
    )
    default = trojans.reverse_engineer_trigger(net, x, 1, generator=gen(32))
    explicit = trojans.reverse_engineer_trigger(
        net, x, 1, steps=100, lr=0.1, lam=0.01, generator=gen(32)
    )
    off = max(gap(default[0], explicit[0]), gap(default[1], explicit[1]))
    assert off < 1e-6, (
        f"reverse_engineer_trigger: the defaults should be steps=100, lr=0.1, lam=0.01; the "
        f"trigger found with the defaults differs from the one with them given by {off:.3g}"
    )


@graded("mad_anomaly_index")
def test_mad_index_of_one_value_and_its_dtype(trojans):
    one = trojans.mad_anomaly_index(torch.tensor([3.5]))
    assert array("mad_anomaly_index", one, (1,)).tolist() == [0.0], (
        f"mad_anomaly_index: a single value is its own median (MAD 0), so its index is 0, got "
        f"{one.tolist() if isinstance(one, torch.Tensor) else one}"
    )
    out = trojans.mad_anomaly_index(torch.tensor([1.0, 2.0, 4.0, 8.0], dtype=torch.float32))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64, (
        f"mad_anomaly_index: float32 values should give a float64 tensor, got "
        f"{type(out).__name__} {getattr(out, 'dtype', '')}"
    )


@graded("detect_trojan")
def test_detect_default_threshold_and_strict_comparison(trojans):
    # median 10, MAD 1: label 0 has index 3.5 / 1.4826 = 2.36, above 2 but below 2.5
    norms = [6.5, 10.0, 11.0, 9.0, 10.0, 12.0, 8.0]
    got = labels("detect_trojan", trojans.detect_trojan(norms))
    assert got == [0], (
        f"detect_trojan: with the default threshold 2, label 0 (index 2.36) should be flagged in "
        f"{norms}, got {got}"
    )
    # MAD 0: label 3 has index inf, and inf does not exceed a threshold of inf
    tied = [5.0, 5.0, 5.0, 1.0]
    at_inf = labels("detect_trojan", trojans.detect_trojan(tied, threshold=float("inf")))
    below = labels("detect_trojan", trojans.detect_trojan(tied, threshold=1e300))
    assert at_inf == [] and below == [3], (
        f"detect_trojan: in {tied} label 3 has index inf; it exceeds threshold 1e300 (flag [3]) "
        f"but not threshold inf (flag nothing): the comparison is strict, index > threshold; "
        f"got {below} and {at_inf}"
    )
