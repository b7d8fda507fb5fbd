"""Specs for corruptions.py: the seven corruptions, the error table and mCE.

Run them with `make test-week4` (add IMPL=solution to see the reference pass).
Every failure message starts with the graded function it is about.
"""

import math

import numpy as np
import pytest
import torch

from mlsafety.grading import graded
from mlsafety.specs import number

GRADED = {
    "gaussian_noise": "core",
    "shot_noise": "core",
    "impulse_noise": "core",
    "gaussian_blur": "core",
    "contrast": "core",
    "brightness": "core",
    "pixelate": "core",
    "corruption_error_table": "core",
    "mce": "core",
    "relative_mce": "stretch",
}
pytestmark = pytest.mark.timeout(20)

# The severity tables as the docstrings document them (severities 1 to 5).
TABLE = {
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),
    "shot_noise": (60.0, 25.0, 12.0, 5.0, 3.0),
    "impulse_noise": (0.03, 0.06, 0.09, 0.17, 0.27),
    "gaussian_blur": (0.5, 0.75, 1.0, 1.25, 1.5),
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),
    "pixelate": (2, 3, 5, 6, 8),
}
NAMES = list(TABLE)
RANDOM = ["gaussian_noise", "shot_noise", "impulse_noise"]
SEVERITIES = (1, 2, 3, 4, 5)

ALL = [pytest.param(name, marks=graded(name), id=name) for name in NAMES]
NOISE = [p for p in ALL if p.values[0] in RANDOM]
DETERMINISTIC = [p for p in ALL if p.values[0] not in RANDOM]


def corrupt(corruptions, name, x, severity, generator):
    return getattr(corruptions, name)(x, severity, generator)


def as_tensor(name, out, like):
    """The result, checked to be a tensor of the input's shape (a readable failure otherwise)."""
    if not isinstance(out, torch.Tensor):
        pytest.fail(f"{name}: returned {type(out).__name__}, expected a tensor", pytrace=False)
    if out.shape != like.shape:
        pytest.fail(
            f"{name}: output shape {tuple(out.shape)} != input shape {tuple(like.shape)}",
            pytrace=False,
        )
    return out


def grey(n=64, channels=3, size=16, value=0.5, dtype=torch.float32):
    return torch.full((n, channels, size, size), value, dtype=dtype)


# --------------------------------------------------------------------------- #
# Independent references for the deterministic corruptions, written plainly.
# --------------------------------------------------------------------------- #


def reference_contrast(x, c):
    out = x.clone()
    for i in range(x.shape[0]):
        for ch in range(x.shape[1]):
            m = x[i, ch].mean()
            out[i, ch] = (x[i, ch] - m) * c + m
    return out.clamp(0, 1)


def reference_blur(x, s):
    """Separable Gaussian blur in float64 numpy, edge pixels repeated beyond the border."""
    r = int(3 * s + 0.5)
    k = np.arange(-r, r + 1)
    w = np.exp(-(k**2) / (2 * s**2))
    w /= w.sum()
    h, wd = x.shape[-2:]
    a = np.pad(x.double().numpy(), ((0, 0), (0, 0), (r, r), (r, r)), mode="edge")
    rows = sum(w[i] * a[..., :, i : i + wd] for i in range(2 * r + 1))
    both = sum(w[i] * rows[..., i : i + h, :] for i in range(2 * r + 1))
    return torch.from_numpy(np.clip(both, 0, 1)).to(x.dtype)


def reference_pixelate(x, b):
    out = x.clone()
    h, w = x.shape[-2:]
    for i in range(0, h, b):
        for j in range(0, w, b):
            out[..., i : i + b, j : j + b] = x[..., i : i + b, j : j + b].mean(
                dim=(-2, -1), keepdim=True
            )
    return out


