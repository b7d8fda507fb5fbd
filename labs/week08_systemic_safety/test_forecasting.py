"""Specs for forecasting.py: the Brier and log scores, calibration tables and
aggregation of several forecasters.

Run them with `make test-week8` (add IMPL=solution to see the reference pass).
Every failure message starts with the graded function it is about.
"""

import math

import numpy as np
import pytest
import torch

from mlsafety.grading import graded
from mlsafety.specs import array, python_float

GRADED = {
    "brier_score": "core",
    "log_score": "core",
    "calibration_table": "core",
    "aggregate_forecasts": "core",
}
pytestmark = pytest.mark.timeout(20)

GRID = np.round(np.linspace(0.01, 0.99, 99), 2)  # reports p tried by the propriety specs
TRUE_PROBABILITIES = (0.1, 0.3, 0.5, 0.7, 0.85)


def score(function, value) -> float:
    return python_float(function, value, "use float(...)")


def hint_for(got, hints):
    return next((h for v, h in hints.items() if math.isclose(got, v, rel_tol=1e-6)), "")


def expected_scores(function, q):
    """Expected score of each report p of GRID when the event has probability q,
    from the student's scoring function on single forecasts."""
    return np.array(
        [
            q * score(function.__name__, function([p], [1]))
            + (1 - q) * score(function.__name__, function([p], [0]))
            for p in GRID
        ]
    )


def raises(function_name, call, why):
    with pytest.raises(ValueError):
        call()
        pytest.fail(f"{function_name}: {why} must raise ValueError", pytrace=False)


# --------------------------------------------------------------------------- #
# brier_score
# --------------------------------------------------------------------------- #


@graded("brier_score")
def test_brier_score_closed_form(forecasting):
    p, o = [0.9, 0.2, 0.5, 1.0], [1, 0, 1, 0]  # squared errors 0.01, 0.04, 0.25, 1
    got = score("brier_score", forecasting.brier_score(p, o))
    hint = hint_for(
        got,
        {
            1.3: "that is the sum; take the mean over forecasts",
            0.45: "that is the mean absolute error; square the errors",
            math.sqrt(0.325): "that is the root of the mean; the Brier score has no square root",
            0.425: "did you compare 1 - p with the outcome? p is the probability of outcome 1",
        },
    )
    assert math.isclose(got, 0.325, rel_tol=1e-9), (
        f"brier_score: forecasts {p} with outcomes {o} score mean (p - o)^2 = "
        f"(0.01 + 0.04 + 0.25 + 1) / 4 = 0.325, got {got:.4f}" + (f"; {hint}" if hint else "")
    )
    assert forecasting.brier_score([0.5] * 3, [0, 1, 1]) == 0.25, (
        "brier_score: always saying 0.5 must score 0.25"
    )


@graded("brier_score")
@pytest.mark.parametrize("q", TRUE_PROBABILITIES)
def test_brier_score_is_proper(forecasting, q):
    expected = expected_scores(forecasting.brier_score, q)
    best = GRID[int(np.argmin(expected))]
    assert math.isclose(best, q), (
        f"brier_score: for an event of probability {q}, the expected Brier score over reports "
        f"p in [0.01, 0.99] should be lowest at p = {q} (a proper scoring rule), but it is "
        f"lowest at p = {best}; did you square (p - o)? the absolute error rewards reporting 0 or 1"
    )
    want = (GRID - q) ** 2 + q * (1 - q)  # closed form of the expected Brier score
    assert np.allclose(expected, want, atol=1e-9), (
        f"brier_score: expected scores for q = {q} differ from (p - q)^2 + q (1 - q) by up to "
        f"{np.abs(expected - want).max():.3g}"
    )


@graded("brier_score")
def test_brier_score_matches_a_reference_on_any_shape(forecasting, rng):
    g = rng(0)
    p = g.random((6, 7))
    o = (g.random((6, 7)) < p).astype(int)
    before = p.copy()
    want = sum((pi - oi) ** 2 for pi, oi in zip(p.ravel(), o.ravel(), strict=True)) / p.size
    got = score("brier_score", forecasting.brier_score(p, o))
    assert math.isclose(got, want, rel_tol=1e-9), (
        f"brier_score: 6 x 7 forecasts should score {want:.6f} (the mean over all 42), got {got:.6f}"
    )
    assert np.array_equal(p, before), "brier_score: modified the forecasts in place"
    as_tensors = forecasting.brier_score(torch.tensor(p), torch.tensor(o).bool())
    assert math.isclose(as_tensors, want, rel_tol=1e-6), (
        f"brier_score: torch tensors (bool outcomes) should score {want:.6f}, got {as_tensors}"
    )


