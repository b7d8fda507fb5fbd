"""Specs for scores.py: logit-based anomaly scores, the outlier exposure loss,
and the feature-space scores (Mahalanobis and ViM).

Run them with `make test-week5` (add IMPL=solution to see the reference pass).
Every failure message starts with the graded function it is about.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mlsafety.grading import graded

GRADED = {
    "msp_score": "core",
    "max_logit_score": "core",
    "energy_score": "core",
    "uniform_kl_score": "core",
    "mahalanobis_fit": "core",
    "mahalanobis_score": "core",
    "vim_fit": "stretch",
    "vim_score": "stretch",
    "outlier_exposure_loss": "stretch",
}
pytestmark = pytest.mark.timeout(20)


# --------------------------------------------------------------------------- #
# Independent references, in numpy float64.
# --------------------------------------------------------------------------- #


def np_logsumexp(z):
    m = z.max(axis=1, keepdims=True)
    return (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]


def ref_msp(z):
    return -np.exp(z - np_logsumexp(z)[:, None]).max(axis=1)


def ref_max_logit(z):
    return -z.max(axis=1)


def ref_energy(z, temperature=1.0):
    return -temperature * np_logsumexp(z / temperature)


def ref_uniform_kl(z):
    return (z - np_logsumexp(z)[:, None]).mean(axis=1)


LOGIT_SCORES = {
    "msp_score": (ref_msp, "-max_c softmax(logits)_c", "-torch.softmax(logits, dim=1).max(dim=1)"),
    "max_logit_score": (ref_max_logit, "-max_c logits_c", "-logits.max(dim=1).values"),
    "energy_score": (
        ref_energy,
        "-T * logsumexp(logits / T)",
        "-T * torch.logsumexp(logits / T, dim=1)",
    ),
    "uniform_kl_score": (
        ref_uniform_kl,
        "mean_c log_softmax(logits)_c",
        "torch.log_softmax(logits, dim=1).mean(dim=1)",
    ),
}
LOGIT_PARAMS = [pytest.param(name, marks=graded(name), id=name) for name in LOGIT_SCORES]


def scores_of(function, value, n):
    """``value`` as a float64 numpy vector of ``n`` scores, or a failure naming ``function``."""
    if not isinstance(value, torch.Tensor):
        pytest.fail(
            f"{function}: returned {type(value).__name__}, expected a 1-D tensor of {n} scores",
            pytrace=False,
        )
    if tuple(value.shape) != (n,):
        pytest.fail(
            f"{function}: expected one score per input, shape ({n},), got {tuple(value.shape)}; "
            f"reduce over the class (or feature) dimension, dim=1",
            pytrace=False,
        )
    if not value.is_floating_point():
        pytest.fail(
            f"{function}: scores should be a float tensor, got {value.dtype}", pytrace=False
        )
    return value.detach().cpu().double().numpy()


def gap_report(got, want):
    """Largest absolute gap, and a hint when ``got`` is a sign-flipped ``want``."""
    gap = float(np.max(np.abs(got - want)))
    hint = ""
    if np.allclose(got, -want, rtol=1e-4, atol=1e-5) and gap > 1e-6:
        hint = " It is the expected score with the sign flipped: higher must mean MORE anomalous."
    return gap, hint


def call_score(scores, name, logits, **kw):
    return getattr(scores, name)(logits, **kw)


def mann_whitney(s_in, s_out):
    """P(OOD score > in-distribution score) + 0.5 P(equal), by brute force over pairs."""
    s_in, s_out = np.asarray(s_in, float), np.asarray(s_out, float)
    greater = (s_out[:, None] > s_in[None, :]).mean()
    equal = (s_out[:, None] == s_in[None, :]).mean()
    return float(greater + 0.5 * equal)


# --------------------------------------------------------------------------- #
# The four logit scores: shared conventions.
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("name", LOGIT_PARAMS)
def test_logit_score_matches_its_closed_form(scores, gen, name):
    reference, formula, hint = LOGIT_SCORES[name]
    for shape, scale in [((1, 2), 1.0), ((7, 10), 3.0), ((64, 5), 0.1), ((33, 4), 20.0)]:
        logits = torch.randn(*shape, generator=gen(shape[0])) * scale
        got = scores_of(name, call_score(scores, name, logits), shape[0])
        want = reference(logits.double().numpy())
        gap, sign = gap_report(got, want)
        assert np.allclose(got, want, rtol=1e-5, atol=1e-4), (
            f"{name}: differs from {formula} by up to {gap:.3g} on logits of shape {shape} "
            f"(scale {scale}).{sign} Expected e.g. {want[:3].round(4).tolist()}, got "
            f"{got[:3].round(4).tolist()}; did you compute {hint}?"
        )


@pytest.mark.parametrize("name", LOGIT_PARAMS)
def test_logit_score_is_finite_for_huge_logits(scores, name):
    logits = torch.tensor(
        [[1e4, 0.0, -1e4], [-1e4, -1e4, -1e4], [5e3, 5e3, -1e4], [3e3, -2e3, 1e3]]
    )
    got = scores_of(name, call_score(scores, name, logits), 4)
    want = LOGIT_SCORES[name][0](logits.double().numpy())
    assert np.isfinite(got).all(), (
        f"{name}: got {got.tolist()} for logits of magnitude 1e4; exp overflows: use "
        f"torch.softmax / torch.log_softmax / torch.logsumexp, which subtract the max first"
    )
    assert np.allclose(got, want, rtol=1e-5, atol=1e-3), (
        f"{name}: for logits of magnitude 1e4 expected {want.tolist()}, got {got.tolist()}"
    )


@pytest.mark.parametrize("name", LOGIT_PARAMS)
def test_logit_score_keeps_dtype_device_and_input(scores, gen, name):
    from mlsafety.hardware import pick_device

    device = pick_device()  # the GPU where there is one, else the CPU
    on_device = (torch.randn(6, 4, generator=gen(2)) * 2).to(device)
    out = call_score(scores, name, on_device)
    scores_of(name, out, 6)
    assert out.device == on_device.device, (
        f"{name}: logits on {on_device.device}, scores on {out.device}"
    )
    logits = torch.randn(6, 4, generator=gen(1), dtype=torch.float64) * 2
    before = logits.clone()
    out = call_score(scores, name, logits)
    scores_of(name, out, 6)
    assert out.dtype == torch.float64, (
        f"{name}: float64 logits gave {out.dtype} scores; keep the input's dtype"
    )
    assert torch.equal(logits, before), f"{name}: modified the logits in place"
    want = LOGIT_SCORES[name][0](logits.numpy())
    got = out.detach().cpu().numpy()
    assert np.allclose(got, want, rtol=1e-10, atol=1e-10), (
        f"{name}: on float64 logits the result is off by {np.abs(got - want).max():.2g}; "
        f"compute in the input's dtype (no float32 round trip)"
    )


@pytest.mark.parametrize("name", LOGIT_PARAMS)
def test_higher_score_means_more_anomalous(scores, name):
    # a confident prediction (typical in-distribution) and a flat, unsure one
    confident = torch.tensor([[9.0, 0.0, 0.0, 0.0]])
    unsure = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    s_conf = float(call_score(scores, name, confident)[0])
    s_unsure = float(call_score(scores, name, unsure)[0])
    assert s_unsure > s_conf, (
        f"{name}: the flat logits [1, 1, 1, 1] scored {s_unsure:.4f} and the confident logits "
        f"[9, 0, 0, 0] scored {s_conf:.4f}; higher must mean MORE anomalous, so the unsure input "
        f"must score higher (did you forget the minus sign?)"
    )


# --------------------------------------------------------------------------- #
# Function-specific properties.
# --------------------------------------------------------------------------- #


@graded("msp_score")
def test_msp_score_range_and_shift_invariance(scores, gen):
    logits = torch.randn(50, 6, generator=gen(2)) * 4
    got = scores_of("msp_score", scores.msp_score(logits), 50)
    assert got.min() >= -1 - 1e-6 and got.max() <= -1 / 6 + 1e-6, (
        f"msp_score: scores must lie in [-1, -1/C] = [-1, {-1 / 6:.4f}] for C=6, got "
        f"[{got.min():.4f}, {got.max():.4f}]; the score is minus a probability"
    )
    flat = scores_of("msp_score", scores.msp_score(torch.zeros(2, 6)), 2)
    assert np.allclose(flat, -1 / 6, atol=1e-6), (
        f"msp_score: all-zero logits (a uniform softmax over 6 classes) should score -1/6, got {flat}"
    )
    shifted = scores_of("msp_score", scores.msp_score(logits + 7.5), 50)
    assert np.allclose(shifted, got, atol=1e-6), (
        "msp_score: adding the same constant to every logit of a row changed the score; the "
        "softmax is invariant to it (normalise over dim=1, the classes)"
    )


@graded("max_logit_score")
def test_max_logit_score_hand_case(scores):
    logits = torch.tensor([[1.0, 5.0, -2.0], [-3.0, -1.0, -7.0], [0.5, 0.5, 0.5]])
    got = scores_of("max_logit_score", scores.max_logit_score(logits), 3)
    want = np.array([-5.0, 1.0, -0.5])
    assert np.allclose(got, want), (
        f"max_logit_score: logits [[1, 5, -2], [-3, -1, -7], [0.5, 0.5, 0.5]] should score "
        f"{want.tolist()}, got {got.tolist()}; the max is over the classes (dim=1), then negated"
    )


@graded("energy_score")
@pytest.mark.parametrize("temperature", [0.5, 2.0, 10.0])
def test_energy_score_with_a_temperature(scores, gen, temperature):
    logits = torch.randn(20, 5, generator=gen(3)) * 3
    got = scores_of("energy_score", scores.energy_score(logits, temperature=temperature), 20)
    want = ref_energy(logits.double().numpy(), temperature)
    wrong = {
        "logits multiplied by T instead of divided": ref_energy(
            logits.double().numpy() * temperature**2, temperature
        ),
        "the factor T in front missing": want / temperature,
    }
    guess = next((k for k, v in wrong.items() if np.allclose(got, v, rtol=1e-4)), None)
    gap, sign = gap_report(got, want)
    assert np.allclose(got, want, rtol=1e-5, atol=1e-4), (
        f"energy_score: at T={temperature} differs from -T * logsumexp(logits / T) by up to "
        f"{gap:.3g}.{sign}" + (f" It matches {guess}." if guess else "")
    )


@graded("energy_score")
def test_energy_score_default_and_limits(scores, gen):
    logits = torch.randn(30, 4, generator=gen(4)) * 2
    default = scores_of("energy_score", scores.energy_score(logits), 30)
    assert np.allclose(default, ref_energy(logits.double().numpy(), 1.0), rtol=1e-5, atol=1e-5), (
        "energy_score: the default temperature is T=1"
    )
    cold = scores_of("energy_score", scores.energy_score(logits, temperature=1e-3), 30)
    max_logit = ref_max_logit(logits.double().numpy())
    assert np.allclose(cold, max_logit, atol=5e-3), (
        f"energy_score: as T -> 0 the energy should approach -max logit (largest gap at T=1e-3: "
        f"{np.abs(cold - max_logit).max():.3g}); did you divide the logits by T inside the "
        f"logsumexp and multiply by T outside?"
    )
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError):
            scores.energy_score(logits, temperature=bad)
            pytest.fail(f"energy_score: temperature={bad} must raise ValueError", pytrace=False)


@graded("uniform_kl_score")
def test_uniform_kl_score_is_highest_for_a_uniform_softmax(scores, gen):
    c = 7
    flat = scores_of("uniform_kl_score", scores.uniform_kl_score(torch.full((3, c), 2.5)), 3)
    assert np.allclose(flat, -np.log(c), atol=1e-5), (
        f"uniform_kl_score: a uniform softmax over C={c} classes should score -log C = "
        f"{-np.log(c):.4f}, got {flat.tolist()}; the score is (1/C) * sum_c log p_c = -H(u, p), "
        f"not the KL divergence itself (which is 0 there)"
    )
    logits = torch.randn(40, c, generator=gen(5)) * 3
    got = scores_of("uniform_kl_score", scores.uniform_kl_score(logits), 40)
    assert (got <= -np.log(c) + 1e-5).all(), (
        f"uniform_kl_score: scores should never exceed -log C = {-np.log(c):.4f} (reached only "
        f"at the uniform softmax), got up to {got.max():.4f}"
    )
    shifted = scores_of("uniform_kl_score", scores.uniform_kl_score(logits - 11.0), 40)
    assert np.allclose(shifted, got, atol=1e-5), (
        "uniform_kl_score: adding a constant to every logit of a row changed the score; use the "
        "log-softmax over dim=1, not the raw logits"
    )


# --------------------------------------------------------------------------- #
# outlier_exposure_loss
# --------------------------------------------------------------------------- #


def ref_oe_loss(z_in, y_in, z_out, lam):
    out_term = -(torch.log_softmax(z_out, dim=1)).mean(dim=1).mean()
    return F.cross_entropy(z_in, y_in) + lam * out_term


@graded("outlier_exposure_loss")
@pytest.mark.parametrize("lam", [0.0, 0.5, 2.0])
def test_outlier_exposure_loss_matches_the_formula(scores, gen, lam):
    g = gen(6)
    z_in, z_out = torch.randn(12, 5, generator=g) * 3, torch.randn(20, 5, generator=g) * 3
    y_in = torch.randint(0, 5, (12,), generator=g)
    got = scores.outlier_exposure_loss(z_in, y_in, z_out, lam=lam)
    assert isinstance(got, torch.Tensor) and got.dim() == 0, (
        f"outlier_exposure_loss: expected a 0-dim tensor (a loss to call .backward() on), got "
        f"{type(got).__name__} {getattr(got, 'shape', '')}"
    )
    want = ref_oe_loss(z_in, y_in, z_out, lam).item()
    ce = F.cross_entropy(z_in, y_in).item()
    assert abs(got.item() - want) < 1e-5, (
        f"outlier_exposure_loss: with lam={lam}, 12 in-distribution and 20 outlier examples, "
        f"expected {want:.5f} (cross-entropy {ce:.5f} + lam * mean over outliers of "
        f"-(1/C) sum_c log_softmax), got {got.item():.5f}; means over the batch and over the "
        f"classes, not sums"
    )


@graded("outlier_exposure_loss")
def test_outlier_exposure_loss_default_and_uniform_outliers(scores, gen):
    g = gen(7)
    z_in, y_in = torch.randn(8, 4, generator=g), torch.randint(0, 4, (8,), generator=g)
    z_out = torch.full((5, 4), 3.0)  # a uniform softmax on every outlier
    ce = F.cross_entropy(z_in, y_in).item()
    got = scores.outlier_exposure_loss(z_in, y_in, z_out, lam=1.0).item()
    assert abs(got - (ce + np.log(4))) < 1e-5, (
        f"outlier_exposure_loss: outliers with a uniform softmax over C=4 classes should add "
        f"exactly lam * log C = {np.log(4):.4f} to the cross-entropy {ce:.4f}, got a total of "
        f"{got:.4f}; the outlier term is the cross-entropy from uniform, H(u, p) >= log C"
    )
    default = scores.outlier_exposure_loss(z_in, y_in, z_out).item()
    assert abs(default - (ce + 0.5 * np.log(4))) < 1e-5, (
        f"outlier_exposure_loss: the default lam is 0.5 (expected {ce + 0.5 * np.log(4):.4f}, "
        f"got {default:.4f})"
    )


@graded("outlier_exposure_loss")
def test_outlier_exposure_loss_gradients(scores, gen):
    g = gen(8)
    z_in = (torch.randn(6, 3, generator=g) * 2).requires_grad_(True)
    z_out = (torch.randn(9, 3, generator=g) * 2).requires_grad_(True)
    y_in = torch.randint(0, 3, (6,), generator=g)
    before = (z_in.detach().clone(), z_out.detach().clone())
    loss = scores.outlier_exposure_loss(z_in, y_in, z_out, lam=0.7)
    assert isinstance(loss, torch.Tensor) and loss.requires_grad, (
        "outlier_exposure_loss: the loss does not require grad; keep it a tensor built from the "
        "logits (no .item(), .detach() or numpy)"
    )
    got = torch.autograd.grad(loss, (z_in, z_out))
    want = torch.autograd.grad(ref_oe_loss(z_in, y_in, z_out, 0.7), (z_in, z_out))
    for which, a, b in zip(("logits_in", "logits_out"), got, want, strict=True):
        assert torch.allclose(a, b, atol=1e-6), (
            f"outlier_exposure_loss: gradient with respect to {which} differs from the reference "
            f"by {(a - b).abs().max().item():.3g}"
        )
    # descending the loss must flatten the outliers' softmax (raise their uniform-KL score)
    flatter = (z_out - 0.5 * got[1]).detach()
    assert (
        ref_uniform_kl(flatter.double().numpy()).mean()
        > ref_uniform_kl(z_out.detach().double().numpy()).mean()
    ), "outlier_exposure_loss: minimising it should push outliers towards uniform"
    assert torch.equal(z_in.detach(), before[0]) and torch.equal(z_out.detach(), before[1]), (
        "outlier_exposure_loss: modified the logits in place"
    )


@graded("outlier_exposure_loss")
def test_outlier_exposure_loss_is_finite_for_huge_logits(scores):
    z_in = torch.tensor([[1e4, 0.0, -1e4], [0.0, 1e4, 0.0]])
    z_out = torch.tensor([[1e4, -1e4, 0.0]])
    y_in = torch.tensor([1, 1])
    got = scores.outlier_exposure_loss(z_in, y_in, z_out, lam=0.5).item()
    want = ref_oe_loss(z_in.double(), y_in, z_out.double(), 0.5).item()
    assert np.isfinite(got) and abs(got - want) < 1e-2 * abs(want), (
        f"outlier_exposure_loss: logits of magnitude 1e4 gave {got}, expected {want:.1f}; use "
        f"torch.log_softmax (log of a softmax that underflowed to 0 is -inf)"
    )


# --------------------------------------------------------------------------- #
# mahalanobis_fit and mahalanobis_score
# --------------------------------------------------------------------------- #


def gaussian_classes(seed, sizes=(12, 30, 70), d=4, spreads=(0.4, 1.0, 2.5)):
    """Classes of very different sizes and spreads, far apart: the pooled
    covariance then differs from a per-class average and from the total covariance."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=6.0, size=(len(sizes), d))
    mixing = rng.normal(size=(d, d))
    f, y = [], []
    for k, (n, spread) in enumerate(zip(sizes, spreads, strict=True)):
        f.append(centres[k] + spread * rng.normal(size=(n, d)) @ mixing)
        y += [k] * n
    order = rng.permutation(sum(sizes))
    return np.concatenate(f)[order], np.array(y)[order]