REFERENCES = {
    "gaussian_blur": reference_blur,
    "contrast": reference_contrast,
    "brightness": lambda x, c: (x + c).clamp(0, 1),
    "pixelate": reference_pixelate,
}
DRAWS = {
    "gaussian_noise": "draw with torch.randn(x.shape, generator=generator, device=x.device, "
    "dtype=x.dtype)",
    "shot_noise": "draw with torch.poisson(c * x, generator=generator)",
    "impulse_noise": "draw with torch.rand(x.shape, generator=generator, device=x.device, "
    "dtype=x.dtype)",
}
HINTS = {
    "gaussian_blur": "a normalised kernel exp(-k^2 / (2 s^2)) of radius int(3 s + 0.5), "
    "rows then columns, edge pixels replicated, channels blurred separately",
    "contrast": "(x - m) * c + m with m the mean of each image's channel (dims 2 and 3), then clip",
    "brightness": "clip(x + c, 0, 1)",
    "pixelate": "every b x b block from the top-left corner replaced by its mean "
    "(smaller blocks at the right and bottom borders)",
}


# --------------------------------------------------------------------------- #
# What every corruption keeps.
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("name", ALL)
def test_result_is_like_the_input_and_the_input_is_untouched(corruptions, digits, gen, name):
    x, _ = digits
    before = x.clone()
    for dtype in (torch.float32, torch.float64):
        xd = x.to(dtype)
        for s in SEVERITIES:
            out = as_tensor(name, corrupt(corruptions, name, xd, s, gen(s)), xd)
            assert out.dtype == dtype, (
                f"{name}: severity {s} on {dtype} images returned {out.dtype}; create new "
                f"tensors with the input's dtype (dtype=x.dtype)"
            )
            assert out.device == x.device, f"{name}: output on {out.device}, input on {x.device}"
    assert torch.equal(x, before), (
        f"{name}: modified the input images in place; work on a new tensor (no clamp_ or +=)"
    )


@pytest.mark.parametrize("name", ALL)
def test_values_stay_in_unit_range(corruptions, digits, gen, name):
    x, _ = digits  # many pixels at exactly 0 and 1: noise pushes them out unless clipped
    for s in SEVERITIES:
        out = as_tensor(name, corrupt(corruptions, name, x, s, gen(s)), x)
        lo, hi = out.min().item(), out.max().item()
        assert lo >= 0 and hi <= 1 and not torch.isnan(out).any(), (
            f"{name}: severity {s} gives values in [{lo:.3f}, {hi:.3f}]; clip the result to [0, 1]"
        )


@pytest.mark.parametrize("name", ALL)
def test_rejects_severities_outside_1_to_5(corruptions, digits, gen, name):
    x = digits[0][:4]
    for bad in (0, 6, -1, 2.5):
        with pytest.raises(ValueError):
            corrupt(corruptions, name, x, bad, gen())
            pytest.fail(
                f"{name}: severity {bad!r} should raise ValueError (severities are the integers "
                f"1 to 5)",
                pytrace=False,
            )


@pytest.mark.parametrize("name", ALL)
def test_distortion_grows_with_severity(corruptions, digits, gen, name):
    x, _ = digits
    sizes = [
        (as_tensor(name, corrupt(corruptions, name, x, s, gen(0)), x) - x).abs().mean().item()
        for s in SEVERITIES
    ]
    assert all(b > a for a, b in zip(sizes, sizes[1:], strict=False)), (
        f"{name}: mean |corrupted - x| on 64 digits at severities 1..5 is "
        f"{[round(v, 4) for v in sizes]}; it should grow with the severity. Did you index the "
        f"table with severity - 1?"
    )