@graded("brier_score")
def test_brier_score_rejects_bad_input(forecasting):
    raises(
        "brier_score",
        lambda: forecasting.brier_score(np.full((4, 1), 0.5), np.ones(4)),
        "shapes (4, 1) and (4,) (no broadcasting to 4 x 4)",
    )
    raises("brier_score", lambda: forecasting.brier_score([1.2], [1]), "a forecast of 1.2")
    raises("brier_score", lambda: forecasting.brier_score([0.5], [2]), "an outcome of 2")
    raises("brier_score", lambda: forecasting.brier_score([], []), "no forecasts")


# --------------------------------------------------------------------------- #
# log_score
# --------------------------------------------------------------------------- #


@graded("log_score")
def test_log_score_closed_form(forecasting):
    p, o = [0.9, 0.2, 0.5], [1, 0, 0]  # probabilities given to what happened: 0.9, 0.8, 0.5
    want = (math.log(0.9) + math.log(0.8) + math.log(0.5)) / 3
    got = score("log_score", forecasting.log_score(p, o))
    hint = hint_for(
        got,
        {
            -want: "wrong sign: the log score is the mean log-likelihood (<= 0), higher is better",
            want / math.log(2): "that is log base 2; use the natural log (numpy.log)",
            want / math.log(10): "that is log base 10; use the natural log (numpy.log)",
            3 * want: "that is the sum; take the mean over forecasts",
            (math.log(0.9) + math.log(0.2) + math.log(0.5))
            / 3: "you took ln(p) whatever the outcome; an outcome 0 scores ln(1 - p)",
        },
    )
    assert math.isclose(got, want, rel_tol=1e-9), (
        f"log_score: forecasts {p} with outcomes {o} score mean ln(probability of what "
        f"happened) = (ln 0.9 + ln 0.8 + ln 0.5) / 3 = {want:.4f}, got {got:.4f}"
        + (f"; {hint}" if hint else "")
    )
    half = score("log_score", forecasting.log_score([0.5, 0.5], [1, 0]))
    assert math.isclose(half, math.log(0.5), rel_tol=1e-9), (
        f"log_score: always saying 0.5 must score ln(0.5) = -0.6931, got {half:.4f}"
    )


@graded("log_score")
@pytest.mark.parametrize("q", TRUE_PROBABILITIES)
def test_log_score_is_proper(forecasting, q):
    expected = expected_scores(forecasting.log_score, q)
    best = GRID[int(np.argmax(expected))]
    assert math.isclose(best, q), (
        f"log_score: for an event of probability {q}, the expected log score over reports "
        f"p in [0.01, 0.99] should be highest at p = {q} (a proper scoring rule; higher is "
        f"better), but it is highest at p = {best}"
        + ("; is the sign flipped?" if best in (GRID[0], GRID[-1]) else "")
    )
    want = q * np.log(GRID) + (1 - q) * np.log(1 - GRID)
    assert np.allclose(expected, want, atol=1e-9), (
        f"log_score: expected scores for q = {q} differ from q ln p + (1 - q) ln(1 - p) by up to "
        f"{np.abs(expected - want).max():.3g}"
    )