def ref_mahalanobis_fit(f, y, k):
    means = np.stack([f[y == c].mean(axis=0) for c in range(k)])
    centred = f - means[y]
    return means, np.linalg.pinv(centred.T @ centred / len(f), hermitian=True)


def wrong_precisions(f, y, k):
    """Precisions a plausible mistake gives, to name it in the failure message."""
    means = np.stack([f[y == c].mean(axis=0) for c in range(k)])
    centred = f - means[y]
    pooled = centred.T @ centred
    per_class = [np.cov(f[y == c].T, bias=True) for c in range(k)]
    overall = f - f.mean(axis=0)
    inv = np.linalg.pinv
    return {
        "the unweighted average of per-class covariances (use one pooled covariance)": inv(
            np.mean(per_class, axis=0)
        ),
        "the covariance around the global mean (centre each feature on its own class mean)": inv(
            overall.T @ overall / len(f)
        ),
        "the covariance divided by N - 1 (divide by N)": inv(pooled / (len(f) - 1)),
        "the covariance divided by N - K (divide by N)": inv(pooled / (len(f) - k)),
        "the covariance itself (return its pseudo-inverse, the precision)": pooled / len(f),
    }


def ref_mahalanobis_score(f, means, precision):
    out = []
    for row in f:
        d2 = [max(0.0, float((row - m) @ precision @ (row - m))) for m in means]
        out.append(np.sqrt(min(d2)))
    return np.array(out)


