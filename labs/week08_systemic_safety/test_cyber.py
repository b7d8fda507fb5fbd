"""Specs for cyber.py: anomaly scores of network flows, fitted on normal
traffic only (higher = more anomalous, as in week 5).

Run them with `make test-week8` (add IMPL=solution to see the reference pass).
Every failure message starts with the graded function it is about.
"""

import numpy as np
import pytest

from mlsafety.grading import graded
from mlsafety.specs import array

GRADED = {"flow_anomaly_scores": "core"}
pytestmark = pytest.mark.timeout(20)


def reference_scores(normal, flows, ridge=1e-6, *, log=True, ddof=1, diagonal=False):
    """Squared Mahalanobis distance, written out: log1p, mean, covariance from sums."""
    z_normal = np.log1p(normal) if log else np.asarray(normal, dtype=float)
    z = np.log1p(flows) if log else np.asarray(flows, dtype=float)
    n, f = z_normal.shape
    mu = z_normal.sum(axis=0) / n
    centred = z_normal - mu
    cov = sum(np.outer(row, row) for row in centred) / (n - ddof) + ridge * np.eye(f)
    if diagonal:
        cov = np.diag(np.diag(cov))
    inverse = np.linalg.inv(cov)
    return np.array([(row - mu) @ inverse @ (row - mu) for row in z])


def scores_of(cyber, normal, flows, **kw):
    got = cyber.flow_anomaly_scores(normal, flows, **kw)
    return array("flow_anomaly_scores", got, (len(flows),))


