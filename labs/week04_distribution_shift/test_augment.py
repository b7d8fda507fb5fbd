"""Specs for augment.py: Mixup, AugMix and the Jensen-Shannon consistency loss.

Run them with `make test-week4` (add IMPL=solution to see the reference pass).
Every failure message starts with the graded function it is about.
"""

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mlsafety.grading import graded
from mlsafety.specs import same_global_draw

GRADED = {"mixup": "core", "augmix": "stretch", "jsd_consistency": "core"}
pytestmark = pytest.mark.timeout(20)


def beta_variance(a):
    """Variance of Beta(a, a)."""
    return 1 / (4 * (2 * a + 1))


def pair(function, out):
    """A result that should be a pair of tensors, checked (a readable failure otherwise)."""
    if not (isinstance(out, tuple) and len(out) == 2):
        pytest.fail(
            f"{function}: expected a tuple (x_mixed, y_soft), got {type(out).__name__}",
            pytrace=False,
        )
    return out


# --------------------------------------------------------------------------- #
# mixup
# --------------------------------------------------------------------------- #


def basis_images(n, side=32):
    """Image i is black except pixel i, which is 1: a mixed image shows who was mixed, and how much."""
    x = torch.zeros(n, 1, side, side)
    x.view(n, -1)[torch.arange(n), torch.arange(n)] = 1.0
    return x


def read_mixing(x_mixed):
    """Recover, for every mixed basis image i, its own weight lam[i] and its partner."""
    n = len(x_mixed)
    flat = x_mixed.reshape(n, -1)[:, :n]
    lam = flat[torch.arange(n), torch.arange(n)].clone()
    others = flat.clone()
    others[torch.arange(n), torch.arange(n)] = 0
    partner = torch.where(others.max(dim=1).values > 0, others.argmax(dim=1), torch.arange(n))
    return lam, partner


@graded("mixup")
def test_mixup_labels_mix_with_the_same_weight_as_the_images(augment, rng):
    n, k = 1000, 10
    x = basis_images(n)
    y = torch.as_tensor(np.random.default_rng(1).integers(k, size=n))
    x_mixed, y_soft = pair("mixup", augment.mixup(x, y, 0.4, rng(0), k))
    lam, partner = read_mixing(x_mixed)
    onehot = F.one_hot(y, k).float()
    expected = lam[:, None] * onehot + (1 - lam[:, None]) * onehot[partner]
    gap = (y_soft - expected).abs().max().item()
    worst = (y_soft - expected).abs().amax(dim=1).argmax().item()
    assert gap < 1e-5, (
        f"mixup: image {worst} is {lam[worst].item():.3f} of itself and "
        f"{1 - lam[worst].item():.3f} of image {partner[worst].item()}, so its soft label should be "
        f"{lam[worst].item():.3f} x onehot({y[worst].item()}) + {1 - lam[worst].item():.3f} x "
        f"onehot({y[partner[worst]].item()}), but it is off by {gap:.3f}; mix the labels with the "
        f"same per-image weight and the same partner as the images"
    )
    seen = partner[lam < 1 - 1e-6].tolist()  # where 1 - lam rounds to 0 the partner is invisible
    assert len(set(seen)) == len(seen), (
        f"mixup: the partners should be a permutation of the batch (every image the partner of "
        f"exactly one), but {len(seen) - len(set(seen))} of {n} images were the partner of two or "
        f"more; use perm = rng.permutation(N)"
    )


@pytest.mark.parametrize("alpha", [0.4, 2.0])
@graded("mixup")
def test_mixup_weights_are_per_image_beta_draws(augment, rng, alpha):
    n = 1000
    x = basis_images(n)
    y = torch.zeros(n, dtype=torch.int64)
    x_mixed, _ = pair("mixup", augment.mixup(x, y, alpha, rng(2), 10))
    lam, partner = read_mixing(x_mixed)
    lam = lam[partner != torch.arange(n)]  # an image mixed with itself shows no weight
    mean, var = lam.mean().item(), lam.var().item()
    expected = beta_variance(alpha)
    assert var > 1e-6, (
        f"mixup: every image got the same weight lam = {mean:.3f}; draw one weight per image "
        f"(rng.beta(alpha, alpha, size=N))"
    )
    assert abs(mean - 0.5) < 0.06 and abs(var - expected) < 0.2 * expected, (
        f"mixup: with alpha={alpha} the weights should follow Beta({alpha}, {alpha}) (mean 0.5, "
        f"variance {expected:.4f}), got mean {mean:.3f} and variance {var:.4f}"
    )