@graded("log_score")
def test_log_score_clips_certain_forecasts(forecasting):
    wrong = score("log_score", forecasting.log_score([0.0], [1]))
    assert math.isclose(wrong, math.log(1e-12), rel_tol=1e-6), (
        f"log_score: a forecast of 0 for an event that happened is clipped to eps = 1e-12 and "
        f"scores ln(1e-12) = {math.log(1e-12):.3f}, got {wrong}; did you clip p to [eps, 1 - eps]?"
    )
    custom = score("log_score", forecasting.log_score([1.0, 0.5], [0, 1], eps=1e-3))
    want = (math.log(1e-3) + math.log(0.5)) / 2
    assert math.isclose(custom, want, rel_tol=1e-6), (
        f"log_score: with eps=1e-3 a forecast of 1 for an event that did not happen scores "
        f"ln(1e-3); the mean with ln(0.5) is {want:.4f}, got {custom}"
    )
    right = score("log_score", forecasting.log_score([0.0, 1.0], [0, 1]))
    assert math.isfinite(right) and -1e-9 < right <= 0, (
        f"log_score: certain and correct forecasts (0 for outcome 0, 1 for outcome 1) score "
        f"about 0, got {right}; 0 * ln(0) is NaN in numpy: clip before taking logs"
    )


@graded("log_score")
def test_log_score_matches_a_reference_and_leaves_inputs(forecasting, rng):
    g = rng(1)
    p = g.uniform(0.02, 0.98, size=(5, 8))
    o = g.random((5, 8)) < p
    before = p.copy()
    terms = [
        math.log(pi) if oi else math.log(1 - pi)
        for pi, oi in zip(p.ravel(), o.ravel(), strict=True)
    ]
    want = sum(terms) / len(terms)
    got = score("log_score", forecasting.log_score(p, o))
    assert math.isclose(got, want, rel_tol=1e-9), (
        f"log_score: 5 x 8 random forecasts (bool outcomes) score {want:.6f}, got {got:.6f}"
    )
    assert np.array_equal(p, before), "log_score: modified the forecasts in place"
    raises(
        "log_score",
        lambda: forecasting.log_score(np.full((3, 1), 0.5), np.ones(3)),
        "shapes (3, 1) and (3,)",
    )
    raises("log_score", lambda: forecasting.log_score([-0.1], [0]), "a forecast of -0.1")
    raises("log_score", lambda: forecasting.log_score([0.5], [0.5]), "an outcome of 0.5")


# --------------------------------------------------------------------------- #
# calibration_table
# --------------------------------------------------------------------------- #


def reference_table(p, o, bins):
    """A loop over the bins, (b / bins, (b + 1) / bins], 0 in bin 0; NaN for empty bins."""
    edges = np.linspace(0, 1, bins + 1)
    p, o = np.ravel(p), np.ravel(o)
    mean, freq, count = np.full(bins, np.nan), np.full(bins, np.nan), np.zeros(bins, int)
    for b in range(bins):
        inside = (p > edges[b]) & (p <= edges[b + 1])
        if b == 0:
            inside |= p == 0
        count[b] = inside.sum()
        if count[b]:
            mean[b], freq[b] = p[inside].mean(), o[inside].mean()
    return mean, freq, count


def table(forecasting, p, o, bins):
    out = forecasting.calibration_table(p, o, bins=bins)
    if not (isinstance(out, tuple) and len(out) == 3):
        pytest.fail(
            f"calibration_table: expected a tuple (mean_forecast, frequency, count), got "
            f"{type(out).__name__}",
            pytrace=False,
        )
    return tuple(array("calibration_table", part, (bins,)) for part in out)


@graded("calibration_table")
def test_calibration_table_hand_made_bins(forecasting):
    p = [0.0, 0.1, 0.25, 0.3, 0.5, 0.55, 1.0, 0.9]
    o = [0, 0, 1, 0, 1, 1, 1, 0]
    mean, freq, count = table(forecasting, p, o, 4)
    hint = ""
    if list(count) == [2, 2, 2, 2]:
        hint = "; bins are closed on the right: 0.25 belongs to (0, 0.25], bin 0"
    elif count.sum() == 7:
        hint = "; a forecast of exactly 1.0 belongs to the last bin"
    assert list(count) == [3, 2, 1, 2], (
        f"calibration_table: forecasts {p} in 4 bins (0, .25], (.25, .5], (.5, .75], (.75, 1] "
        f"(0 in the first) have counts [3, 2, 1, 2], got {list(count)}{hint}"
    )
    assert np.allclose(mean, [0.35 / 3, 0.4, 0.55, 0.95]), (
        f"calibration_table: mean forecast per bin should be [0.1167, 0.4, 0.55, 0.95], "
        f"got {np.round(mean, 4).tolist()}"
    )
    assert np.allclose(freq, [1 / 3, 0.5, 1.0, 0.5]), (
        f"calibration_table: observed frequency of outcome 1 per bin should be "
        f"[0.3333, 0.5, 1.0, 0.5], got {np.round(freq, 4).tolist()}"
        + ("; that is the mean forecast" if np.allclose(freq, mean) else "")
    )