def unpack_fit(value, k, d):
    if not (isinstance(value, tuple | list) and len(value) == 2):
        pytest.fail(
            f"mahalanobis_fit: expected a tuple (means, precision), got {type(value).__name__}",
            pytrace=False,
        )
    means, precision = value
    for what, tensor, shape in (("means", means, (k, d)), ("precision", precision, (d, d))):
        if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != shape:
            pytest.fail(
                f"mahalanobis_fit: {what} should be a tensor of shape {shape}, got "
                f"{type(tensor).__name__} {tuple(getattr(tensor, 'shape', ()))}"
                + (
                    "; ONE covariance shared by all classes, not one per class"
                    if what == "precision"
                    else ""
                ),
                pytrace=False,
            )
    return means.detach().cpu().double().numpy(), precision.detach().cpu().double().numpy()


def relative_gap(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12))


@graded("mahalanobis_fit")
@pytest.mark.parametrize("seed", [0, 1])
def test_mahalanobis_fit_matches_a_numpy_reference(scores, seed):
    f, y = gaussian_classes(seed)
    means, precision = unpack_fit(
        scores.mahalanobis_fit(torch.tensor(f), torch.tensor(y)), 3, f.shape[1]
    )
    ref_means, ref_precision = ref_mahalanobis_fit(f, y, 3)
    assert np.allclose(means, ref_means, atol=1e-8), (
        f"mahalanobis_fit: class means differ from the reference by "
        f"{np.abs(means - ref_means).max():.3g}; means[k] is the mean feature of class k"
    )
    gap = relative_gap(precision, ref_precision)
    guess = next(
        (
            name
            for name, wrong in wrong_precisions(f, y, 3).items()
            if relative_gap(precision, wrong) < 1e-4
        ),
        None,
    )
    assert gap < 1e-6, (
        f"mahalanobis_fit: the precision differs from pinv of the shared covariance "
        f"(1/N) sum_i (f_i - mu_y_i)(f_i - mu_y_i)^T by {gap:.2%} (relative, classes of 12, 30 and "
        f"70 examples)" + (f"; it matches {guess}" if guess else "")
    )