@pytest.mark.parametrize("name", ALL)
def test_randomness_only_from_the_generator(corruptions, digits, gen, name):
    x = digits[0][:16]
    state = torch.get_rng_state()
    first = corrupt(corruptions, name, x, 3, gen(1))
    again = corrupt(corruptions, name, x, 3, gen(1))
    other = corrupt(corruptions, name, x, 3, gen(2))
    assert torch.equal(torch.get_rng_state(), state), (
        f"{name}: used torch's global random generator; "
        + DRAWS.get(name, "a deterministic corruption draws no random numbers at all")
    )
    assert torch.equal(first, again), f"{name}: the same seeded generator gave different results"
    if name in RANDOM:
        assert not torch.equal(first, other), (
            f"{name}: different generators gave identical results; draw the noise from `generator`"
        )
    else:
        assert torch.equal(first, other), (
            f"{name}: is deterministic, but different generators gave different results"
        )


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_each_image_is_corrupted_on_its_own(corruptions, gen, name):
    x = torch.rand(6, 3, 13, 17, generator=gen(5))
    x[3] *= 0.2  # a dark image among bright ones: batch statistics would show
    for s in (1, 5):
        together = corrupt(corruptions, name, x, s, gen())
        alone = torch.cat([corrupt(corruptions, name, x[i : i + 1], s, gen()) for i in range(6)])
        gap = (together - alone).abs().max().item()
        assert gap < 1e-5, (
            f"{name}: corrupting the batch differs from corrupting each image alone (max gap "
            f"{gap:.4f} at severity {s}); compute statistics per image and per channel, never "
            f"over the batch"
        )


@pytest.mark.parametrize("name", NOISE)
def test_noise_is_independent_per_image_and_channel(corruptions, gen, name):
    x = grey(n=8, channels=3, size=16, value=0.5)
    out = as_tensor(name, corrupt(corruptions, name, x, 5, gen(0)), x)
    same_images = (out[0] == out[1:]).all(dim=(1, 2, 3)).any().item()
    assert not same_images, (
        f"{name}: two copies of the same image got identical noise; draw noise of the full "
        f"shape x.shape, one value per pixel, channel and image"
    )
    assert not torch.equal(out[:, 0], out[:, 1]), (
        f"{name}: the channels of an image got identical noise; draw noise for every channel"
    )


@pytest.mark.parametrize("name", ALL)
def test_runs_on_the_device_of_its_inputs(corruptions, digits, name):
    from mlsafety.hardware import pick_device

    device = pick_device()  # the GPU where there is one, else the CPU
    if device.type == "mps" and name == "shot_noise":
        pytest.skip("torch.poisson has no Apple MPS kernel")
    x = digits[0][:8].to(device)
    g = torch.Generator(device).manual_seed(0)
    out = as_tensor(name, corrupt(corruptions, name, x, 4, g), x)
    assert out.device == x.device, f"{name}: input on {x.device}, output on {out.device}"


# --------------------------------------------------------------------------- #
# Each corruption against its documented definition.
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_matches_the_documented_formula(corruptions, digits, gen, name):
    odd = torch.rand(5, 3, 13, 17, generator=gen(7))  # colour, sizes no block divides evenly
    for x in (odd, odd.double(), digits[0][:8]):
        for s in SEVERITIES:
            expected = REFERENCES[name](x, TABLE[name][s - 1])
            got = as_tensor(name, corrupt(corruptions, name, x, s, gen()), x)
            gap = (got.double() - expected.double()).abs().max().item()
            assert gap < 1e-5, (
                f"{name}: severity {s} (parameter {TABLE[name][s - 1]}) on images of shape "
                f"{tuple(x.shape)} differs from the documented result by up to {gap:.4f}; "
                f"expected {HINTS[name]}"
            )


@graded("gaussian_blur")
def test_gaussian_blur_keeps_constant_images_constant(corruptions):
    x = torch.full((2, 3, 9, 9), 0.7)
    for s in SEVERITIES:
        out = as_tensor("gaussian_blur", corruptions.gaussian_blur(x, s, None), x)
        gap = (out - 0.7).abs().max().item()
        assert gap < 1e-5, (
            f"gaussian_blur: a constant image of 0.7 changed by up to {gap:.4f} at severity {s}; "
            f"divide the kernel by its sum and replicate the edge pixels (not zero padding)"
        )