@graded("calibration_table")
def test_calibration_table_empty_bins_are_nan(forecasting):
    mean, freq, count = table(forecasting, [0.05, 0.95, 0.9], [0, 1, 1], 5)
    assert list(count) == [1, 0, 0, 0, 2], (
        f"calibration_table: forecasts 0.05, 0.95, 0.9 in 5 bins have counts [1, 0, 0, 0, 2], "
        f"got {list(count)}"
    )
    assert np.isnan(mean[1:4]).all() and np.isnan(freq[1:4]).all(), (
        f"calibration_table: empty bins must hold NaN for the mean forecast and frequency "
        f"(nothing was observed there), got {mean[1:4].tolist()} and {freq[1:4].tolist()}"
    )
    assert np.allclose(mean[[0, 4]], [0.05, 0.925]) and np.allclose(freq[[0, 4]], [0, 1]), (
        f"calibration_table: non-empty bins should be mean [0.05, 0.925], frequency [0, 1], got "
        f"{mean[[0, 4]].tolist()} and {freq[[0, 4]].tolist()}"
    )


@graded("calibration_table")
@pytest.mark.parametrize("bins", [1, 3, 7, 10])
def test_calibration_table_matches_a_reference(forecasting, rng, bins):
    g = rng(bins)
    edges = np.linspace(0, 1, bins + 1)
    p = np.concatenate([g.random(60), edges, g.choice(edges, 10)])  # with values on the edges
    o = (g.random(len(p)) < p).astype(float)
    before = p.copy()
    mean, freq, count = table(forecasting, p, o, bins)
    want_mean, want_freq, want_count = reference_table(p, o, bins)
    assert np.array_equal(count, want_count), (
        f"calibration_table: {len(p)} forecasts (some on the bin edges) in {bins} bins: counts "
        f"should be {want_count.tolist()}, got {count.astype(int).tolist()}; bin b is "
        f"(b/{bins}, (b+1)/{bins}], with 0 in bin 0"
    )
    assert np.allclose(mean, want_mean, equal_nan=True) and np.allclose(
        freq, want_freq, equal_nan=True
    ), f"calibration_table: per-bin means differ from a reference loop with {bins} bins"
    assert np.array_equal(p, before), "calibration_table: modified the forecasts in place"


@graded("calibration_table")
def test_calibration_table_types_and_errors(forecasting):
    p = torch.tensor([[0.2, 0.7], [0.7, 1.0]])
    out = forecasting.calibration_table(p, torch.tensor([[0, 1], [1, 1]]), bins=2)
    mean, freq, count = out
    for name, part in [("mean_forecast", mean), ("frequency", freq)]:
        assert isinstance(part, np.ndarray) and part.dtype == np.float64, (
            f"calibration_table: {name} should be a float64 numpy array, got "
            f"{type(part).__name__} {getattr(part, 'dtype', '')}"
        )
    assert isinstance(count, np.ndarray) and count.dtype.kind == "i", (
        f"calibration_table: count should be an integer numpy array, got "
        f"{type(count).__name__} {getattr(count, 'dtype', '')}"
    )
    assert count.tolist() == [1, 3], (
        f"calibration_table: a 2 x 2 input is flattened: counts [1, 3], got {count.tolist()}"
    )
    default = forecasting.calibration_table([0.5], [1])
    assert len(default[2]) == 10, "calibration_table: the default is bins=10"
    raises("calibration_table", lambda: forecasting.calibration_table([0.5], [1], bins=0), "bins=0")
    raises(
        "calibration_table",
        lambda: forecasting.calibration_table([0.5, 0.6], [1], bins=3),
        "2 forecasts and 1 outcome",
    )


# --------------------------------------------------------------------------- #
# aggregate_forecasts
# --------------------------------------------------------------------------- #