@graded("mahalanobis_fit")
def test_mahalanobis_fit_classes_and_dtypes(scores):
    f, y = gaussian_classes(2)
    f32 = torch.tensor(f, dtype=torch.float32)
    before = f32.clone()
    means, precision = scores.mahalanobis_fit(f32, torch.tensor(y))
    assert means.dtype == torch.float32 and precision.dtype == torch.float32, (
        f"mahalanobis_fit: float32 features gave {means.dtype} / {precision.dtype}; return the "
        f"dtype of the features (compute in float64 inside)"
    )
    assert torch.equal(f32, before), "mahalanobis_fit: modified the features in place"
    ref_means, ref_precision = ref_mahalanobis_fit(f32.double().numpy(), y, 3)
    gap, right_in_float64 = relative_gap(precision.double().numpy(), ref_precision), False
    if gap >= 1e-4:  # a precision hint only where float64 features do give the right answer
        exact = scores.mahalanobis_fit(f32.double(), torch.tensor(y))[1]
        right_in_float64 = (
            relative_gap(torch.as_tensor(exact).double().numpy(), ref_precision) < 1e-6
        )
    assert gap < 1e-4, f"mahalanobis_fit: on float32 features the precision is off by {gap:.2%}" + (
        "; on the same features in float64 it is right: compute in float64 inside"
        if right_in_float64
        else ""
    )
    more = scores.mahalanobis_fit(torch.tensor(f), torch.tensor(y), num_classes=3)
    unpack_fit(more, 3, f.shape[1])
    with pytest.raises(ValueError):
        scores.mahalanobis_fit(torch.tensor(f), torch.tensor(y), num_classes=4)
        pytest.fail(
            "mahalanobis_fit: num_classes=4 with no example of class 3 must raise ValueError",
            pytrace=False,
        )