@graded("gaussian_noise")
def test_gaussian_noise_has_the_documented_spread(corruptions, gen):
    x = grey()  # 0.5 everywhere: 49,152 values, far from the clipping bounds at low severity
    for s in SEVERITIES:
        c = TABLE["gaussian_noise"][s - 1]
        delta = as_tensor("gaussian_noise", corruptions.gaussian_noise(x, s, gen(s)), x) - x
        expected = ((x + c * torch.randn(x.shape, generator=gen(100 + s))).clamp(0, 1) - x).std()
        mean, spread = delta.mean().item(), delta.std().item()
        assert abs(mean) < 0.01, (
            f"gaussian_noise: the noise should have mean 0, got {mean:.4f} at severity {s}"
        )
        assert abs(spread - expected.item()) < 0.03 * expected.item(), (
            f"gaussian_noise: at severity {s} the noise on a grey image should have standard "
            f"deviation {expected.item():.4f} (c = {c}, after clipping), got {spread:.4f}; add "
            f"c * z with z standard normal and c = SEVERITIES['gaussian_noise'][severity - 1]"
        )


@graded("shot_noise")
def test_shot_noise_counts_photons(corruptions, gen):
    for level in (0.1, 0.4):
        x = grey(n=32, value=level)  # 24,576 values
        for s in SEVERITIES:
            c = TABLE["shot_noise"][s - 1]
            out = as_tensor("shot_noise", corruptions.shot_noise(x, s, gen(s)), x)
            counts = out[out < 1] * c
            off = (counts - counts.round()).abs().max().item() if counts.numel() else 0.0
            assert off < 1e-3, (
                f"shot_noise: at severity {s} the values below 1 should be photon counts / c "
                f"(multiples of 1/{c:g}), but value * c is up to {off:.3f} from an integer; "
                f"use torch.poisson(c * x, generator=generator) / c"
            )
            ref = (torch.poisson(x * c, generator=gen(100 + s)) / c).clamp(0, 1)
            mean, spread = out.mean().item(), out.std().item()
            tol = 8 * ref.std().item() / math.sqrt(x.numel())  # about 5 standard errors
            assert abs(mean - ref.mean().item()) < tol and abs(spread - ref.std().item()) < tol, (
                f"shot_noise: a grey image of {level} at severity {s} (c = {c:g}) should give "
                f"mean {ref.mean().item():.4f} and standard deviation {ref.std().item():.4f}, "
                f"got {mean:.4f} and {spread:.4f}; the rate is c * x, and the count is divided by c"
            )
    black = as_tensor("shot_noise", corruptions.shot_noise(grey(value=0.0), 5, gen()), grey())
    assert black.abs().max().item() == 0, "shot_noise: black pixels must stay exactly black"


@graded("impulse_noise")
def test_impulse_noise_replaces_the_documented_fraction(corruptions, gen):
    x = grey()  # 49,152 values of 0.5
    for s in SEVERITIES:
        a = TABLE["impulse_noise"][s - 1]
        out = as_tensor("impulse_noise", corruptions.impulse_noise(x, s, gen(s)), x)
        pepper = (out == 0).double().mean().item()
        salt = (out == 1).double().mean().item()
        kept = (out == 0.5).double().mean().item()
        assert abs(kept + salt + pepper - 1) < 1e-9, (
            "impulse_noise: every value should be kept or replaced by exactly 0 or 1"
        )
        tol = 6 * math.sqrt(a / 2 * (1 - a / 2) / x.numel())  # 6 standard errors
        assert abs(pepper - a / 2) < tol and abs(salt - a / 2) < tol, (
            f"impulse_noise: at severity {s} (a = {a}) expected a fraction {a / 2:.3f} of zeros "
            f"and {a / 2:.3f} of ones, got {pepper:.3f} and {salt:.3f}; replace a value with "
            f"probability a, by 0 or 1 with equal chance"
        )


# --------------------------------------------------------------------------- #
# corruption_error_table
# --------------------------------------------------------------------------- #


def darken(x, severity, generator):
    """A deterministic corruption written in the spec."""
    return x * (1 - 0.18 * severity)


def speckle(x, severity, generator):
    """A random corruption written in the spec: draws from the generator."""
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return (x + 0.15 * severity * noise).clamp(0, 1)


