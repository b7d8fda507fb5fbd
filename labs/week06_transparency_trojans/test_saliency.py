"""Specs for saliency.py: gradient saliency, SmoothGrad, integrated gradients,
occlusion and the layer randomisation behind the model-randomisation check.

Run them with `make test-week6` (add IMPL=solution to see the reference pass).
Every failure message starts with the graded function it is about.
"""

import math

import pytest
import torch
from torch import nn

from mlsafety.grading import graded
from mlsafety.specs import raises

GRADED = {
    "gradient_saliency": "core",
    "smoothgrad": "core",
    "integrated_gradients": "core",
    "occlusion_map": "core",
    "randomize_layers": "stretch",
}
pytestmark = pytest.mark.timeout(20)


def call(saliency, name, model, x, target, **kw):
    """Call one attribution method with small, fast settings."""
    fn = getattr(saliency, name)
    if name == "smoothgrad":
        kw = {"n_samples": 3, "generator": torch.Generator(x.device).manual_seed(0), **kw}
    elif name == "integrated_gradients":
        kw = {"steps": 4, **kw}
    elif name == "occlusion_map":
        kw = {"patch": 7, **kw}
    return fn(model, x, target, **kw)


def input_grad(model, x, target):
    """Reference: one image at a time, the gradient of its target logit."""
    rows = []
    for i in range(len(x)):
        xi = x[i : i + 1].detach().clone().requires_grad_(True)
        t = target if isinstance(target, int) else int(target[i])
        (g,) = torch.autograd.grad(model(xi)[0, t], xi)
        rows.append(g)
    return torch.cat(rows)


def gap(a, b):
    return (a - b).abs().max().item()


METHODS = [
    pytest.param(name, marks=graded(name), id=name)
    for name in ("gradient_saliency", "smoothgrad", "integrated_gradients", "occlusion_map")
]


# --------------------------------------------------------------------------- #
# Invariants of every attribution method.
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("name", METHODS)
def test_output_is_a_detached_map_like_the_input(saliency, model, digits, name):
    x, y = digits[0][:4], digits[1][:4]
    out = call(saliency, name, model, x, y)
    assert isinstance(out, torch.Tensor), (
        f"{name}: returned {type(out).__name__}, expected a tensor"
    )
    shape = (4, 28, 28) if name == "occlusion_map" else tuple(x.shape)
    assert tuple(out.shape) == shape, (
        f"{name}: output shape {tuple(out.shape)}, expected {shape}"
        + (" (one value per pixel position)" if name == "occlusion_map" else " (like x)")
    )
    assert out.dtype == x.dtype and out.device == x.device, (
        f"{name}: output is {out.dtype} on {out.device}, expected {x.dtype} on {x.device}"
    )
    assert not out.requires_grad, f"{name}: output still requires grad; return it detached"
    assert torch.isfinite(out).all(), f"{name}: output has inf or nan values"


@pytest.mark.parametrize("name", METHODS)
def test_model_and_input_are_left_as_found(saliency, model, digits, name):
    x, y = digits[0][:4].clone(), digits[1][:4].clone()
    before = x.clone()
    model.train()
    params = dict(model.named_parameters())
    first = next(iter(params))
    params[first].requires_grad_(False)  # a partly frozen model
    for i, (k, p) in enumerate(params.items()):
        if k != first:
            p.grad = torch.full_like(p, float(i + 1))
    weights = {k: p.detach().clone() for k, p in params.items()}
    call(saliency, name, model, x, y)
    assert model.training, f"{name}: switched the model to eval mode; use the model as it is given"
    assert torch.equal(x, before), f"{name}: modified the input images in place"
    assert not x.requires_grad, (
        f"{name}: set requires_grad on the caller's x; differentiate a detached copy "
        f"(x.detach().requires_grad_())"
    )
    for i, (k, p) in enumerate(params.items()):
        assert torch.equal(p.detach(), weights[k]), f"{name}: changed the model's weights ({k})"
        assert p.requires_grad == (k != first), (
            f"{name}: changed requires_grad of the parameter {k}; leave the model's flags alone"
        )
        if k == first:
            continue
        assert p.grad is not None and torch.all(p.grad == i + 1), (
            f"{name}: changed {k}.grad; take gradients with torch.autograd.grad(score, x) "
            f"instead of score.backward()"
        )
    leaf = digits[0][:4].clone().requires_grad_(True)
    call(saliency, name, model, leaf, y)
    assert leaf.requires_grad and leaf.grad is None, (
        f"{name}: left a .grad on the caller's input (or changed its requires_grad); "
        f"differentiate a detached copy with torch.autograd.grad"
    )