HAND = np.array([[0.5, 0.1], [0.8, 0.2], [0.9, 0.5]])  # 3 forecasters x 2 questions


def reference_aggregate(p, method, extremize=1.0, eps=1e-6):
    """Question by question, with plain math."""
    p = np.asarray(p, dtype=float)
    out = []
    for column in p.T:
        values = sorted(float(v) for v in column)
        if method == "mean":
            a = sum(values) / len(values)
        elif method == "median":
            mid = len(values) // 2
            a = values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
        else:
            clipped = [min(max(v, eps), 1 - eps) for v in values]
            log_odds = sum(math.log(v / (1 - v)) for v in clipped) / len(clipped)
            a = 1 / (1 + math.exp(-log_odds))
        if extremize != 1:
            a = min(max(a, eps), 1 - eps)
            a = 1 / (1 + math.exp(-extremize * math.log(a / (1 - a))))
        out.append(a)
    return np.array(out)


def aggregate(forecasting, p, method, **kw):
    out = forecasting.aggregate_forecasts(p, method, **kw)
    n_forecasters, n_questions = np.shape(p)
    if np.shape(out) == (n_forecasters,) and n_forecasters != n_questions:
        pytest.fail(
            f"aggregate_forecasts: {n_forecasters} forecasters x {n_questions} questions gave "
            f"{n_forecasters} values; aggregate over the forecasters (axis 0, the rows), one "
            f"value per question",
            pytrace=False,
        )
    return array("aggregate_forecasts", out, (n_questions,))


@graded("aggregate_forecasts")
def test_aggregate_forecasts_closed_forms(forecasting):
    # question 0: odds 1, 4, 9 -> geometric mean 36^(1/3); question 1: odds 1/9, 1/4, 1
    geo = np.array([36 ** (1 / 3), 36 ** (-1 / 3)])
    cases = {
        "mean": np.array([2.2 / 3, 0.8 / 3]),
        "median": np.array([0.8, 0.2]),
        "geo_mean_odds": geo / (1 + geo),
    }
    geo_of_probabilities = np.prod(HAND, axis=0) ** (1 / 3)
    for method, want in cases.items():
        got = aggregate(forecasting, HAND, method)
        hint = ""
        if method == "geo_mean_odds" and np.allclose(got, geo_of_probabilities, atol=1e-6):
            hint = "; that is the geometric mean of the probabilities: average the odds p/(1-p)"
        assert np.allclose(got, want, atol=1e-6), (
            f"aggregate_forecasts: method={method!r} for forecasters [0.5, 0.8, 0.9] and "
            f"[0.1, 0.2, 0.5] should give {np.round(want, 4).tolist()}, got "
            f"{np.round(got, 4).tolist()}{hint}"
        )


@graded("aggregate_forecasts")
def test_aggregate_forecasts_extremizes_the_odds(forecasting):
    base = reference_aggregate(HAND, "geo_mean_odds")
    odds = (base / (1 - base)) ** 2
    want = odds / (1 + odds)
    got = aggregate(forecasting, HAND, "geo_mean_odds", extremize=2.0)
    hint = ""
    if np.allclose(got, base**2, atol=1e-6):
        hint = "; that is p ** 2: the exponent applies to the odds p / (1 - p)"
    elif np.allclose(got, base, atol=1e-6):
        hint = "; extremize=2 changed nothing"
    assert np.allclose(got, want, atol=1e-6), (
        f"aggregate_forecasts: extremize=2 squares the odds of the aggregate: "
        f"{np.round(base, 4).tolist()} -> {np.round(want, 4).tolist()}, got "
        f"{np.round(got, 4).tolist()}{hint}"
    )
    mean2 = aggregate(forecasting, HAND, "mean", extremize=2.0)
    want_mean2 = reference_aggregate(HAND, "mean", extremize=2.0)
    assert np.allclose(mean2, want_mean2, atol=1e-6), (
        f"aggregate_forecasts: extremizing applies to every method: method='mean', extremize=2 "
        f"should give {np.round(want_mean2, 4).tolist()}, got {np.round(mean2, 4).tolist()}"
    )
    half = aggregate(
        forecasting, np.array([[0.4, 0.3], [0.6, 0.3]]), "geo_mean_odds", extremize=3.0
    )
    assert math.isclose(half[0], 0.5, abs_tol=1e-9) and half[1] < 0.3 - 0.1, (
        f"aggregate_forecasts: extremizing keeps 0.5 at 0.5 and pushes 0.3 towards 0 "
        f"(with exponent 3: 0.0737), got {np.round(half, 4).tolist()}"
    )
    soft = aggregate(forecasting, HAND, "geo_mean_odds", extremize=0.5)
    assert np.all(np.abs(soft - 0.5) < np.abs(base - 0.5)), (
        "aggregate_forecasts: extremize=0.5 should pull the aggregate towards 0.5"
    )