class Recorder(torch.nn.Module):
    """Wraps a model and remembers how it was called."""

    def __init__(self, model):
        super().__init__()
        self.inner, self.calls = model, []

    def forward(self, x):
        self.calls.append({"training": self.training, "grad": torch.is_grad_enabled(), "n": len(x)})
        return self.inner(x)


def reference_table(model, x, y, corruptions, severities, seed):
    g = torch.Generator().manual_seed(seed)
    table = {}
    with torch.no_grad():
        for name, fn in corruptions.items():
            table[name] = [
                (model(fn(x, s, g)).argmax(1) != y).float().mean().item() for s in severities
            ]
    return table


@graded("corruption_error_table")
def test_error_table_against_a_reference(corruptions, model, digits, gen):
    x, y = digits
    chosen = {"speckle": speckle, "darken": darken}
    severities = (1, 3, 5)
    got = corruptions.corruption_error_table(model, x, y, chosen, severities, gen(11))
    expected = reference_table(model, x, y, chosen, severities, 11)
    if not isinstance(got, dict):
        pytest.fail(
            f"corruption_error_table: returned {type(got).__name__}, expected a dict "
            f"name -> list of errors",
            pytrace=False,
        )
    assert list(got) == list(chosen), (
        f"corruption_error_table: keys {list(got)}, expected {list(chosen)} (one per corruption, "
        f"in the order given)"
    )
    for name in chosen:
        row = got[name]
        assert isinstance(row, list) and len(row) == len(severities), (
            f"corruption_error_table: {name!r} should map to a list of {len(severities)} errors "
            f"(one per severity), got {row!r}"
        )
        assert all(isinstance(v, float) for v in row), (
            f"corruption_error_table: errors should be Python floats, got {[type(v).__name__ for v in row]}"
        )
        gaps = [abs(a - b) for a, b in zip(row, expected[name], strict=True)]
        assert max(gaps) < 1e-9, (
            f"corruption_error_table: {name!r} at severities {severities} should give errors "
            f"{[round(v, 4) for v in expected[name]]}, got {[round(v, 4) for v in row]}; the error "
            f"is the fraction of misclassified images (argmax != y). Corrupt the whole batch once "
            f"per severity, corruptions in order and severities in order within each, all with "
            f"the one generator"
        )


@graded("corruption_error_table")
def test_error_table_calls_each_corruption_once_per_severity(corruptions, model, digits, gen):
    x, y = digits
    calls = []

    def recording(name, fn):
        def wrapped(images, severity, generator):
            calls.append((name, severity, len(images), generator))
            return fn(images, severity, generator)

        return wrapped

    g = gen(3)
    chosen = {"darken": recording("darken", darken), "speckle": recording("speckle", speckle)}
    corruptions.corruption_error_table(model, x, y, chosen, [4, 2], g)
    expected = [("darken", 4), ("darken", 2), ("speckle", 4), ("speckle", 2)]
    assert [c[:2] for c in calls] == expected, (
        f"corruption_error_table: expected the calls (corruption, severity) {expected}, got "
        f"{[c[:2] for c in calls]}; loop over the corruptions, and within each over `severities`"
    )
    assert all(c[2] == len(x) for c in calls), (
        "corruption_error_table: corrupt the whole batch in one call"
    )
    assert all(c[3] is g for c in calls), (
        "corruption_error_table: pass the given generator to every corruption"
    )