@graded("mixup")
def test_mixup_follows_the_documented_draws(augment, digits, rng):
    x, y = digits
    x_mixed, y_soft = pair("mixup", augment.mixup(x, y, 0.7, rng(4), 10))
    r = rng(4)
    lam = torch.as_tensor(r.beta(0.7, 0.7, size=len(x)), dtype=x.dtype)
    perm = torch.as_tensor(r.permutation(len(x)))
    expected_x = lam.view(-1, 1, 1, 1) * x + (1 - lam.view(-1, 1, 1, 1)) * x[perm]
    onehot = F.one_hot(y, 10).to(x.dtype)
    expected_y = lam[:, None] * onehot + (1 - lam[:, None]) * onehot[perm]
    gap_x = (x_mixed - expected_x).abs().max().item()
    gap_y = (y_soft - expected_y).abs().max().item()
    assert gap_x < 1e-5 and gap_y < 1e-5, (
        f"mixup: differs from the reference (images by {gap_x:.4f}, labels by {gap_y:.4f}); draw "
        f"lam = rng.beta(alpha, alpha, size=N) first, then perm = rng.permutation(N), and mix "
        f"image i with image perm[i] as the docstring says"
    )


@graded("mixup")
def test_mixup_results_are_like_the_inputs(augment, digits, rng):
    x, y = digits
    before_x, before_y = x.clone(), y.clone()
    for dtype in (torch.float32, torch.float64):
        x_mixed, y_soft = pair("mixup", augment.mixup(x.to(dtype), y, 1.0, rng(), 10))
        assert x_mixed.shape == x.shape and y_soft.shape == (len(x), 10), (
            f"mixup: shapes {tuple(x_mixed.shape)} and {tuple(y_soft.shape)}, expected "
            f"{tuple(x.shape)} and {(len(x), 10)}"
        )
        assert x_mixed.dtype == dtype and y_soft.dtype == dtype, (
            f"mixup: on {dtype} images returned {x_mixed.dtype} images and {y_soft.dtype} labels; "
            f"both should have the images' dtype"
        )
        assert x_mixed.device == x.device and y_soft.device == x.device, (
            "mixup: results must be on the images' device"
        )
        sums = y_soft.sum(dim=1)
        assert torch.allclose(sums, torch.ones_like(sums), atol=1e-6) and y_soft.min() >= 0, (
            f"mixup: every soft label must be non-negative and sum to 1 (sums from "
            f"{sums.min().item():.3f} to {sums.max().item():.3f})"
        )
        assert x_mixed.min() >= 0 and x_mixed.max() <= 1, "mixup: mixed images left [0, 1]"
    assert torch.equal(x, before_x) and torch.equal(y, before_y), "mixup: modified x or y in place"


@graded("mixup")
def test_mixup_randomness_only_from_rng(augment, digits, rng):
    x, y = digits
    state = torch.get_rng_state()
    first = pair("mixup", augment.mixup(x, y, 1.0, rng(5), 10))
    again = augment.mixup(x, y, 1.0, rng(5), 10)
    other = augment.mixup(x, y, 1.0, rng(6), 10)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1]), (
        "mixup: the same seed gave different results"
    )
    assert not torch.equal(first[0], other[0]), (
        "mixup: different seeds gave the same result; draw from `rng`"
    )
    assert torch.equal(torch.get_rng_state(), state), (
        "mixup: used torch's global generator; draw lam and the permutation from `rng`"
    )
    assert same_global_draw(lambda: augment.mixup(x, y, 1.0, rng(5), 10)), (
        "mixup: used the global numpy.random state; draw from `rng`"
    )


# --------------------------------------------------------------------------- #
# augmix. The specs hand it operations of their own that show what it did.
# --------------------------------------------------------------------------- #