@graded("mahalanobis_score")
def test_mahalanobis_score_matches_a_numpy_reference(scores):
    rng = np.random.default_rng(3)
    d, k = 5, 4
    a = rng.normal(size=(d, d))
    precision = a @ a.T + 0.1 * np.eye(d)
    means = rng.normal(scale=3, size=(k, d))
    f = rng.normal(scale=3, size=(25, d))
    got = scores_of(
        "mahalanobis_score",
        scores.mahalanobis_score(torch.tensor(f), torch.tensor(means), torch.tensor(precision)),
        25,
    )
    want = ref_mahalanobis_score(f, means, precision)
    d2 = np.array([[(r - m) @ precision @ (r - m) for m in means] for r in f])
    wrong = {
        "the squared distance (take the square root)": d2.min(axis=1),
        "the max over classes (take the min: the nearest class)": np.sqrt(d2.max(axis=1)),
        "the Euclidean distance (use the precision matrix)": np.sqrt(
            ((f[:, None] - means[None]) ** 2).sum(-1).min(axis=1)
        ),
        "the negative distance (higher must mean MORE anomalous)": -want,
    }
    guess = next((n for n, w in wrong.items() if np.allclose(got, w, rtol=1e-5)), None)
    assert np.allclose(got, want, rtol=1e-6, atol=1e-8), (
        f"mahalanobis_score: differs from min_k sqrt((f - mu_k)^T P (f - mu_k)) by up to "
        f"{np.abs(got - want).max():.3g}" + (f"; it matches {guess}" if guess else "")
    )
    at_means = scores_of(
        "mahalanobis_score",
        scores.mahalanobis_score(torch.tensor(means), torch.tensor(means), torch.tensor(precision)),
        k,
    )
    assert np.allclose(at_means, 0, atol=1e-6), (
        f"mahalanobis_score: a class mean should score 0, got {at_means.tolist()}"
    )


def elongated_gaussians():
    """Two classes sharing one long, thin covariance (sd 4 along ``long``, 0.1 across)."""
    angle = np.deg2rad(30)
    long, short = (
        np.array([np.cos(angle), np.sin(angle)]),
        np.array([-np.sin(angle), np.cos(angle)]),
    )
    covariance = 16 * np.outer(long, long) + 0.01 * np.outer(short, short)
    means = np.stack([np.zeros(2), 40 * short])
    # in-distribution: 2.5 sd along the long axis (Euclidean 10); OOD: 0.5 across (5 sd)
    inside = np.stack([m + s * 10 * long for m in means for s in (1, -1)])
    outside = np.stack([m + s * 0.5 * short for m in means for s in (1, -1)])
    return covariance, means, inside, outside


@graded("mahalanobis_score")
def test_mahalanobis_score_uses_the_shared_covariance(scores):
    covariance, means, inside, outside = elongated_gaussians()
    precision = torch.tensor(np.linalg.inv(covariance))
    s_in = scores_of(
        "mahalanobis_score",
        scores.mahalanobis_score(torch.tensor(inside), torch.tensor(means), precision),
        4,
    )
    s_out = scores_of(
        "mahalanobis_score",
        scores.mahalanobis_score(torch.tensor(outside), torch.tensor(means), precision),
        4,
    )
    assert np.allclose(s_in, 2.5, atol=1e-6) and np.allclose(s_out, 5.0, atol=1e-6), (
        f"mahalanobis_score: with a covariance of sd 4 along one axis and 0.1 across it, points "
        f"10 along the long axis should score 2.5 and points 0.5 across it 5.0; got "
        f"{s_in.round(3).tolist()} and {s_out.round(3).tolist()} (Euclidean distance would "
        f"rank them the other way round)"
    )


@graded("mahalanobis_fit")
def test_mahalanobis_fit_learns_the_shared_covariance(scores):
    covariance, means, inside, outside = elongated_gaussians()
    rng = np.random.default_rng(4)
    chol = np.linalg.cholesky(covariance)
    f = np.concatenate(
        [m + rng.normal(size=(n, 2)) @ chol.T for m, n in zip(means, (400, 150), strict=True)]
    )
    y = np.repeat([0, 1], (400, 150))
    fitted_means, precision = unpack_fit(
        scores.mahalanobis_fit(torch.tensor(f), torch.tensor(y)), 2, 2
    )
    s_in = ref_mahalanobis_score(inside, fitted_means, precision)
    s_out = ref_mahalanobis_score(outside, fitted_means, precision)
    assert s_in.max() < s_out.min(), (
        f"mahalanobis_fit: fitted on two Gaussians that share a long, thin covariance, the "
        f"distances of points along the long axis ({s_in.round(2).tolist()}) should all be "
        f"below those of points across it ({s_out.round(2).tolist()})"
    )
    assert np.allclose(s_in, 2.5, rtol=0.15) and np.allclose(s_out, 5.0, rtol=0.15), (
        f"mahalanobis_fit: with the fitted shared covariance the test points should be about "
        f"2.5 and 5 sd away, got {s_in.round(2).tolist()} and {s_out.round(2).tolist()}"
    )