@graded("corruption_error_table")
def test_error_table_evaluates_without_side_effects(corruptions, model, digits, gen):
    x, y = digits
    before_x, before_y = x.clone(), y.clone()
    wrapped = Recorder(model)
    for i, p in enumerate(model.parameters()):
        p.grad = torch.full_like(p, float(i + 1))
    for mode in (True, False):
        wrapped.train(mode)
        corruptions.corruption_error_table(wrapped, x, y, {"darken": darken}, (1, 5), gen())
        assert wrapped.training == mode, (
            f"corruption_error_table: the model was in {'train' if mode else 'eval'} mode and came "
            f"back in {'train' if wrapped.training else 'eval'} mode; restore the mode it had"
        )
    assert wrapped.calls, "corruption_error_table: never called the model"
    assert not any(c["training"] for c in wrapped.calls), (
        "corruption_error_table: evaluate the model in eval mode (model.eval())"
    )
    assert not any(c["grad"] for c in wrapped.calls), (
        "corruption_error_table: evaluate under torch.no_grad(); no graph is needed"
    )
    for i, p in enumerate(model.parameters()):
        assert torch.all(p.grad == i + 1), "corruption_error_table: changed the parameters' .grad"
    assert torch.equal(x, before_x) and torch.equal(y, before_y), (
        "corruption_error_table: modified x or y in place"
    )


@graded("corruption_error_table")
def test_error_table_on_the_checkpoint(corruptions, model, digits, gen):
    x, y = digits
    with torch.no_grad():
        clean = (model(x).argmax(1) != y).float().mean().item()
    table = corruptions.corruption_error_table(model, x, y, {"speckle": speckle}, SEVERITIES, gen())
    row = table["speckle"]
    assert all(0 <= e <= 1 for e in row), (
        f"corruption_error_table: errors must be fractions in [0, 1], got {row}"
    )
    assert row[-1] > row[0] >= clean - 0.05 and row[-1] > clean + 0.2, (
        f"corruption_error_table: on the standard checkpoint (clean error {clean:.2f}) strong "
        f"noise should raise the error, got {[round(e, 3) for e in row]} at severities 1..5; "
        f"is it the error (not the accuracy) of the corrupted images?"
    )


# --------------------------------------------------------------------------- #
# mce and relative_mce against a table computed by hand.
# --------------------------------------------------------------------------- #

# Errors of a model and of the baseline at severities 1..5 (made-up numbers).
MODEL = {
    "noise": [0.10, 0.20, 0.30, 0.40, 0.50],  # sum 1.5
    "blur": [0.05, 0.05, 0.10, 0.10, 0.20],  # sum 0.5
    "pixelate": [0.20, 0.20, 0.20, 0.20, 0.20],  # sum 1.0
}
BASELINE = {
    "noise": [0.20, 0.40, 0.60, 0.80, 1.00],  # sum 3.0
    "blur": [0.10, 0.10, 0.10, 0.10, 0.10],  # sum 0.5
    "pixelate": [0.10, 0.10, 0.20, 0.30, 0.30],  # sum 1.0
    "fog": [0.30, 0.30, 0.30, 0.30, 0.30],  # not measured for the model: must be ignored
}
# CE: noise 1.5 / 3.0 = 0.5, blur 0.5 / 0.5 = 1.0, pixelate 1.0 / 1.0 = 1.0
MCE = (0.5 + 1.0 + 1.0) / 3  # 0.8333...; averaging first would give 3.0 / 4.5 = 0.6667
CLEAN, BASELINE_CLEAN = 0.04, 0.08
# relative CE: noise (1.5 - 5 * 0.04) / (3.0 - 5 * 0.08) = 1.3 / 2.6 = 0.5,
# blur (0.5 - 0.2) / (0.5 - 0.4) = 3.0, pixelate (1.0 - 0.2) / (1.0 - 0.4) = 4 / 3
RELATIVE_MCE = (0.5 + 3.0 + 4 / 3) / 3  # 1.6111...


def copies():
    return {k: list(v) for k, v in MODEL.items()}, {k: list(v) for k, v in BASELINE.items()}


@graded("mce")
def test_mce_on_a_table_computed_by_hand(corruptions):
    model, baseline = copies()
    got = number("mce", corruptions.mce(model, baseline))
    assert isinstance(corruptions.mce(model, baseline), float), (
        "mce: return a Python float (float(...))"
    )
    assert abs(got - MCE) < 1e-9, (
        f"mce: expected {MCE:.4f} (CE noise 0.5, blur 1.0, pixelate 1.0, averaged), got {got:.4f}; "
        f"divide each corruption's summed errors by the baseline's summed errors, then average "
        f"over the corruptions of `errors`"
        + (" (you averaged before normalising)" if abs(got - 3.0 / 4.5) < 1e-6 else "")
    )
    assert model == MODEL and baseline == BASELINE, "mce: modified its inputs"