@graded("aggregate_forecasts")
@pytest.mark.parametrize("method", ["mean", "median", "geo_mean_odds"])
def test_aggregate_forecasts_matches_a_reference(forecasting, rng, method):
    g = rng(2)
    for n_forecasters, n_questions in [(7, 4), (4, 9), (1, 3)]:
        p = g.uniform(0.01, 0.99, size=(n_forecasters, n_questions))
        before = p.copy()
        for extremize in (1.0, 1.7):
            want = reference_aggregate(p, method, extremize)
            got = aggregate(forecasting, p, method, extremize=extremize)
            assert np.allclose(got, want, atol=1e-9), (
                f"aggregate_forecasts: {n_forecasters} forecasters x {n_questions} questions, "
                f"method={method!r}, extremize={extremize}: max difference from a reference "
                f"{np.abs(got - want).max():.3g}"
            )
        assert np.array_equal(p, before), "aggregate_forecasts: modified the forecasts in place"
    flipped = aggregate(forecasting, 1 - p, method, extremize=1.7)
    assert np.allclose(flipped, 1 - aggregate(forecasting, p, method, extremize=1.7), atol=1e-9), (
        f"aggregate_forecasts: method={method!r} should be symmetric: aggregating 1 - p must "
        f"give 1 - the aggregate of p"
    )


@graded("aggregate_forecasts")
def test_aggregate_forecasts_certain_forecasts_and_types(forecasting):
    p = np.array([[0.0, 1.0, 0.3], [1.0, 1.0, 0.3]])
    got = forecasting.aggregate_forecasts(p, "geo_mean_odds")
    assert isinstance(got, np.ndarray) and got.dtype == np.float64, (
        f"aggregate_forecasts: return a float64 numpy array, got {type(got).__name__} "
        f"{getattr(got, 'dtype', '')}"
    )
    assert np.all(np.isfinite(got)), (
        f"aggregate_forecasts: forecasts of exactly 0 and 1 gave {got.tolist()}; clip to "
        f"[eps, 1 - eps] before taking logits"
    )
    assert np.allclose(got, [0.5, 1 - 1e-6, 0.3], atol=1e-9), (
        f"aggregate_forecasts: [0, 1] -> 0.5 (logits +-13.8 cancel), [1, 1] -> 1 - 1e-6, "
        f"[0.3, 0.3] -> 0.3; got {got.tolist()}"
    )
    default = forecasting.aggregate_forecasts(torch.tensor(HAND))
    assert np.allclose(default, reference_aggregate(HAND, "geo_mean_odds"), atol=1e-6), (
        "aggregate_forecasts: the default method is 'geo_mean_odds' (and torch tensors work)"
    )
    raises(
        "aggregate_forecasts",
        lambda: forecasting.aggregate_forecasts(HAND, "mode"),
        "method='mode'",
    )
    raises(
        "aggregate_forecasts",
        lambda: forecasting.aggregate_forecasts(np.array([0.2, 0.4]), "mean"),
        "a 1-D input",
    )
    raises(
        "aggregate_forecasts",
        lambda: forecasting.aggregate_forecasts(HAND, "mean", extremize=0.0),
        "extremize=0",
    )
    raises(
        "aggregate_forecasts",
        lambda: forecasting.aggregate_forecasts(HAND * 2, "mean"),
        "forecasts above 1",
    )


# --------------------------------------------------------------------------- #
# Bad inputs that only the documented checks catch, and documented ends of ranges.
# --------------------------------------------------------------------------- #


