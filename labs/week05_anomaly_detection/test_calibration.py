"""Specs for calibration.py: reliability bins, ECE, Brier score, NLL and
temperature scaling.

Run them with `make test-week5` (add IMPL=solution to see the reference pass).
Every failure message starts with the graded function it is about.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mlsafety.grading import graded
from mlsafety.specs import python_float

GRADED = {
    "reliability_bins": "core",
    "ece": "core",
    "brier_score": "core",
    "nll": "core",
    "fit_temperature": "core",
}
pytestmark = pytest.mark.timeout(20)


# --------------------------------------------------------------------------- #
# Independent references and hand-built cases.
# --------------------------------------------------------------------------- #


def ref_bins(p, y, n_bins):
    """Per-bin (confidence, accuracy, count) with bins (lo, hi], written as a loop."""
    conf, pred = p.max(axis=1), p.argmax(axis=1)
    edges = np.linspace(0, 1, n_bins + 1)
    out = np.zeros((3, n_bins))
    for b in range(n_bins):
        inside = (conf > edges[b]) & (conf <= edges[b + 1])
        if b == 0:
            inside |= conf == 0
        if inside.any():
            out[:, b] = conf[inside].mean(), (pred[inside] == y[inside]).mean(), inside.sum()
    return out


def ref_ece(p, y, n_bins=15):
    conf, acc, count = ref_bins(p, y, n_bins)
    return float((count / count.sum() * np.abs(acc - conf)).sum())


def ref_brier(p, y):
    onehot = np.eye(p.shape[1])[y]
    return float(((p - onehot) ** 2).sum(axis=1).mean())


def hand_case():
    """Six examples, four classes, 4 bins: two bins empty, the others of unequal size.

    - four with confidence 0.3 (bin 1), one of them right: accuracy 0.25, gap 0.05;
    - two with confidence 0.8 (bin 3), one of them right: accuracy 0.5, gap 0.3.

    ECE = 4/6 * 0.05 + 2/6 * 0.3 = 0.1333...
    """
    p = torch.tensor([[0.3, 0.25, 0.25, 0.2]] * 4 + [[0.8, 0.1, 0.05, 0.05]] * 2)
    y = torch.tensor([0, 1, 1, 1, 0, 2])
    return p, y


def edge_case():
    """Confidences exactly on the bin edges of 4 bins (0.5, 0.75, 1.0; exact in binary).

    Bins are closed on the right, so 0.5 joins 0.375 in bin 1, 0.75 is bin 2
    and 1.0 is bin 3: counts [0, 3, 2, 1].
    """
    p = torch.tensor(
        [[0.5, 0.25, 0.125, 0.125]] * 2
        + [[0.75, 0.125, 0.125, 0.0]] * 2
        + [[1.0, 0.0, 0.0, 0.0], [0.375, 0.25, 0.25, 0.125]]
    )
    y = torch.tensor([1, 1, 0, 0, 0, 0])
    return p, y


def random_probs(seed, n=300, c=5, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g) * scale
    labels = torch.multinomial(torch.softmax(logits * 0.7, dim=1), 1, generator=g).squeeze(1)
    return torch.softmax(logits, dim=1), labels


def unpack_bins(value, n_bins):
    if not (isinstance(value, tuple | list) and len(value) == 3):
        pytest.fail(
            f"reliability_bins: expected a tuple (confidence, accuracy, count), got "
            f"{type(value).__name__}",
            pytrace=False,
        )
    for what, t in zip(("confidence", "accuracy", "count"), value, strict=True):
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != (n_bins,):
            pytest.fail(
                f"reliability_bins: {what} should be a tensor of shape ({n_bins},), got "
                f"{type(t).__name__} {tuple(getattr(t, 'shape', ()))}",
                pytrace=False,
            )
    return np.stack([t.detach().cpu().double().numpy() for t in value])


# --------------------------------------------------------------------------- #
# reliability_bins
# --------------------------------------------------------------------------- #


@graded("reliability_bins")
def test_reliability_bins_hand_case_with_empty_bins(calibration):
    p, y = hand_case()
    got = unpack_bins(calibration.reliability_bins(p, y, n_bins=4), 4)
    want = np.array([[0, 0.3, 0, 0.8], [0, 0.25, 0, 0.5], [0, 4, 0, 2]])
    assert not np.isnan(got).any(), (
        "reliability_bins: got NaN; an empty bin must report confidence 0.0 and accuracy 0.0 "
        "(the mean of an empty selection is NaN: guard it)"
    )
    assert np.allclose(got, want, atol=1e-6), (
        f"reliability_bins: on the hand-built case (see hand_case in test_calibration.py) expected "
        f"confidence {want[0].tolist()}, accuracy {want[1].tolist()}, count {want[2].tolist()}; "
        f"got {got[0].round(4).tolist()}, {got[1].round(4).tolist()}, {got[2].tolist()}"
    )


@graded("reliability_bins")
def test_reliability_bins_are_closed_on_the_right(calibration):
    p, y = edge_case()
    got = unpack_bins(calibration.reliability_bins(p, y, n_bins=4), 4)
    want = ref_bins(p.double().numpy(), y.numpy(), 4)
    assert np.allclose(got[2], [0, 3, 2, 1]), (
        f"reliability_bins: confidences 0.5, 0.5, 0.75, 0.75, 1.0, 0.375 in 4 bins should give "
        f"counts [0, 3, 2, 1] (bins (lo, hi]: 0.5 belongs to (0.25, 0.5]), got {got[2].tolist()}"
    )
    assert np.allclose(got, want, atol=1e-6), (
        f"reliability_bins: expected confidence {want[0].round(4).tolist()} and accuracy "
        f"{want[1].round(4).tolist()}, got {got[0].round(4).tolist()} and "
        f"{got[1].round(4).tolist()}"
    )


@graded("reliability_bins")
@pytest.mark.parametrize("n_bins", [1, 7, 15])
def test_reliability_bins_match_a_reference(calibration, n_bins):
    p, y = random_probs(n_bins)
    before = p.clone(), y.clone()
    value = calibration.reliability_bins(p, y, n_bins=n_bins)
    got = unpack_bins(value, n_bins)
    want = ref_bins(p.double().numpy(), y.numpy(), n_bins)
    assert got[2].sum() == len(y), (
        f"reliability_bins: counts add up to {got[2].sum():.0f}, not to the {len(y)} examples"
    )
    assert value[2].dtype == torch.int64, (
        f"reliability_bins: count should be int64, got {value[2].dtype} (counts, not fractions)"
    )
    assert np.allclose(got, want, atol=1e-6), (
        f"reliability_bins: with {n_bins} bins, largest gaps from the reference: confidence "
        f"{np.abs(got[0] - want[0]).max():.3g}, accuracy {np.abs(got[1] - want[1]).max():.3g}, "
        f"count {np.abs(got[2] - want[2]).max():.0f}; the prediction is argmax over dim=1"
    )
    assert torch.equal(p, before[0]) and torch.equal(y, before[1]), (
        "reliability_bins: modified probs or labels in place"
    )


# --------------------------------------------------------------------------- #
# ece
# --------------------------------------------------------------------------- #


@graded("ece")
def test_ece_hand_case_with_empty_bins(calibration):
    p, y = hand_case()
    got = python_float("ece", calibration.ece(p, y, n_bins=4))
    wrong = {
        "the gap to the bin midpoint instead of the mean confidence": 4 / 6 * 0.125 + 2 / 6 * 0.375,
        "an unweighted mean over the non-empty bins": (0.05 + 0.3) / 2,
        "an unweighted mean over all bins": (0.05 + 0.3) / 4,
    }
    guess = next((k for k, v in wrong.items() if abs(got - v) < 1e-6), None)
    assert not np.isnan(got), "ece: got NaN; empty bins must contribute 0"
    assert abs(got - 0.4 / 3) < 1e-6, (
        f"ece: on the hand-built case (4 examples at confidence 0.3, 1 right; 2 at 0.8, 1 right; "
        f"4 bins, two empty) ECE = 4/6 * |0.25 - 0.3| + 2/6 * |0.5 - 0.8| = 0.1333, got {got:.4f}"
        + (f"; that is {guess}" if guess else "")
    )


@graded("ece")
def test_ece_on_bin_edges(calibration):
    p, y = edge_case()
    got = python_float("ece", calibration.ece(p, y, n_bins=4))
    want = ref_ece(p.double().numpy(), y.numpy(), 4)
    assert abs(got - want) < 1e-6, (
        f"ece: with confidences exactly on the edges of 4 bins (0.5, 0.75, 1.0) expected "
        f"{want:.4f}, got {got:.4f}; bins are closed on the right, (lo, hi], with edges "
        f"linspace(0, 1, n_bins + 1)"
    )


@graded("ece")
def test_ece_extremes(calibration):
    calibrated = torch.tensor([[0.8, 0.2]] * 10)
    labels = torch.tensor([0] * 8 + [1] * 2)
    zero = python_float("ece", calibration.ece(calibrated, labels))
    assert abs(zero) < 1e-6, (
        f"ece: 10 predictions at confidence 0.8 of which 8 are right are perfectly calibrated "
        f"(ECE 0), got {zero:.4f}"
    )
    wrong = python_float(
        "ece", calibration.ece(torch.tensor([[1.0, 0.0, 0.0]] * 5), torch.ones(5, dtype=torch.long))
    )
    assert abs(wrong - 1) < 1e-6, f"ece: always wrong at confidence 1 gives ECE 1, got {wrong:.4f}"


@graded("ece")
@pytest.mark.parametrize("n_bins", [None, 1, 5, 20])
def test_ece_matches_a_reference(calibration, n_bins):
    p, y = random_probs(30 + (n_bins or 0), n=500, scale=3.0)
    before = p.clone()
    kw = {} if n_bins is None else {"n_bins": n_bins}
    got = python_float("ece", calibration.ece(p, y, **kw))
    want = ref_ece(p.double().numpy(), y.numpy(), n_bins or 15)
    assert abs(got - want) < 1e-6, (
        f"ece: with {n_bins or 'the default 15'} bins expected {want:.5f}, got {got:.5f}; "
        f"sum over bins of count/N * |accuracy - mean confidence|"
    )
    assert torch.equal(p, before), "ece: modified probs in place"


# --------------------------------------------------------------------------- #
# brier_score
# --------------------------------------------------------------------------- #


@graded("brier_score")
def test_brier_score_hand_cases(calibration):
    cases = [
        (torch.tensor([[0.0, 1.0, 0.0]]), [1], 0.0, "a confident correct prediction"),
        (torch.tensor([[1.0, 0.0, 0.0]]), [2], 2.0, "a confident wrong prediction"),
        (torch.full((3, 5), 0.2), [0, 3, 4], 0.8, "the uniform distribution over 5 classes"),
        (torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]]), [0, 0], (0.38 + 1.46) / 2, "two rows"),
    ]
    for p, y, want, what in cases:
        got = python_float("brier_score", calibration.brier_score(p, torch.tensor(y)))
        assert abs(got - want) < 1e-6, (
            f"brier_score: {what} ({np.round(p.numpy(), 3).tolist()}, labels {y}) should score "
            f"{want:.4f}, got "
            f"{got:.4f}; sum over ALL classes of (p_c - onehot_c)^2, then the mean over examples"
        )


@graded("brier_score")
def test_brier_score_matches_a_reference(calibration):
    p, y = random_probs(40, n=200, c=6)
    before = p.clone()
    got = python_float("brier_score", calibration.brier_score(p, y))
    want = ref_brier(p.double().numpy(), y.numpy())
    assert abs(got - want) < 1e-6, f"brier_score: expected {want:.5f}, got {got:.5f}"
    assert torch.equal(p, before), "brier_score: modified probs in place"


# --------------------------------------------------------------------------- #
# nll
# --------------------------------------------------------------------------- #


@graded("nll")
def test_nll_matches_cross_entropy(calibration, gen):
    g = gen(11)
    logits = torch.randn(100, 7, generator=g) * 3
    labels = torch.randint(0, 7, (100,), generator=g)
    before = logits.clone()
    got = python_float("nll", calibration.nll(logits, labels))
    want = F.cross_entropy(logits.double(), labels).item()
    assert abs(got - want) < 1e-5, (
        f"nll: expected {want:.5f} (mean of -log softmax(logits)[label]), got {got:.5f}"
    )
    assert torch.equal(logits, before), "nll: modified the logits in place"


@graded("nll")
def test_nll_is_finite_for_huge_logits(calibration):
    logits = torch.tensor([[1e4, 0.0], [0.0, 3e3], [5.0, 5.0]])
    labels = torch.tensor([1, 1, 0])
    got = python_float("nll", calibration.nll(logits, labels))
    want = (1e4 + 0.0 + np.log(2)) / 3
    assert np.isfinite(got) and abs(got - want) < 1e-3, (
        f"nll: logits [[1e4, 0], [0, 3e3], [5, 5]] with labels [1, 1, 0] give NLL "
        f"(1e4 + 0 + log 2) / 3 = {want:.2f}, got {got}; use log_softmax (log of a softmax that "
        f"rounded to 0 is inf)"
    )


# --------------------------------------------------------------------------- #
# fit_temperature
# --------------------------------------------------------------------------- #


def tempered_logits(seed, temperature, n=4000, c=10):
    """Logits whose labels were drawn from softmax(logits / temperature): the right
    temperature for them is ``temperature``."""
    g = torch.Generator().manual_seed(seed)
    calibrated = torch.randn(n, c, generator=g) * 2.5
    labels = torch.multinomial(torch.softmax(calibrated, dim=1), 1, generator=g).squeeze(1)
    return calibrated * temperature, labels


def nll_at(logits, labels, temperature):
    """NLL of softmax(logits / T) for one T (a float) or many (an array), in numpy float64."""
    z = logits.detach().double().numpy()[None] / np.atleast_1d(temperature)[:, None, None]
    top = z.max(axis=2, keepdims=True)
    log_norm = (top + np.log(np.exp(z - top).sum(axis=2, keepdims=True)))[..., 0]
    picked = np.take_along_axis(z, labels.numpy()[None, :, None], axis=2)[..., 0]
    values = (log_norm - picked).mean(axis=1)
    return float(values[0]) if np.ndim(temperature) == 0 else values


@graded("fit_temperature")
@pytest.mark.parametrize("true_t", [0.4, 3.0], ids=["underconfident", "overconfident"])
def test_fit_temperature_recovers_a_known_temperature(calibration, true_t):
    logits, labels = tempered_logits(int(true_t * 10), true_t)
    got = python_float("fit_temperature", calibration.fit_temperature(logits, labels))
    hint = ""
    if abs(got * true_t - 1) < 0.05:
        hint = "; that is 1/T: divide the logits by T, do not multiply"
    assert abs(got / true_t - 1) < 0.05, (
        f"fit_temperature: logits built as calibrated_logits * {true_t} need T = {true_t} "
        f"(softmax(logits / T) is then calibrated), got T = {got:.4f}{hint}"
    )
    grid = np.logspace(-2, 2, 801)
    best = nll_at(logits, labels, grid[(grid > got / 2) & (grid < got * 2)]).min()
    reached = nll_at(logits, labels, got)
    assert reached <= best + 1e-6, (
        f"fit_temperature: NLL at your T = {got:.4f} is {reached:.6f}, but a grid search finds "
        f"{best:.6f}; minimise the NLL of softmax(logits / T) more precisely"
    )


@graded("fit_temperature")
def test_fit_temperature_never_changes_the_prediction(calibration):
    logits, labels = tempered_logits(7, 2.0, n=1000)
    leaf = logits.clone().requires_grad_(True)
    got = python_float("fit_temperature", calibration.fit_temperature(leaf, labels))
    assert got > 0, f"fit_temperature: T must be positive, got {got}"
    assert torch.equal(leaf.detach(), logits), "fit_temperature: modified the logits in place"
    assert leaf.grad is None, (
        "fit_temperature: left a gradient on the caller's logits; optimise T on "
        "logits.detach() (only T needs a gradient)"
    )
    same = (logits / got).argmax(dim=1).eq(logits.argmax(dim=1)).all().item()
    assert same, "fit_temperature: dividing by your T changed predictions"
    again = calibration.fit_temperature(logits, labels)
    assert again == got, f"fit_temperature: two identical calls gave {got} and {again}"


@graded("fit_temperature")
def test_fit_temperature_stays_in_its_range(calibration):
    # every example right with a huge margin: the NLL keeps falling as T -> 0
    logits = torch.eye(4).repeat(5, 1) * 3
    labels = torch.arange(4).repeat(5)
    got = python_float("fit_temperature", calibration.fit_temperature(logits, labels))
    assert 0.01 <= got < 0.5, (
        f"fit_temperature: every example is right with a wide margin, so the NLL keeps falling as "
        f"T -> 0: T should come out small but never below the end 0.01 of the search range, got "
        f"{got}"
    )


@graded("fit_temperature")
@pytest.mark.parametrize(
    "end, wrong_labels", [(0.01, False), (100.0, True)], ids=["low_end", "high_end"]
)
def test_fit_temperature_returns_the_end_of_its_range(calibration, end, wrong_labels):
    # margin 0.05, labels right: the NLL falls all the way down to T = 0.01;
    # margin 3, labels wrong: it falls all the way up to T = 100
    logits = torch.eye(4).repeat(5, 1) * (3.0 if wrong_labels else 0.05)
    labels = (torch.arange(4).repeat(5) + int(wrong_labels)) % 4
    got = python_float("fit_temperature", calibration.fit_temperature(logits, labels))
    assert abs(got / end - 1) < 1e-3, (
        f"fit_temperature: the NLL keeps falling as T -> {end} (every example "
        f"{'wrong' if wrong_labels else 'right'}), so T should be the end {end} of the search "
        f"range [0.01, 100], got {got:.6g}; search the whole range and return the end itself"
    )


@graded("fit_temperature")
def test_fit_temperature_on_the_checkpoint(calibration, checkpoint_outputs):
    logits, labels = checkpoint_outputs["z_test"], checkpoint_outputs["y_test"]
    got = python_float("fit_temperature", calibration.fit_temperature(logits, labels))
    best = nll_at(logits, labels, np.logspace(-2, 2, 401)).min()
    assert nll_at(logits, labels, got) <= min(best, nll_at(logits, labels, 1.0)) + 1e-6, (
        f"fit_temperature: on the checkpoint's test logits T = {got:.4f} gives NLL "
        f"{nll_at(logits, labels, got):.5f}; a grid search reaches {best:.5f}"
    )


@graded("reliability_bins")
def test_reliability_bins_dtypes_and_a_confidence_of_zero(calibration):
    # a row of zeros has confidence exactly 0: it belongs to bin 0, not to bin -1 (the last)
    p = torch.tensor([[0.0, 0.0, 0.0], [0.9, 0.05, 0.05], [0.2, 0.5, 0.3]], dtype=torch.float32)
    y = torch.tensor([0, 0, 2])
    try:
        value = calibration.reliability_bins(p, y, n_bins=4)
    except (RuntimeError, IndexError) as err:
        pytest.fail(
            f"reliability_bins: a row of zeros (confidence exactly 0) raised {type(err).__name__} "
            f"({str(err)[:60]}); it belongs to bin 0, did its bin index come out as -1?",
            pytrace=False,
        )
    got = unpack_bins(value, 4)
    assert np.allclose(got[2], [1, 1, 0, 1]), (
        f"reliability_bins: confidences 0.0, 0.9 and 0.5 in 4 bins should give counts "
        f"[1, 1, 0, 1] (a confidence of exactly 0 goes in bin 0), got {got[2].tolist()}; "
        f"ceil(c * n_bins) - 1 gives bin -1 for c = 0"
    )
    for what, t, dtype in zip(
        ("confidence", "accuracy", "count"),
        value,
        (torch.float64, torch.float64, torch.int64),
        strict=True,
    ):
        assert t.dtype == dtype and t.device.type == "cpu", (
            f"reliability_bins: {what} should be a CPU {dtype} tensor, got {t.device.type} "
            f"{t.dtype} (float32 probs in; compute in float64 on the CPU)"
        )