@graded("mce")
def test_mce_of_one_corruption_and_of_the_baseline(corruptions):
    model, baseline = copies()
    alone = number("mce", corruptions.mce({"noise": model["noise"]}, baseline))
    assert abs(alone - 0.5) < 1e-9, (
        f"mce: with one corruption the mCE is its CE, 1.5 / 3.0 = 0.5, got {alone:.4f}; sum the "
        f"errors over the severities before dividing"
    )
    itself = number("mce", corruptions.mce(baseline, baseline))
    assert abs(itself - 1.0) < 1e-9, f"mce: the baseline scores 1.0 against itself, got {itself}"
    scaled = {k: [2 * e for e in v] for k, v in model.items()}
    twice = number("mce", corruptions.mce(scaled, baseline))
    assert abs(twice - 2 * MCE) < 1e-9, (
        f"mce: doubling every error of the model should double the mCE ({2 * MCE:.4f}), got {twice:.4f}"
    )
    as_tuples = number("mce", corruptions.mce({k: tuple(v) for k, v in model.items()}, baseline))
    assert abs(as_tuples - MCE) < 1e-9, "mce: should accept any sequence of errors (tuples too)"


@graded("mce")
def test_mce_rejects_a_baseline_without_the_corruption(corruptions):
    model, baseline = copies()
    del baseline["blur"]
    with pytest.raises(ValueError):
        corruptions.mce(model, baseline)
        pytest.fail("mce: the baseline has no 'blur' errors: raise ValueError", pytrace=False)
    with pytest.raises(ValueError):
        corruptions.mce({}, baseline)
        pytest.fail("mce: errors is empty: raise ValueError", pytrace=False)


@graded("mce")
def test_mce_on_real_tables(corruptions, model, digits, gen):
    x, y = digits
    severities = (2, 4)
    chosen = {"speckle": speckle, "darken": darken}
    ours = reference_table(model, x, y, chosen, severities, 0)
    weak = reference_table(
        model, x * 0.5, y, chosen, severities, 0
    )  # a model that sees dimmer images
    expected = float(np.mean([sum(weak[c]) / sum(ours[c]) for c in chosen]))
    got = number("mce", corruptions.mce(weak, ours))
    assert math.isclose(got, expected, rel_tol=1e-9), (
        f"mce: on two measured tables expected {expected:.4f}, got {got:.4f}"
    )


@graded("relative_mce")
def test_relative_mce_on_a_table_computed_by_hand(corruptions):
    model, baseline = copies()
    got = number("relative_mce", corruptions.relative_mce(model, CLEAN, baseline, BASELINE_CLEAN))
    assert abs(got - RELATIVE_MCE) < 1e-9, (
        f"relative_mce: expected {RELATIVE_MCE:.4f} (relative CE noise 0.5, blur 3.0, pixelate "
        f"1.333, averaged), got {got:.4f}; per corruption, sum (E - clean_error) over the "
        f"severities and divide by the baseline's sum of (B - baseline_clean_error)"
    )
    assert model == MODEL and baseline == BASELINE, "relative_mce: modified its inputs"