class Identity:
    def __call__(self, x, rng):
        return x.clone()


class Constant:
    """Its t-th call returns an image filled with values[t] (depth 1: call t builds chain t)."""

    def __init__(self, values):
        self.values, self.calls = list(values), 0

    def __call__(self, x, rng):
        value = self.values[self.calls % len(self.values)]
        self.calls += 1
        return torch.full_like(x, value)


class Step:
    """Adds 0.01 and records the value it was given, and which op it was."""

    def __init__(self, log, tag=0):
        self.log, self.tag = log, tag

    def __call__(self, x, rng):
        self.log.append((round(x.flatten()[0].item() * 100), self.tag, rng))
        return x + 0.01


def chain_lengths(log):
    """Split the recorded calls of one augmix call into chains: a chain starts from the original (0)."""
    lengths = []
    for start, _, _ in log:
        if start == 0:
            lengths.append(0)
        if lengths:
            lengths[-1] += 1
    return lengths


def weights(augment, alpha, n=3000, width=3, seed=0):
    """Recover every image's mixing weight m and chain weights w from augmix with constant ops."""
    x = torch.zeros(n, 1, 1, 1)
    total = augment.augmix(
        x,
        np.random.default_rng(seed),
        width=width,
        depth=1,
        alpha=alpha,
        ops=[Constant([1.0] * width)],
    )
    m = total.flatten()
    w = []
    for j in range(width):
        values = [1.0 if i == j else 0.0 for i in range(width)]
        out = augment.augmix(
            x,
            np.random.default_rng(seed),
            width=width,
            depth=1,
            alpha=alpha,
            ops=[Constant(values)],
        )
        w.append(out.flatten() / m.clamp_min(1e-12))
    return m, torch.stack(w, dim=1)


@graded("augmix")
def test_augmix_with_identity_ops_returns_the_input(augment, digits, rng):
    x, _ = digits
    for width, depth, alpha in ((3, -1, 1.0), (1, 2, 0.5), (4, 1, 3.0)):
        out = augment.augmix(x, rng(width), width=width, depth=depth, alpha=alpha, ops=[Identity()])
        gap = (out - x).abs().max().item()
        assert gap < 1e-5, (
            f"augmix: with operations that change nothing the result must equal x (width={width}, "
            f"depth={depth}, alpha={alpha}), but differs by {gap:.4f}; the chain weights must sum "
            f"to 1 and the final mix be (1 - m) * x + m * mix"
        )


@pytest.mark.parametrize("alpha", [0.5, 3.0])
@graded("augmix")
def test_augmix_mixing_weights_are_per_image_beta(augment, alpha):
    m, _ = weights(augment, alpha)
    expected = beta_variance(alpha)
    mean, var = m.mean().item(), m.var().item()
    assert var > 1e-6, (
        f"augmix: every image got the same mixing weight m = {mean:.3f}; draw one m per image"
    )
    assert abs(mean - 0.5) < 0.035 and abs(var - expected) < 0.15 * expected, (
        f"augmix: with alpha={alpha} the weight of the mixed chains should follow "
        f"Beta({alpha}, {alpha}) (mean 0.5, variance {expected:.4f}), got mean {mean:.3f} and "
        f"variance {var:.4f}"
    )


@pytest.mark.parametrize("alpha", [0.5, 3.0])
@graded("augmix")
def test_augmix_chain_weights_are_per_image_dirichlet(augment, alpha):
    m, w = weights(augment, alpha)
    w = w[m > 0.05]  # w is read off m * w: skip images where m is tiny
    sums = w.sum(dim=1)
    assert torch.allclose(sums, torch.ones_like(sums), atol=1e-3), (
        f"augmix: the chain weights of an image should sum to 1, got sums from "
        f"{sums.min().item():.3f} to {sums.max().item():.3f}"
    )
    expected = (
        (1 / 3) * (2 / 3) / (3 * alpha + 1)
    )  # variance of one Dirichlet(alpha, alpha, alpha) weight
    means, variances = w.mean(dim=0), w.var(dim=0)
    assert variances.min().item() > 1e-6, (
        f"augmix: every image got the same chain weights {[round(v, 3) for v in means.tolist()]}; "
        f"draw one Dirichlet vector per image (rng.dirichlet([alpha] * width, size=N))"
    )
    assert (means - 1 / 3).abs().max().item() < 0.03 and (
        (variances - expected).abs().max().item() < 0.15 * expected
    ), (
        f"augmix: with alpha={alpha} the chain weights should be Dirichlet({alpha}, {alpha}, "
        f"{alpha}) (mean 1/3, variance {expected:.4f}), got means "
        f"{[round(v, 3) for v in means.tolist()]} and variances "
        f"{[round(v, 4) for v in variances.tolist()]}"
    )