@graded("mahalanobis_fit")
def test_mahalanobis_fit_on_the_checkpoint_features(scores, checkpoint_outputs):
    out = checkpoint_outputs
    try:
        fitted = scores.mahalanobis_fit(out["f_train"], out["y_train"])
    except RuntimeError as err:  # torch.linalg.inv of a singular matrix
        pytest.fail(
            f"mahalanobis_fit: failed on the checkpoint's features ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:80]}); 38 of their 64 features are dead ReLUs, so the "
            f"covariance is singular: use the pseudo-inverse torch.linalg.pinv",
            pytrace=False,
        )
    means, precision = unpack_fit(fitted, 10, out["f_train"].shape[1])
    s_in = ref_mahalanobis_score(out["f_test"].double().numpy(), means, precision)
    s_out = ref_mahalanobis_score(out["f_noise"].double().numpy(), means, precision)
    auc = mann_whitney(s_in, s_out)
    assert auc > 0.95, (
        f"mahalanobis_fit: fitted on the checkpoint's features of 600 digits (38 of 64 features are "
        f"dead ReLUs: use the pseudo-inverse), the Mahalanobis distance should separate uniform "
        f"noise from test digits (AUROC {auc:.3f} <= 0.95)"
    )


@graded("mahalanobis_score")
def test_mahalanobis_score_on_the_checkpoint_features(scores, checkpoint_outputs):
    out = checkpoint_outputs
    ref_means, ref_precision = ref_mahalanobis_fit(
        out["f_train"].double().numpy(), out["y_train"].numpy(), 10
    )
    means, precision = torch.tensor(ref_means).float(), torch.tensor(ref_precision).float()
    before = out["f_test"].clone()
    s_in = scores_of(
        "mahalanobis_score", scores.mahalanobis_score(out["f_test"], means, precision), 200
    )
    s_out = scores_of(
        "mahalanobis_score", scores.mahalanobis_score(out["f_noise"], means, precision), 200
    )
    assert torch.equal(out["f_test"], before), "mahalanobis_score: modified the features in place"
    want = ref_mahalanobis_score(out["f_test"].double().numpy(), ref_means, ref_precision)
    hint = ""
    if not np.allclose(s_in, want, rtol=1e-3, atol=1e-3):  # hint at precision only on evidence
        exact = scores.mahalanobis_score(
            out["f_test"].double(), torch.tensor(ref_means), torch.tensor(ref_precision)
        )
        if np.allclose(np.asarray(torch.as_tensor(exact).double()), want, rtol=1e-6, atol=1e-6):
            hint = "; the same features in float64 give the right scores: compute in float64 inside"
    assert np.allclose(s_in, want, rtol=1e-3, atol=1e-3), (
        f"mahalanobis_score: on the checkpoint's float32 features the scores are off by up to "
        f"{np.abs(s_in - want).max():.3g}{hint}"
    )
    auc = mann_whitney(s_in, s_out)
    assert auc > 0.95, (
        f"mahalanobis_score: should separate uniform noise from test digits (AUROC {auc:.3f})"
    )


# --------------------------------------------------------------------------- #
# vim_fit and vim_score
# --------------------------------------------------------------------------- #