@graded("log_score")
def test_log_score_rejects_bad_input_and_eps(forecasting):
    raises("log_score", lambda: forecasting.log_score([], []), "no forecasts")
    for eps in (0.0, 0.5, -1e-3):
        raises(
            "log_score",
            lambda eps=eps: forecasting.log_score([0.3, 0.9], [1, 0], eps=eps),
            f"eps={eps} (outside 0 < eps < 0.5)",
        )
    near = score("log_score", forecasting.log_score([0.3], [1], eps=0.49))
    assert math.isclose(near, math.log(0.49), rel_tol=1e-9), (
        f"log_score: eps=0.49 is allowed and clips 0.3 up to 0.49, so the score is ln(0.49) = "
        f"{math.log(0.49):.4f}, got {near}"
    )


@graded("calibration_table")
def test_calibration_table_rejects_what_the_scores_reject(forecasting):
    for call, why in [
        (lambda: forecasting.calibration_table([0.5, 0.6, 0.1], [1, 0, 1], bins=2.5), "bins=2.5"),
        (lambda: forecasting.calibration_table([0.5], [1], bins=-1), "bins=-1"),
        (
            lambda: forecasting.calibration_table(np.full((2, 2), 0.5), np.ones(4)),
            "forecasts (2, 2) and outcomes (4,) (flattening would hide the mismatch)",
        ),
        (lambda: forecasting.calibration_table([], []), "no forecasts"),
        (lambda: forecasting.calibration_table([0.5, 1.2], [1, 0]), "a forecast of 1.2"),
        (lambda: forecasting.calibration_table([0.5, 0.2], [1, 2]), "an outcome of 2"),
    ]:
        raises("calibration_table", call, why)
    one = forecasting.calibration_table([0.0, 0.3, 1.0], [0, 1, 1], bins=1)
    assert np.asarray(one[2]).tolist() == [3], (
        f"calibration_table: bins=1 (the smallest allowed) puts every forecast, 0 and 1 "
        f"included, in one bin: counts [3], got {np.asarray(one[2]).tolist()}"
    )


@graded("aggregate_forecasts")
def test_aggregate_forecasts_rejects_empty_input_and_bad_eps(forecasting):
    for p, why in [
        (np.zeros((0, 3)), "no forecasters, shape (0, 3)"),
        (np.zeros((2, 0)), "no questions, shape (2, 0)"),
    ]:
        raises("aggregate_forecasts", lambda p=p: forecasting.aggregate_forecasts(p, "mean"), why)
    for eps in (0.0, 0.5):
        raises(
            "aggregate_forecasts",
            lambda eps=eps: forecasting.aggregate_forecasts(HAND, eps=eps),
            f"eps={eps} (outside 0 < eps < 0.5)",
        )


@graded("aggregate_forecasts")
def test_aggregate_forecasts_clips_only_where_a_logit_is_taken(forecasting):
    certain = np.array([[0.0, 1.0, 0.2], [0.0, 1.0, 0.4]])
    for method in ("mean", "median"):
        got = aggregate(forecasting, certain, method)
        assert got[:2].tolist() == [0.0, 1.0], (
            f"aggregate_forecasts: method={method!r} with extremize=1 returns the {method} "
            f"unclipped, so unanimous forecasts of 0 and 1 stay exactly 0 and 1; got "
            f"{got[:2].tolist()} (clip only where a logit is taken)"
        )
        pushed = aggregate(forecasting, certain, method, extremize=2.0)
        want = reference_aggregate(certain, method, extremize=2.0)
        assert np.all(np.isfinite(pushed)) and np.allclose(pushed, want, rtol=1e-6, atol=1e-15), (
            f"aggregate_forecasts: method={method!r}, extremize=2 clips the aggregate to "
            f"[eps, 1 - eps] before its logit: expected {want.tolist()}, got {pushed.tolist()}"
        )
    tight = aggregate(forecasting, certain, "geo_mean_odds", eps=0.01)
    assert np.allclose(tight[:2], [0.01, 0.99], atol=1e-12), (
        f"aggregate_forecasts: with eps=0.01 forecasts of 0 and 1 are clipped to 0.01 and 0.99 "
        f"before the logit, got {tight[:2].tolist()}"
    )