@graded("augmix")
def test_augmix_chains_start_from_the_original_with_1_to_3_ops(augment, rng):
    x = torch.zeros(1, 1, 1, 1)  # one image: chains per batch and per image look the same
    r = rng(9)
    all_lengths, tags, equal = [], [], 0
    for _ in range(300):
        log = []
        augment.augmix(x, r, width=3, depth=-1, ops=[Step(log, 0), Step(log, 1), Step(log, 2)])
        lengths = chain_lengths(log)
        assert len(lengths) == 3 and sum(lengths) == len(log), (
            f"augmix: with width=3 expected 3 chains that each start again from the original x, "
            f"got op inputs {[s / 100 for s, _, _ in log]}; start every chain from x, not from "
            f"the previous chain"
        )
        assert all(entry[2] is r for entry in log), (
            "augmix: pass the rng you were given to every operation: op(images, rng)"
        )
        all_lengths += lengths
        tags += [tag for _, tag, _ in log]
        equal += len(set(lengths)) == 1
    counts = [all_lengths.count(d) / len(all_lengths) for d in (1, 2, 3)]
    assert set(all_lengths) <= {1, 2, 3} and min(counts) > 0.25, (
        f"augmix: with depth=-1 every chain should apply 1, 2 or 3 operations, each about a third "
        f"of the time; got shares {[round(c, 3) for c in counts]} for 1, 2, 3 and lengths "
        f"{sorted(set(all_lengths))}; rng.integers(1, 4) draws from 1 to 3"
    )
    assert equal / 300 < 0.3, (
        f"augmix: the three chains had the same depth in {equal} of 300 calls (expected about "
        f"1 in 9); draw a new depth for every chain, without overwriting the `depth` argument"
    )
    picks = [tags.count(t) / len(tags) for t in range(3)]
    assert min(picks) > 0.25, (
        f"augmix: each of 3 operations should be picked about a third of the time, got "
        f"{[round(p, 3) for p in picks]}; pick ops[rng.integers(len(ops))]"
    )


@graded("augmix")
def test_augmix_respects_width_and_depth(augment, rng):
    x = torch.zeros(1, 1, 1, 1)  # one image: chains per batch and per image look the same
    for width, depth in ((1, 1), (2, 2), (5, 4)):
        log = []
        augment.augmix(x, rng(), width=width, depth=depth, ops=[Step(log)])
        lengths = chain_lengths(log)
        assert lengths == [depth] * width, (
            f"augmix: width={width}, depth={depth} should build {width} chains of {depth} "
            f"operations each, got chains of {lengths}"
        )


@graded("augmix")
def test_augmix_results_are_like_the_input(augment, digits, rng):
    x, _ = digits
    before = x.clone()
    for dtype in (torch.float32, torch.float64):
        out = augment.augmix(x.to(dtype), rng())
        assert isinstance(out, torch.Tensor) and out.shape == x.shape, (
            f"augmix: expected a tensor of shape {tuple(x.shape)}"
        )
        assert out.dtype == dtype and out.device == x.device, (
            f"augmix: on {dtype} images returned {out.dtype} on {out.device}; keep the images' "
            f"dtype and device (torch.as_tensor(w, dtype=x.dtype, device=x.device))"
        )
        assert out.min() >= 0 and out.max() <= 1, (
            f"augmix: values left [0, 1] ({out.min().item():.3f} to {out.max().item():.3f})"
        )
    assert torch.equal(x, before), "augmix: modified x in place"
    assert not torch.equal(augment.augmix(x, rng()), x), (
        "augmix: with the default operations (ops=None) the images should change"
    )