@pytest.mark.parametrize("name", METHODS)
def test_runs_on_the_device_of_its_inputs(saliency, model, digits, name):
    from mlsafety.hardware import pick_device

    device = pick_device()  # the GPU where there is one, else the CPU
    x, y = digits[0][:2].to(device), digits[1][:2].to(device)
    out = call(saliency, name, model.to(device), x, y)
    assert out.device == x.device, f"{name}: input on {x.device}, output on {out.device}"


# --------------------------------------------------------------------------- #
# gradient_saliency
# --------------------------------------------------------------------------- #


@graded("gradient_saliency")
def test_saliency_of_a_linear_model_is_its_weight_row(saliency, linear):
    net = linear()
    w = net[1].weight.detach().view(5, 3, 4, 4)
    x = torch.rand(6, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([0, 1, 2, 3, 4, 2])
    got = saliency.gradient_saliency(net, x, targets)
    expected = w[targets]
    assert gap(got, expected) < 1e-5, (
        f"gradient_saliency: for logits = W x + b the saliency of class t is row W[t]; off by "
        f"{gap(got, expected):.2e}. Did you take the gradient of each image's own target logit "
        f"(the score before the softmax, summed over the batch, not averaged)?"
    )
    got_int = saliency.gradient_saliency(net, x, 3)
    assert gap(got_int, w[3].expand_as(x)) < 1e-5, (
        "gradient_saliency: with an int target every image should get row W[target]"
    )
    got_abs = saliency.gradient_saliency(net, x, targets, absolute=True)
    assert gap(got_abs, expected.abs()) < 1e-5, (
        "gradient_saliency: absolute=True should return |W[t]| for a linear model"
    )


@graded("gradient_saliency")
def test_saliency_of_the_probability_when_asked(saliency, linear):
    net = linear()
    w = net[1].weight.detach()
    x = torch.rand(4, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    t = 2
    with torch.no_grad():
        p = net(x).softmax(1)
    # d p_t / d x = p_t * (W_t - sum_k p_k W_k)
    expected = (p[:, t : t + 1] * (w[t] - p @ w)).view_as(x)
    got = saliency.gradient_saliency(net, x, t, output="probability")
    assert gap(got, expected) < 1e-5, (
        f"gradient_saliency: output='probability' should differentiate the softmax probability "
        f"of the target (off by {gap(got, expected):.2e})"
    )
    logit = saliency.gradient_saliency(net, x, t)
    assert gap(logit, w[t].view(3, 4, 4).expand_as(x)) < 1e-5, (
        "gradient_saliency: with the default output='logit' the score is the target's logit, "
        "before the softmax; did you differentiate the probability instead?"
    )
    raises(
        "gradient_saliency",
        ValueError,
        lambda: saliency.gradient_saliency(net, x, t, output="loss"),
        "output='loss' is neither 'logit' nor 'probability'",
    )


@graded("gradient_saliency")
def test_saliency_matches_autograd_on_the_checkpoint(saliency, model, digits):
    x, y = digits[0][:8], digits[1][:8]
    targets = (y + 1) % 10  # not the predicted class: per-image targets must be respected
    expected = input_grad(model, x, targets)
    got = saliency.gradient_saliency(model, x, targets)
    scale = expected.abs().max().item()
    assert gap(got, expected) < 1e-5 * max(scale, 1), (
        f"gradient_saliency: differs from the gradient of each image's target logit on the "
        f"standard checkpoint (max gap {gap(got, expected):.2e}, largest value {scale:.2e})"
    )


# --------------------------------------------------------------------------- #
# smoothgrad
# --------------------------------------------------------------------------- #


class Quadratic(nn.Module):
    """logits_k = 0.5 * (w_k . x)^2: the gradient (w_k . x) w_k changes with the noise."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x):
        return 0.5 * (x.flatten(1) @ self.w.T) ** 2


@graded("smoothgrad")
def test_smoothgrad_without_noise_is_the_gradient(saliency, model, digits, gen):
    x, y = digits[0][:4], digits[1][:4]
    got = saliency.smoothgrad(model, x, y, n_samples=3, sigma=0.0, generator=gen(0))
    expected = input_grad(model, x, y)
    assert gap(got, expected) < 1e-5, (
        f"smoothgrad: with sigma=0 every sample is the plain gradient, so their mean is too "
        f"(off by {gap(got, expected):.2e}); average the samples (divide by n_samples)"
    )


@graded("smoothgrad")
def test_smoothgrad_of_a_linear_model_is_its_weight_row(saliency, linear, gen):
    net = linear()
    w = net[1].weight.detach().view(5, 3, 4, 4)
    x = torch.rand(3, 3, 4, 4, generator=gen(2))
    got = saliency.smoothgrad(net, x, 1, n_samples=5, sigma=0.3, generator=gen(3))
    assert gap(got, w[1].expand_as(x)) < 1e-5, (
        f"smoothgrad: a linear model has the same gradient everywhere, so the mean over 5 noisy "
        f"samples must be W[t] (off by {gap(got, w[1].expand_as(x)):.2e}); mean, not sum?"
    )


@graded("smoothgrad")
def test_smoothgrad_averages_fresh_gaussian_noise_of_the_given_sigma(saliency, gen):
    # At x = 0 with noise e ~ N(0, sigma^2 I): grad = (w . e) w, with w . e ~ N(0, (sigma |w|)^2).
    # So E[grad] = 0 and E|grad| = |w| * sigma * |w|_2 * sqrt(2 / pi).
    w = torch.tensor([[1.0, -2.0, 0.5, 1.5], [0.3, 0.3, 0.3, 0.3]])
    net = Quadratic(w)
    x = torch.zeros(16, 1, 2, 2)
    sigma, n = 0.5, 400
    scale = sigma * w[0].norm().item()
    signed = saliency.smoothgrad(net, x, 0, n_samples=n, sigma=sigma, generator=gen(4))
    worst = (signed.flatten(1) / w[0]).abs().max().item()  # per image, a mean of n N(0, scale^2)
    assert worst < 5 * scale / math.sqrt(n), (
        f"smoothgrad: the mean gradient over {n} samples should be near 0 here, but one image's is "
        f"{worst:.3f} * w (noise scale {scale:.3f}); draw fresh noise for every sample"
    )
    absolute = saliency.smoothgrad(
        net, x, 0, n_samples=n, sigma=sigma, absolute=True, generator=gen(5)
    )
    expected = w[0].abs() * scale * math.sqrt(2 / math.pi)
    mean = absolute.flatten(1).mean(0)
    rel = ((mean - expected).abs() / expected).max().item()
    assert rel < 0.06, (
        f"smoothgrad: with absolute=True and sigma={sigma} the mean |gradient| should be "
        f"{expected.tolist()}, got {[round(v, 4) for v in mean.tolist()]}; is sigma the noise's "
        f"standard deviation (noise = sigma * randn), and do you average |gradient| per sample?"
    )


@graded("smoothgrad")
def test_smoothgrad_draws_its_noise_from_the_generator(saliency, model, digits, gen):
    x, y = digits[0][:4], digits[1][:4]
    state = torch.get_rng_state()
    first = saliency.smoothgrad(model, x, y, n_samples=3, sigma=0.2, generator=gen(7))
    assert torch.equal(torch.get_rng_state(), state), (
        "smoothgrad: used torch's global random generator; draw the noise with generator=generator"
    )
    again = saliency.smoothgrad(model, x, y, n_samples=3, sigma=0.2, generator=gen(7))
    other = saliency.smoothgrad(model, x, y, n_samples=3, sigma=0.2, generator=gen(8))
    assert torch.equal(first, again), "smoothgrad: the same seeded generator gave different maps"
    assert not torch.equal(first, other), (
        "smoothgrad: different generators gave identical maps; is the noise added at all?"
    )


# --------------------------------------------------------------------------- #
# integrated_gradients
# --------------------------------------------------------------------------- #


def reference_ig(model, x, target, baseline, steps):
    """Right Riemann sum: the gradient at baseline + k/steps (x - baseline), k = 1..steps."""
    total = torch.zeros_like(x)
    for k in range(1, steps + 1):
        point = baseline + (k / steps) * (x - baseline)
        total += input_grad(model, point, target)
    return (x - baseline) * total / steps


@graded("integrated_gradients")
def test_integrated_gradients_of_a_linear_model(saliency, linear, gen):
    net = linear()
    w = net[1].weight.detach().view(5, 3, 4, 4)
    x = torch.rand(4, 3, 4, 4, generator=gen(0))
    baseline = torch.rand(3, 4, 4, generator=gen(1))
    targets = torch.tensor([4, 0, 2, 2])
    got = saliency.integrated_gradients(net, x, targets, baseline=baseline, steps=3)
    expected = (x - baseline) * w[targets]
    assert gap(got, expected) < 1e-5, (
        f"integrated_gradients: for a linear model IG = (x - baseline) * W[t] at any number of "
        f"steps (off by {gap(got, expected):.2e}); did you multiply the mean gradient by "
        f"(x - baseline), and average (not sum) over the steps?"
    )
    zero = saliency.integrated_gradients(net, x, targets, steps=3)
    assert gap(zero, x * w[targets]) < 1e-5, (
        "integrated_gradients: baseline=None means an all-zero baseline, so IG = x * W[t] here"
    )


@graded("integrated_gradients")
def test_integrated_gradients_is_complete(saliency, smooth, gen):
    net = smooth()
    x = torch.rand(5, 2, 4, 4, generator=gen(2)) * 2
    baseline = torch.full((2, 4, 4), 0.25)
    with torch.no_grad():
        rises = net(x) - net(baseline[None])
    t = rises.abs().argmax(1)  # per image, the class whose logit changes most: a clear 1%
    rise = rises.gather(1, t[:, None]).squeeze(1)
    ig = saliency.integrated_gradients(net, x, t, baseline=baseline, steps=300)
    total = ig.flatten(1).sum(1)
    rel = ((total - rise).abs() / rise.abs()).max().item()
    assert rel < 0.01, (
        f"integrated_gradients: attributions should sum to f(x) - f(baseline) within 1% at 300 "
        f"steps on a smooth model; sums {[round(v, 3) for v in total.tolist()]} vs "
        f"{[round(v, 3) for v in rise.tolist()]} (worst {rel:.1%} off)"
    )


@graded("integrated_gradients")
def test_integrated_gradients_is_the_right_riemann_sum(saliency, smooth, gen):
    net = smooth(seed=3)
    x = torch.rand(3, 2, 4, 4, generator=gen(3)) * 2
    baseline = torch.rand(1, 2, 4, 4, generator=gen(4))
    for steps in (1, 4):
        expected = reference_ig(net, x, 2, baseline, steps)
        got = saliency.integrated_gradients(net, x, 2, baseline=baseline, steps=steps)
        assert gap(got, expected) < 1e-5, (
            f"integrated_gradients: with steps={steps}, expected the right Riemann sum "
            f"(gradients at baseline + k/steps * (x - baseline) for k = 1..steps, then times "
            f"(x - baseline)); off by {gap(got, expected):.2e}"
        )
    raises(
        "integrated_gradients",
        ValueError,
        lambda: saliency.integrated_gradients(net, x, 2, steps=0),
        "steps=0 leaves no point on the path",
    )


# --------------------------------------------------------------------------- #
# occlusion_map
# --------------------------------------------------------------------------- #


def reference_occlusion(model, x, target, patch, stride, fill):
    """Brute force: every window, then every pixel's mean drop over its windows."""
    n, _, h, w = x.shape
    drops = [[[] for _ in range(w)] for _ in range(h)]
    with torch.no_grad():
        base = model(x)[:, target]
        for top in range(0, h - patch + 1, stride):
            for left in range(0, w - patch + 1, stride):
                covered = x.clone()
                covered[:, :, top : top + patch, left : left + patch] = fill
                drop = base - model(covered)[:, target]
                for i in range(top, top + patch):
                    for j in range(left, left + patch):
                        drops[i][j].append(drop)
    out = torch.zeros(n, h, w)
    for i in range(h):
        for j in range(w):
            if drops[i][j]:
                out[:, i, j] = torch.stack(drops[i][j]).mean(0)
    return out


@pytest.mark.parametrize(
    "patch,stride,fill",
    [(2, 2, 0.0), (3, 1, 0.5), (3, 2, 0.0)],
    ids=["tiles", "overlapping-fill0.5", "overlapping-uncovered-edge"],
)
@graded("occlusion_map")
def test_occlusion_matches_brute_force(saliency, smooth, gen, patch, stride, fill):
    net = smooth(shape=(3, 7, 7), classes=3, seed=5)
    x = torch.rand(2, 3, 7, 7, generator=gen(5))
    expected = reference_occlusion(net, x, 1, patch, stride, fill)
    got = saliency.occlusion_map(net, x, 1, patch=patch, stride=stride, fill=fill)
    assert tuple(got.shape) == (2, 7, 7), (
        f"occlusion_map: expected shape (N, H, W) = (2, 7, 7), got {tuple(got.shape)}"
    )
    where = (got - expected).abs().argmax().item()
    assert gap(got, expected) < 1e-5, (
        f"occlusion_map: patch={patch}, stride={stride}, fill={fill} on 7x7 images differs from "
        f"brute force by {gap(got, expected):.2e} (at flat index {where}); each pixel is the "
        f"mean of logit(x) - logit(x with the window set to fill) over the windows covering it, "
        f"windows at every stride that fit inside the image, 0 where none covers"
    )


@graded("occlusion_map")
def test_occlusion_of_a_linear_model(saliency, linear, gen):
    net = linear(shape=(3, 4, 4), classes=5)
    w = net[1].weight.detach().view(5, 3, 4, 4)
    x = torch.rand(2, 3, 4, 4, generator=gen(6))
    got = saliency.occlusion_map(net, x, 4, patch=2)  # stride defaults to the patch
    # covering a tile with 0 removes sum over the tile and channels of w * x
    contrib = (w[4] * x).sum(1)
    expected = contrib.view(2, 2, 2, 2, 2).sum((2, 4), keepdim=True).expand(2, 2, 2, 2, 2)
    expected = expected.reshape(2, 4, 4)
    assert gap(got, expected) < 1e-5, (
        f"occlusion_map: for a linear model, covering a tile with 0 lowers the target logit by "
        f"the tile's sum of w * x over all channels; off by {gap(got, expected):.2e}. Is the sign "
        f"logit(x) - logit(occluded), and is stride=None the patch size?"
    )


# --------------------------------------------------------------------------- #
# randomize_layers
# --------------------------------------------------------------------------- #

LAYERS = ["features.0", "features.3", "head.1", "head.3"]  # SmallCNN's layers with weights


def changed_layers(a, b):
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    return sorted({k.rsplit(".", 1)[0] for k in pa if not torch.equal(pa[k], pb[k])})


def every_value_changed(a, b, layer):
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    return all(bool((pa[k] != pb[k]).all()) for k in pa if k.rsplit(".", 1)[0] == layer)


@graded("randomize_layers")
def test_randomize_the_last_k_layers_of_a_copy(saliency, model, gen):
    original = {k: p.detach().clone() for k, p in model.named_parameters()}
    for k in (0, 1, 2, 4):
        new = saliency.randomize_layers(model, k, generator=gen(k))
        assert new is not model, "randomize_layers: returned the input model; return a deep copy"
        for name, p in model.named_parameters():
            assert torch.equal(p.detach(), original[name]), (
                f"randomize_layers: changed the input model ({name}); re-initialise a "
                f"copy.deepcopy(model), never the model itself"
            )
        expected = LAYERS[len(LAYERS) - k :] if k else []
        got = changed_layers(model, new)
        assert got == sorted(expected), (
            f"randomize_layers: with layers={k} expected the last {k} layers with parameters "
            f"{expected} re-initialised, but {got} changed"
        )
        for layer in expected:
            assert every_value_changed(model, new, layer), (
                f"randomize_layers: some parameters of {layer} kept their trained values; redraw "
                f"the weight and the bias"
            )


@graded("randomize_layers")
def test_randomize_layers_by_name(saliency, model, gen):
    new = saliency.randomize_layers(model, ["features.3"], generator=gen(0))
    assert changed_layers(model, new) == ["features.3"], (
        f"randomize_layers: layers=['features.3'] should change that layer only, changed "
        f"{changed_layers(model, new)}"
    )
    raises(
        "randomize_layers",
        ValueError,
        lambda: saliency.randomize_layers(model, ["features.9"], generator=gen(0)),
        "SmallCNN has no layer named 'features.9'",
    )


@graded("randomize_layers")
def test_randomized_weights_follow_the_default_initialisation(saliency, model, gen):
    new = saliency.randomize_layers(model, ["head.1", "features.0"], generator=gen(1))
    for layer, fan_in in (("head.1", 32 * 7 * 7), ("features.0", 1 * 3 * 3)):
        bound = 1 / math.sqrt(fan_in)
        for kind in ("weight", "bias"):
            values = dict(new.named_parameters())[f"{layer}.{kind}"].detach()
            lo, hi = values.min().item(), values.max().item()
            assert lo >= -bound - 1e-7 and hi <= bound + 1e-7, (
                f"randomize_layers: {layer}.{kind} should be uniform on [-1/sqrt(fan_in), "
                f"1/sqrt(fan_in)] = [{-bound:.4f}, {bound:.4f}] (fan_in={fan_in}), found values "
                f"in [{lo:.4f}, {hi:.4f}]"
            )
        weights = dict(new.named_parameters())[f"{layer}.weight"].detach()
        std = weights.std().item()
        assert abs(std - bound / math.sqrt(3)) < 0.1 * bound / math.sqrt(3), (
            f"randomize_layers: {layer}.weight has std {std:.4f}; uniform on [-b, b] with "
            f"b = {bound:.4f} has std b/sqrt(3) = {bound / math.sqrt(3):.4f}"
        )


@graded("randomize_layers")
def test_randomize_layers_is_seeded_and_keeps_the_model_settings(saliency, model, gen):
    model.train()
    model.features[0].weight.requires_grad_(False)
    state = torch.get_rng_state()
    first = saliency.randomize_layers(model, 2, generator=gen(3))
    assert torch.equal(torch.get_rng_state(), state), (
        "randomize_layers: used torch's global random generator; draw with generator=generator"
    )
    again = saliency.randomize_layers(model, 2, generator=gen(3))
    other = saliency.randomize_layers(model, 2, generator=gen(4))
    same = all(
        torch.equal(a, b) for a, b in zip(first.parameters(), again.parameters(), strict=True)
    )
    assert same, "randomize_layers: the same seeded generator gave different weights"
    assert changed_layers(first, other), (
        "randomize_layers: different generators gave the same weights"
    )
    assert first.training, "randomize_layers: the copy should keep the model's train/eval mode"
    flags = [p.requires_grad for p in first.parameters()]
    assert flags == [p.requires_grad for p in model.parameters()], (
        "randomize_layers: the copy should keep every parameter's requires_grad flag"
    )


# --------------------------------------------------------------------------- #
# Documented defaults, ends of ranges and bad arguments.
# --------------------------------------------------------------------------- #


@graded("smoothgrad")
def test_smoothgrad_defaults_and_bad_sample_counts(saliency, gen):
    net = Quadratic(torch.tensor([[1.0, -2.0, 0.5, 1.5], [0.3, 0.3, 0.3, 0.3]]))
    x = torch.rand(2, 1, 2, 2, generator=gen(20))
    default = saliency.smoothgrad(net, x, 0, generator=gen(21))
    explicit = saliency.smoothgrad(net, x, 0, n_samples=25, sigma=0.15, generator=gen(21))
    assert gap(default, explicit) < 1e-6, (
        f"smoothgrad: the defaults should be n_samples=25 and sigma=0.15, but the map with the "
        f"defaults differs from the one with them given by {gap(default, explicit):.3g}"
    )
    torch.manual_seed(3)
    first = saliency.smoothgrad(net, x, 0, n_samples=2)
    torch.manual_seed(3)
    again = saliency.smoothgrad(net, x, 0, n_samples=2)
    assert torch.equal(first, again), (
        "smoothgrad: with generator=None the noise comes from torch's global generator, so "
        "re-seeding it with torch.manual_seed must give the same map"
    )
    single = saliency.smoothgrad(net, x, 0, n_samples=1, sigma=0.0, generator=gen(22))
    assert gap(single, input_grad(net, x, 0)) < 1e-5, (
        "smoothgrad: n_samples=1 (the smallest allowed) with sigma=0 should be the plain gradient"
    )
    for bad in (0, -2):
        raises(
            "smoothgrad",
            ValueError,
            lambda bad=bad: saliency.smoothgrad(net, x, 0, n_samples=bad, generator=gen(0)),
            f"n_samples={bad} is below 1",
        )


@graded("integrated_gradients")
def test_integrated_gradients_defaults_to_50_steps(saliency, smooth, gen):
    net = smooth(seed=4)
    x = torch.rand(2, 2, 4, 4, generator=gen(23)) * 2
    got = saliency.integrated_gradients(net, x, 1)
    expected = reference_ig(net, x, 1, torch.zeros_like(x), 50)
    coarse = reference_ig(net, x, 1, torch.zeros_like(x), 20)
    assert gap(got, expected) < 1e-5, (
        f"integrated_gradients: the default is steps=50 and an all-zero baseline; the default "
        f"call differs from that by {gap(got, expected):.3g}"
        + (" (it matches steps=20)" if gap(got, coarse) < 1e-6 else "")
    )


@graded("occlusion_map")
def test_occlusion_on_a_non_square_image_and_its_window_limits(saliency, smooth, gen):
    net = smooth(shape=(2, 5, 7), classes=3, seed=6)
    x = torch.rand(2, 2, 5, 7, generator=gen(24))
    # patch 5 = min(H, W) is allowed: one row of windows, slid along the width only
    for patch, stride in ((5, 2), (2, 3)):
        expected = reference_occlusion(net, x, 2, patch, stride, 0.0)
        got = saliency.occlusion_map(net, x, 2, patch=patch, stride=stride)
        assert tuple(got.shape) == (2, 5, 7) and gap(got, expected) < 1e-5, (
            f"occlusion_map: on images of height 5 and width 7 with patch={patch}, "
            f"stride={stride} the map differs from a brute-force reference (by "
            f"{gap(got, expected) if got.shape == expected.shape else 'shape'}); windows start "
            f"at top <= H - patch and left <= W - patch: are height and width swapped?"
        )
    x8 = torch.rand(1, 2, 8, 9, generator=gen(25))
    net8 = smooth(shape=(2, 8, 9), classes=3, seed=7)
    default = saliency.occlusion_map(net8, x8, 0)
    expected = reference_occlusion(net8, x8, 0, 4, 4, 0.0)
    assert gap(default, expected) < 1e-5, (
        "occlusion_map: the defaults are patch=4, stride=patch and fill=0.0 (on 8 x 9 images "
        "the last column stays uncovered and gets 0)"
    )
    for kw, why in (
        ({"patch": 0}, "patch=0 is below 1"),
        ({"patch": 6}, "patch=6 is larger than min(H, W) = 5 (though not than W = 7)"),
        ({"patch": 2, "stride": 0}, "stride=0 is below 1"),
    ):
        raises(
            "occlusion_map",
            ValueError,
            lambda kw=kw: saliency.occlusion_map(net, x, 2, **kw),
            why,
        )


@graded("randomize_layers")
def test_randomize_layers_rejects_bad_layers(saliency, model, gen):
    for layers, why in (
        (5, "SmallCNN has 4 layers with parameters, so k=5 is too many"),
        (-1, "k=-1 is negative"),
        (["features.1"], "'features.1' is a ReLU, a module without parameters"),
        (["head.1", "nope"], "'nope' is not a module of SmallCNN"),
    ):
        raises(
            "randomize_layers",
            ValueError,
            lambda layers=layers: saliency.randomize_layers(model, layers, generator=gen(0)),
            why,
        )