def vim_problem(seed=0, n=300, d=8, c=3):
    """Features with a well-separated spectrum and a last layer ``W (c, d)``, ``b (c,)``."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    f = rng.normal(size=(n, d)) * np.geomspace(4, 0.2, d) @ q.T + rng.normal(size=d)
    return f, rng.normal(size=(c, d)), rng.normal(size=c)


def ref_vim_fit(f, w, b, dim):
    origin = -np.linalg.pinv(w) @ b
    x = f - origin
    values, vectors = np.linalg.eigh(x.T @ x / len(x))
    residual = vectors[:, np.argsort(values)[::-1][dim:]]
    alpha = (f @ w.T + b).max(axis=1).sum() / np.linalg.norm(x @ residual, axis=1).sum()
    return origin, residual, alpha


def ref_vim_score(f, z, origin, residual, alpha):
    return alpha * np.linalg.norm((f - origin) @ residual, axis=1) - np_logsumexp(z)


def unpack_vim(value, d, dim):
    if not (isinstance(value, tuple | list) and len(value) == 3):
        pytest.fail(
            f"vim_fit: expected a tuple (origin, residual_basis, alpha), got {type(value).__name__}",
            pytrace=False,
        )
    origin, basis, alpha = value
    if not isinstance(origin, torch.Tensor) or tuple(origin.shape) != (d,):
        pytest.fail(f"vim_fit: origin should be a tensor of shape ({d},)", pytrace=False)
    if not isinstance(basis, torch.Tensor) or tuple(basis.shape) != (d, d - dim):
        pytest.fail(
            f"vim_fit: residual_basis should have shape (D, D - dim) = ({d}, {d - dim}), got "
            f"{tuple(getattr(basis, 'shape', ()))}; its columns span the complement of the "
            f"dim-dimensional principal subspace",
            pytrace=False,
        )
    if not isinstance(alpha, float):
        pytest.fail(
            f"vim_fit: alpha should be a Python float, got {type(alpha).__name__}", pytrace=False
        )
    return origin.detach().double().numpy(), basis.detach().double().numpy(), alpha


@graded("vim_fit")
@pytest.mark.parametrize("dim", [2, 5])
def test_vim_fit_matches_a_numpy_reference(scores, dim):
    f, w, b = vim_problem()
    got = scores.vim_fit(torch.tensor(f), torch.tensor(w), torch.tensor(b), dim)
    origin, basis, alpha = unpack_vim(got, f.shape[1], dim)
    ref_origin, ref_basis, ref_alpha = ref_vim_fit(f, w, b, dim)
    if np.allclose(origin, -ref_origin, atol=1e-6):
        pytest.fail("vim_fit: origin has the wrong sign; u = -pinv(W) @ b", pytrace=False)
    assert np.allclose(origin, ref_origin, atol=1e-8), (
        f"vim_fit: origin differs from -pinv(W) @ b by {np.abs(origin - ref_origin).max():.3g}"
        + (
            "; it is the feature mean, but this lab centres on u = -pinv(W) @ b"
            if np.allclose(origin, f.mean(axis=0), atol=1e-6)
            else ""
        )
    )
    assert np.allclose(basis.T @ basis, np.eye(f.shape[1] - dim), atol=1e-8), (
        "vim_fit: the columns of residual_basis should be orthonormal (eigenvectors)"
    )
    projector, ref_projector = basis @ basis.T, ref_basis @ ref_basis.T
    gap = np.abs(projector - ref_projector).max()
    x = f - ref_origin
    _, vectors = np.linalg.eigh(x.T @ x / len(x))
    hints = {
        "the top eigenvectors (torch.linalg.eigh sorts eigenvalues in ascending order; keep "
        "the D - dim smallest)": vectors[:, -(f.shape[1] - dim) :],
        "eigenvectors of the mean-centred covariance (ViM centres on the origin u only)": np.linalg.eigh(
            np.cov(x.T, bias=True)
        )[1][:, : f.shape[1] - dim],
    }
    guess = next(
        (k for k, v in hints.items() if np.abs(projector - v @ v.T).max() < 1e-6),
        None,
    )
    assert gap < 1e-6, (
        f"vim_fit: residual_basis spans the wrong subspace (projectors differ by {gap:.3g}); it "
        f"should hold the eigenvectors of (1/N) X^T X, X = features - u, with the D - dim "
        f"SMALLEST eigenvalues" + (f"; you took {guess}" if guess else "")
    )
    assert abs(alpha - ref_alpha) < 1e-6 * abs(ref_alpha), (
        f"vim_fit: alpha should be {ref_alpha:.6f} (sum of max logits / sum of residual norms "
        f"over the fit set, logits = features @ W.T + b), got {alpha:.6f}"
        + ("; that is its reciprocal" if abs(alpha * ref_alpha - 1) < 1e-6 else "")
    )


@graded("vim_fit")
def test_vim_fit_rejects_bad_dims_and_leaves_inputs(scores):
    f, w, b = (torch.tensor(a) for a in vim_problem(1))
    before = [t.clone() for t in (f, w, b)]
    scores.vim_fit(f, w, b, 3)
    assert all(torch.equal(t, s) for t, s in zip((f, w, b), before, strict=True)), (
        "vim_fit: modified its inputs in place"
    )
    for bad in (0, f.shape[1]):
        with pytest.raises(ValueError):
            scores.vim_fit(f, w, b, bad)
            pytest.fail(
                f"vim_fit: dim={bad} must raise ValueError (0 < dim < D={f.shape[1]})",
                pytrace=False,
            )


@graded("vim_fit")
def test_vim_fit_on_the_checkpoint(scores, checkpoint_outputs):
    out = checkpoint_outputs
    origin, basis, alpha = unpack_vim(
        scores.vim_fit(out["f_train"], out["weight"], out["bias"], 12), 64, 12
    )
    logits_at_origin = out["weight"].double().numpy() @ origin + out["bias"].double().numpy()
    assert np.abs(logits_at_origin).max() < 1e-4, (
        f"vim_fit: the logits at the origin u should all be 0 (W u + b = 0), got up to "
        f"{np.abs(logits_at_origin).max():.3g}"
    )
    s_in = ref_vim_score(
        out["f_test"].double().numpy(), out["z_test"].double().numpy(), origin, basis, alpha
    )
    s_out = ref_vim_score(
        out["f_noise"].double().numpy(), out["z_noise"].double().numpy(), origin, basis, alpha
    )
    auc = mann_whitney(s_in, s_out)
    assert auc > 0.95, (
        f"vim_fit: fitted on the checkpoint's features of 600 digits with dim=12, ViM should "
        f"separate uniform noise from test digits (AUROC {auc:.3f} <= 0.95)"
    )


@graded("vim_score")
def test_vim_score_matches_the_formula(scores):
    f, w, b = vim_problem(2)
    origin, basis, alpha = ref_vim_fit(f, w, b, 3)
    rng = np.random.default_rng(5)
    test = f[:40] + rng.normal(scale=2, size=(40, f.shape[1]))
    z = test @ w.T + b
    got = scores_of(
        "vim_score",
        scores.vim_score(
            torch.tensor(test),
            torch.tensor(z),
            torch.tensor(origin),
            torch.tensor(basis),
            float(alpha),
        ),
        40,
    )
    want = ref_vim_score(test, z, origin, basis, alpha)
    residual = np.linalg.norm((test - origin) @ basis, axis=1)
    wrong = {
        "the negative ViM score (higher must mean MORE anomalous)": -want,
        "the residual of the features not centred on the origin": alpha
        * np.linalg.norm(test @ basis, axis=1)
        - np_logsumexp(z),
        "the energy added instead of subtracted": alpha * residual + np_logsumexp(z),
        "the max logit instead of logsumexp": alpha * residual - z.max(axis=1),
        "the squared residual norm": alpha * residual**2 - np_logsumexp(z),
    }
    guess = next((k for k, v in wrong.items() if np.allclose(got, v, rtol=1e-6)), None)
    assert np.allclose(got, want, rtol=1e-6, atol=1e-6), (
        f"vim_score: differs from alpha * ||(f - u) @ residual_basis|| - logsumexp(logits) by up to "
        f"{np.abs(got - want).max():.3g}" + (f"; it matches {guess}" if guess else "")
    )


@graded("vim_score")
def test_vim_score_on_the_checkpoint(scores, checkpoint_outputs):
    out = checkpoint_outputs
    origin, basis, alpha = ref_vim_fit(
        out["f_train"].double().numpy(),
        out["weight"].double().numpy(),
        out["bias"].double().numpy(),
        12,
    )
    state = (torch.tensor(origin).float(), torch.tensor(basis).float(), float(alpha))
    before = out["f_test"].clone(), out["z_test"].clone()
    s_in = scores_of("vim_score", scores.vim_score(out["f_test"], out["z_test"], *state), 200)
    s_out = scores_of("vim_score", scores.vim_score(out["f_noise"], out["z_noise"], *state), 200)
    assert torch.equal(out["f_test"], before[0]) and torch.equal(out["z_test"], before[1]), (
        "vim_score: modified its inputs in place"
    )
    out_type = scores.vim_score(out["f_test"][:3], out["z_test"][:3], *state)
    assert out_type.dtype == torch.float32, (
        f"vim_score: float32 features gave {out_type.dtype} scores; return the features' dtype"
    )
    auc = mann_whitney(s_in, s_out)
    assert auc > 0.95, (
        f"vim_score: should separate uniform noise from test digits on the checkpoint "
        f"(AUROC {auc:.3f} <= 0.95)"
    )


# --------------------------------------------------------------------------- #
# Documented edge cases: exact ends of ranges, clamps and dtypes.
# --------------------------------------------------------------------------- #


@graded("mahalanobis_fit")
def test_mahalanobis_fit_rejects_a_class_missing_in_the_middle(scores):
    f = torch.tensor([[0.0, 1.0], [1.0, 0.0], [4.0, 4.0], [5.0, 3.0]], dtype=torch.float64)
    for labels, kw in (
        (torch.tensor([0, 0, 2, 2]), {}),
        (torch.tensor([0, 0, 2, 2]), {"num_classes": 3}),
        (torch.tensor([1, 1, 2, 2]), {}),
    ):
        with pytest.raises(ValueError):
            scores.mahalanobis_fit(f, labels, **kw)
            pytest.fail(
                f"mahalanobis_fit: labels {labels.tolist()}"
                + (f" with num_classes={kw['num_classes']}" if kw else " (K = labels.max() + 1)")
                + f" leave class {0 if labels.min() > 0 else 1} without an example; raise "
                f"ValueError (check every class in [0, K), not only the last)",
                pytrace=False,
            )


@graded("mahalanobis_score")
def test_mahalanobis_score_clamps_negative_squared_distances(scores):
    # a precision with a rounding-size negative eigenvalue along (0, 1), as pinv can give
    precision = torch.tensor([[1.0, 0.0], [0.0, -1e-12]], dtype=torch.float64)
    means = torch.tensor([[0.0, 0.0], [50.0, 0.0]], dtype=torch.float64)
    f = torch.tensor([[0.0, 1e3], [3.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    got = scores_of("mahalanobis_score", scores.mahalanobis_score(f, means, precision), 3)
    assert not np.isnan(got).any(), (
        f"mahalanobis_score: got {got.tolist()}; a squared distance of -1e-6 from rounding must "
        f"count as 0 (clamp it at 0 before the square root), not give NaN"
    )
    assert np.allclose(got, [0.0, 3.0, 0.0], atol=1e-9), (
        f"mahalanobis_score: expected [0, 3, 0] (the first point's squared distance -1e-6 counts "
        f"as 0), got {got.tolist()}; clamp the squared distance at 0, do not take its absolute value"
    )


@graded("mahalanobis_score")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_mahalanobis_score_keeps_the_features_dtype(scores, dtype):
    means = torch.tensor([[0.0, 0.0], [4.0, 4.0]], dtype=torch.float64)
    precision = torch.eye(2, dtype=torch.float64)
    f = torch.tensor([[3.0, 4.0], [4.0, 1.0]], dtype=dtype)
    out = scores.mahalanobis_score(f, means, precision)
    got = scores_of("mahalanobis_score", out, 2)
    assert out.dtype == dtype, (
        f"mahalanobis_score: {dtype} features with float64 means gave {out.dtype} scores; "
        f"return the dtype of the features"
    )
    assert np.allclose(got, [1.0, 3.0], atol=1e-5), (
        f"mahalanobis_score: expected [1, 3] (distances to the nearest mean), got {got.tolist()}"
    )


@graded("vim_fit")
def test_vim_fit_accepts_both_ends_of_the_dim_range_and_keeps_dtype(scores):
    f, w, b = vim_problem(3, n=120, d=6)
    for dim in (1, 5):
        try:
            got = scores.vim_fit(
                torch.tensor(f, dtype=torch.float32),
                torch.tensor(w, dtype=torch.float32),
                torch.tensor(b, dtype=torch.float32),
                dim,
            )
        except ValueError as err:
            pytest.fail(
                f"vim_fit: dim={dim} is allowed (0 < dim < D=6), but it raised ValueError "
                f"({str(err)[:60]}); check the ends of the range",
                pytrace=False,
            )
        origin, basis, alpha = unpack_vim(got, 6, dim)
        assert got[0].dtype == torch.float32 and got[1].dtype == torch.float32, (
            f"vim_fit: float32 features gave origin {got[0].dtype} and residual_basis "
            f"{got[1].dtype}; return the dtype of the features (compute in float64 inside)"
        )
        ref_origin, ref_basis, ref_alpha = ref_vim_fit(f, w, b, dim)
        gap = np.abs(basis @ basis.T - ref_basis @ ref_basis.T).max()
        assert gap < 1e-3 and abs(alpha / ref_alpha - 1) < 1e-3, (
            f"vim_fit: at dim={dim} (D=6, so 0 < dim < 6 allows 1 .. 5) the residual subspace is "
            f"off by {gap:.3g} and alpha is {alpha:.5f} instead of {ref_alpha:.5f}"
        )