def auroc(scores, labels):
    """Probability that an attack scores above a normal flow, ties one half."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


@pytest.fixture(scope="module")
def small():
    """8 normal flows and 5 flows to score, 3 features spanning orders of magnitude."""
    g = np.random.default_rng(0)
    size = np.exp(g.normal(8, 1.5, size=8))
    normal = np.stack(
        [size, size * np.exp(g.normal(-3, 0.3, 8)), np.round(g.uniform(1, 4, 8))], axis=1
    )
    flows = np.array(
        [
            [3000.0, 150.0, 2.0],  # typical
            [3000.0, 3000.0, 2.0],  # reply as large as the request: off the correlation
            [2e5, 1e4, 3.0],  # large, with the usual ratio
            [0.0, 0.0, 1.0],
            normal[0],
        ]
    )
    return np.round(normal), flows


@graded("flow_anomaly_scores")
def test_flow_anomaly_scores_closed_form(cyber, small):
    normal, flows = small
    got = scores_of(cyber, normal, flows)
    want = reference_scores(normal, flows)
    hints = {
        "did you log-transform? use numpy.log1p on both inputs": reference_scores(
            normal, flows, log=False
        ),
        "use the sample covariance normalised by N - 1 (numpy.cov's default)": reference_scores(
            normal, flows, ddof=0
        ),
        "use the full covariance, not only its diagonal (per-feature variances)": reference_scores(
            normal, flows, diagonal=True
        ),
        "return the squared distance, without the square root": np.sqrt(want),
        "fit the mean and covariance on the normal flows only": reference_scores(flows, flows),
    }
    hint = next((h for h, v in hints.items() if np.allclose(got, v, rtol=1e-6)), "")
    assert np.allclose(got, want, rtol=1e-6, atol=1e-9), (
        f"flow_anomaly_scores: 8 normal flows, 5 to score: expected squared Mahalanobis "
        f"distances of log1p features {np.round(want, 3).tolist()}, got "
        f"{np.round(got, 3).tolist()}" + (f"; {hint}" if hint else "")
    )


@graded("flow_anomaly_scores")
def test_flow_anomaly_scores_use_the_correlations(cyber, small):
    normal, flows = small
    got = scores_of(cyber, normal, flows)
    assert got[1] > got[0] and got[1] > 5 * got[2], (
        f"flow_anomaly_scores: in normal traffic the reply is about 5% of the request; a flow "
        f"with both at 3000 bytes (score {got[1]:.2f}) should be far more anomalous than a "
        f"typical one ({got[0]:.2f}) and than a large flow with the usual ratio ({got[2]:.2f}); "
        f"did you use the full covariance of the log features?"
    )


@graded("flow_anomaly_scores")
def test_flow_anomaly_scores_fit_on_normal_only(cyber, small, flow_data):
    normal, flows = small
    together = scores_of(cyber, normal, flows)
    alone = np.concatenate([scores_of(cyber, normal, flows[i : i + 1]) for i in range(len(flows))])
    assert np.allclose(together, alone, rtol=1e-9), (
        f"flow_anomaly_scores: scoring the flows one at a time gave {np.round(alone, 3).tolist()}, "
        f"all together {np.round(together, 3).tolist()}; fit on `normal` only, never on the "
        f"flows being scored"
    )
    train, test = flow_data
    full = scores_of(cyber, train.features, test.features)
    half = scores_of(cyber, train.features, test.features[::2])
    assert np.allclose(full[::2], half, rtol=1e-9), (
        "flow_anomaly_scores: a flow's score changed when other flows were scored with it"
    )


@graded("flow_anomaly_scores")
def test_flow_anomaly_scores_detect_planted_attacks(cyber, flow_data):
    train, test = flow_data
    scores = scores_of(cyber, train.features, test.features)
    overall = auroc(scores, test.labels)
    if overall < 0.5:
        pytest.fail(
            f"flow_anomaly_scores: AUROC {overall:.3f} < 0.5: attacks score lower than normal "
            f"flows; higher must mean more anomalous",
            pytrace=False,
        )
    per_kind = {}
    for kind in ("port_scan", "exfiltration", "dos"):
        keep = (test.labels == 0) | (test.kinds == kind)
        per_kind[kind] = auroc(scores[keep], test.labels[keep])
    assert overall > 0.98 and min(per_kind.values()) > 0.95, (
        f"flow_anomaly_scores: on 400 normal flows and 90 attacks from mlsafety.flows the "
        f"squared Mahalanobis distance of log features reaches AUROC 0.99; got {overall:.3f} "
        f"(" + ", ".join(f"{k} {v:.3f}" for k, v in per_kind.items()) + ")"
    )


@graded("flow_anomaly_scores")
def test_flow_anomaly_scores_types_inputs_and_errors(cyber, flow_data):
    train, test = flow_data
    normal, flows = train.features[:50].copy(), test.features[:20].copy()
    before = (normal.copy(), flows.copy())
    got = cyber.flow_anomaly_scores(normal, flows)
    assert isinstance(got, np.ndarray) and got.dtype == np.float64, (
        f"flow_anomaly_scores: return a float64 numpy array, got {type(got).__name__} "
        f"{getattr(got, 'dtype', '')}"
    )
    assert np.array_equal(normal, before[0]) and np.array_equal(flows, before[1]), (
        "flow_anomaly_scores: modified its inputs in place (numpy.log1p(x, out=x)?)"
    )
    assert (got >= 0).all() and np.isfinite(got).all(), (
        f"flow_anomaly_scores: squared distances are finite and >= 0, got min {got.min():.3g}"
    )
    # the last feature (distinct hosts) is constant here: the ridge keeps the covariance invertible
    constant = normal.copy()
    constant[:, -1] = 1.0
    finite = scores_of(cyber, constant, flows)
    assert np.isfinite(finite).all(), (
        "flow_anomaly_scores: a feature constant in normal traffic gave non-finite scores; add "
        "ridge * I to the covariance"
    )
    ridge = scores_of(cyber, normal, flows, ridge=0.5)
    assert np.allclose(ridge, reference_scores(normal, flows, ridge=0.5), rtol=1e-6), (
        "flow_anomaly_scores: ridge=0.5 should be added to the covariance's diagonal"
    )
    empty = cyber.flow_anomaly_scores(normal, flows[:0])
    assert np.shape(empty) == (0,), (
        f"flow_anomaly_scores: no flows give shape (0,), got {np.shape(empty)}"
    )
    for a, b, why in [
        (normal, flows[:, :4], "6 features to fit and 4 to score"),
        (normal[:1], flows, "a single normal flow"),
        (normal, -flows, "negative features"),
    ]:
        with pytest.raises(ValueError):
            cyber.flow_anomaly_scores(a, b)
            pytest.fail(f"flow_anomaly_scores: {why} must raise ValueError", pytrace=False)


@graded("flow_anomaly_scores")
def test_flow_anomaly_scores_rejects_what_only_its_checks_catch(cyber, small):
    normal, flows = small
    want = reference_scores(normal, flows, ridge=0.0)
    try:
        got = scores_of(cyber, normal, flows, ridge=0.0)
    except ValueError as err:
        pytest.fail(
            f"flow_anomaly_scores: ridge=0 is allowed (ridge >= 0), but it raised ValueError "
            f"({str(err)[:60]})",
            pytrace=False,
        )
    assert np.allclose(got, want, rtol=1e-6), (
        "flow_anomaly_scores: ridge=0 is allowed (ridge >= 0) and adds nothing to the covariance"
    )
    for a, b, kw, why in [
        (normal, flows[:, :1], {}, "3 features to fit and 1 to score (it would broadcast)"),
        (normal, flows, {"ridge": -1e-3}, "ridge=-0.001"),
    ]:
        with pytest.raises(ValueError):
            cyber.flow_anomaly_scores(a, b, **kw)
            pytest.fail(f"flow_anomaly_scores: {why} must raise ValueError", pytrace=False)