@graded("relative_mce")
def test_relative_mce_special_cases(corruptions):
    model, baseline = copies()
    itself = number("relative_mce", corruptions.relative_mce(baseline, 0.05, baseline, 0.05))
    assert abs(itself - 1.0) < 1e-9, (
        f"relative_mce: the baseline scores 1.0 against itself, got {itself}"
    )
    plain = number("relative_mce", corruptions.relative_mce(model, 0.0, baseline, 0.0))
    assert abs(plain - MCE) < 1e-9, (
        f"relative_mce: with clean errors of 0 it equals the mCE ({MCE:.4f}), got {plain:.4f}"
    )
    shifted = {k: [e + 0.03 for e in v] for k, v in model.items()}
    same = number("relative_mce", corruptions.relative_mce(shifted, 0.07, baseline, BASELINE_CLEAN))
    assert abs(same - RELATIVE_MCE) < 1e-9, (
        f"relative_mce: adding 0.03 to the model's clean error and to all its corrupted errors "
        f"must not change the result ({RELATIVE_MCE:.4f}), got {same:.4f}; subtract the model's "
        f"own clean error from its errors"
    )
    flat = dict(baseline, blur=[0.08] * 5)  # the baseline does not degrade under blur
    with pytest.raises(ValueError):
        corruptions.relative_mce(model, CLEAN, flat, BASELINE_CLEAN)
        pytest.fail(
            "relative_mce: the baseline's summed degradation under 'blur' is 0: raise ValueError",
            pytrace=False,
        )


# --------------------------------------------------------------------------- #
# Every documented ValueError on its own, and the documented draw of impulse_noise.
# --------------------------------------------------------------------------- #


def expect_value_error(function, why, call):
    """``call()`` must raise ValueError; anything else fails with what it did instead."""
    try:
        got = call()
    except ValueError:
        return
    except Exception as err:  # the code raised something else: say what
        pytest.fail(
            f"{function}: {why}: raise ValueError, got {type(err).__name__}: {err}", pytrace=False
        )
    pytest.fail(f"{function}: {why}: raise ValueError, got the result {got!r}", pytrace=False)


@graded("mce")
def test_mce_rejects_a_baseline_that_makes_no_error(corruptions):
    model, baseline = copies()
    baseline["blur"] = [0.0] * 5  # present, but summed error 0: CE would divide by zero
    expect_value_error(
        "mce",
        "the baseline's summed error under 'blur' is 0 (check it before dividing)",
        lambda: corruptions.mce(model, baseline),
    )


@graded("relative_mce")
def test_relative_mce_rejects_what_the_docstring_rejects(corruptions):
    model, baseline = copies()
    cases = {
        "the baseline has no 'blur' errors (check every corruption of errors is in it)": (
            model,
            {k: v for k, v in baseline.items() if k != "blur"},
        ),
        "errors is empty (check it before averaging)": ({}, baseline),
        "the baseline's summed degradation under 'blur' is -0.15, not positive (reject <= 0)": (
            model,
            dict(baseline, blur=[0.05] * 5),
        ),
    }
    for why, (errors, base) in cases.items():
        expect_value_error(
            "relative_mce",
            why,
            lambda errors=errors, base=base: corruptions.relative_mce(
                errors, CLEAN, base, BASELINE_CLEAN
            ),
        )


@graded("relative_mce")
def test_relative_mce_returns_a_python_float(corruptions):
    model, baseline = copies()
    got = corruptions.relative_mce(model, CLEAN, baseline, BASELINE_CLEAN)
    assert isinstance(got, float), (
        f"relative_mce: returned {type(got).__name__}, expected a Python float (float(...))"
    )


@graded("impulse_noise")
def test_impulse_noise_follows_the_documented_draw(corruptions, digits, gen):
    x = digits[0][:16]
    for s in (1, 5):
        a = TABLE["impulse_noise"][s - 1]
        u = torch.rand(x.shape, generator=gen(20 + s), dtype=x.dtype)
        expected = torch.where(u < a / 2, 0.0, torch.where(u < a, 1.0, x))
        got = as_tensor("impulse_noise", corruptions.impulse_noise(x, s, gen(20 + s)), x)
        off = (got != expected).double().mean().item()
        assert off == 0, (
            f"impulse_noise: at severity {s} (a = {a}) {off:.2%} of the values differ from the "
            f"documented draw: one u = torch.rand(x.shape, generator=generator) per value, "
            f"u < a / 2 gives 0 (pepper), a / 2 <= u < a gives 1 (salt), otherwise x is kept"
        )