@graded("augmix")
def test_augmix_randomness_only_from_rng(augment, digits, rng):
    x = digits[0][:16]
    state = torch.get_rng_state()
    first = augment.augmix(x, rng(3))
    again = augment.augmix(x, rng(3))
    other = augment.augmix(x, rng(4))
    default = augment.augmix(x, rng(3), ops=augment.AUGMIX_OPS)
    assert torch.equal(first, again), "augmix: the same seed gave different results"
    assert not torch.equal(first, other), "augmix: different seeds gave the same result"
    assert torch.equal(first, default), "augmix: ops=None should mean ops=AUGMIX_OPS"
    assert torch.equal(torch.get_rng_state(), state), (
        "augmix: used torch's global generator; draw from `rng`"
    )
    assert same_global_draw(lambda: augment.augmix(x, rng(3))), (
        "augmix: used the global numpy.random state; draw from `rng`"
    )


# --------------------------------------------------------------------------- #
# jsd_consistency
# --------------------------------------------------------------------------- #


def reference_jsd(a, b, c):
    """Plain float64: per example, the mean KL of each distribution to the mixture."""
    ps = [F.softmax(z.double(), dim=1) for z in (a, b, c)]
    m = (ps[0] + ps[1] + ps[2]) / 3
    per_example = []
    for i in range(len(m)):
        kls = [
            sum(p[i, k] * math.log(p[i, k] / m[i, k]) for k in range(m.shape[1]) if p[i, k] > 0)
            for p in ps
        ]
        per_example.append(sum(kls) / 3)
    return sum(per_example) / len(per_example)


def logits(seed, n=6, k=5, scale=2.0):
    return torch.randn(n, k, generator=torch.Generator().manual_seed(seed)) * scale


def value(out):
    if not isinstance(out, torch.Tensor) or out.dim() != 0:
        pytest.fail(
            f"jsd_consistency: expected a 0-dimensional tensor, got "
            f"{type(out).__name__}{'' if not isinstance(out, torch.Tensor) else tuple(out.shape)}",
            pytrace=False,
        )
    return out.item()


@graded("jsd_consistency")
def test_jsd_against_a_plain_reference(augment):
    for seed, scale in ((0, 0.5), (1, 2.0), (2, 6.0)):
        a, b, c = (
            logits(seed, scale=scale),
            logits(seed + 10, scale=scale),
            logits(seed + 20, scale=scale),
        )
        got = value(augment.jsd_consistency(a, b, c))
        expected = reference_jsd(a, b, c)
        assert abs(got - expected) < 1e-5, (
            f"jsd_consistency: expected {expected:.6f} on random logits (scale {scale}), got "
            f"{got:.6f}; average KL(p_i || M) over the three distributions and over the batch, "
            f"with M = (p1 + p2 + p3) / 3"
        )


@graded("jsd_consistency")
def test_jsd_is_zero_for_identical_predictions(augment):
    a = logits(3)
    shifted = a + torch.arange(6.0)[:, None]  # the same softmax, row by row
    for args in ((a, a, a), (a, shifted, a)):
        got = value(augment.jsd_consistency(*args))
        assert abs(got) < 1e-6, (
            f"jsd_consistency: three identical predictive distributions should give 0, got "
            f"{got:.6f}; compare softmax probabilities, not raw logits"
        )


@graded("jsd_consistency")
def test_jsd_is_symmetric(augment):
    z = [logits(4), logits(5), logits(6)]
    values = [value(augment.jsd_consistency(*p)) for p in itertools.permutations(z)]
    spread = max(values) - min(values)
    assert spread < 1e-6, (
        f"jsd_consistency: the order of the three arguments should not matter, but the 6 orders "
        f"give values from {min(values):.6f} to {max(values):.6f}; treat all three alike (KL of "
        f"each to the mixture)"
    )


@graded("jsd_consistency")
def test_jsd_is_bounded_by_log_3_and_stable(augment):
    eye = torch.eye(3) * 1e4  # three confident predictions of three different classes
    a, b, c = eye[[0, 1, 2]], eye[[1, 2, 0]], eye[[2, 0, 1]]
    top = value(augment.jsd_consistency(a, b, c))
    assert math.isfinite(top) and abs(top - math.log(3)) < 1e-4, (
        f"jsd_consistency: three confident, different predictions (logits of size 1e4) should "
        f"give log 3 = {math.log(3):.4f}, got {top}"
        + ("" if math.isfinite(top) else "; use log_softmax and logsumexp, not log(softmax)")
    )
    for seed in range(5):
        got = value(
            augment.jsd_consistency(
                logits(seed, 32, 10, 50.0),
                logits(seed + 1, 32, 10, 50.0),
                logits(seed + 2, 32, 10, 50.0),
            )
        )
        assert -1e-6 <= got <= math.log(3) + 1e-6, (
            f"jsd_consistency: {got:.4f} is outside [0, log 3]"
        )


@graded("jsd_consistency")
def test_jsd_gradients_reach_all_three_inputs(augment):
    z = [logits(s).requires_grad_(True) for s in (7, 8, 9)]
    out = augment.jsd_consistency(*z)
    value(out)
    assert out.requires_grad, (
        "jsd_consistency: the result does not require grad; it is a training loss, keep the graph"
    )
    out.backward()
    ref = [t.detach().double().requires_grad_(True) for t in z]
    ps = [F.log_softmax(t, dim=1) for t in ref]
    log_m = torch.logsumexp(torch.stack(ps), dim=0) - math.log(3)
    expected = sum((p.exp() * (p - log_m)).sum(dim=1) for p in ps).mean() / 3
    expected.backward()
    for i, (t, r) in enumerate(zip(z, ref, strict=True)):
        gap = float("inf") if t.grad is None else (t.grad.double() - r.grad).abs().max().item()
        assert gap < 1e-5, (
            f"jsd_consistency: the gradient with respect to argument {i + 1} is "
            f"{'missing' if t.grad is None else f'off by {gap:.2e}'}; detach nothing"
        )


# --------------------------------------------------------------------------- #
# The documented ends of depth, and the device of the inputs.
# --------------------------------------------------------------------------- #


@graded("augmix")
def test_augmix_any_depth_up_to_0_draws_1_to_3(augment, rng):
    x = torch.zeros(1, 1, 1, 1)
    for depth in (0, -3):
        lengths = []
        r = rng(depth + 10)
        for _ in range(20):
            log = []
            augment.augmix(x, r, width=3, depth=depth, ops=[Step(log)])
            lengths += chain_lengths(log)
        assert set(lengths) == {1, 2, 3}, (
            f"augmix: with depth={depth} every chain should draw 1 to 3 operations "
            f"(rng.integers(1, 4)), as for depth=-1; got chain lengths {sorted(set(lengths))}. "
            f"The docstring says -1 or any value <= 0"
        )


def device_calls():
    def mix(augment, x, r):
        return augment.mixup(x, torch.arange(len(x), device=x.device) % 10, 0.5, r, 10)

    def jsd(augment, x, r):
        z = x.flatten(1)[:, :10] * 4
        return (augment.jsd_consistency(z, z.flip(0), z.roll(1, 0)),)

    return {
        "mixup": mix,
        "augmix": lambda augment, x, r: (augment.augmix(x, r),),
        "jsd_consistency": jsd,
    }


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=graded(n), id=n) for n in ("mixup", "augmix", "jsd_consistency")]
)
def test_results_on_the_device_and_dtype_of_the_inputs(augment, digits, rng, name):
    from mlsafety.hardware import pick_device

    device = pick_device()  # the GPU where there is one, else the CPU
    for dtype in (torch.float32, torch.float64):
        x = digits[0][:8].to(device=device, dtype=dtype)
        out = device_calls()[name](augment, x, rng(1))
        for t in out if isinstance(out, tuple) else (out,):
            assert (
                isinstance(t, torch.Tensor) and t.device.type == device.type and t.dtype == dtype
            ), (
                f"{name}: {dtype} inputs on {device} gave "
                f"{getattr(t, 'dtype', type(t).__name__)} on {getattr(t, 'device', '?')}; results "
                f"take the inputs' dtype and device (torch.as_tensor(w, dtype=x.dtype, device=x.device))"
            )
