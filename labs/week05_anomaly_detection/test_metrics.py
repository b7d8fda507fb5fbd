"""Specs for metrics.py: AUROC, AUPR and the FPR at 95% TPR, with OOD as the
positive class (label 1) and higher scores meaning more anomalous.

Run them with `make test-week5` (add IMPL=solution to see the reference pass).
Every failure message starts with the graded function it is about.
"""

import numpy as np
import pytest
import torch

from mlsafety.grading import graded
from mlsafety.specs import number, python_float

GRADED = {"auroc": "core", "aupr": "core", "fpr_at_tpr": "core"}
pytestmark = pytest.mark.timeout(20)

METRICS = ["auroc", "aupr", "fpr_at_tpr"]
METRIC_PARAMS = [pytest.param(name, marks=graded(name), id=name) for name in METRICS]


# --------------------------------------------------------------------------- #
# Independent references: brute force, written plainly.
# --------------------------------------------------------------------------- #


def ref_auroc(s, y):
    """Mann-Whitney over all (OOD, in) pairs, ties counted as one half."""
    pos, neg = s[y == 1], s[y == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


def ref_aupr(s, y):
    """Average precision: a step sum over the distinct thresholds, highest first."""
    total, previous_recall = 0.0, 0.0
    for t in sorted(set(s.tolist()), reverse=True):
        flagged = s >= t
        tp = (flagged & (y == 1)).sum()
        recall = tp / (y == 1).sum()
        total += (recall - previous_recall) * tp / flagged.sum()
        previous_recall = recall
    return total


def ref_fpr_at_tpr(s, y, level=0.95):
    """Sweep every threshold; the smallest FPR among those reaching the TPR."""
    pos, neg = s[y == 1], s[y == 0]
    return min((neg >= t).mean() for t in np.unique(s) if (pos >= t).mean() >= level)


REFERENCES = {"auroc": ref_auroc, "aupr": ref_aupr, "fpr_at_tpr": ref_fpr_at_tpr}


def call(metrics, name, s, y, **kw):
    return python_float(name, getattr(metrics, name)(s, y, **kw), "use float(...) or .item()")


def random_case(seed, n=60, ties=True, prevalence=0.4):
    """Scores (float32 tensor) and labels (int64 tensor); integer scores give many ties."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prevalence).astype(np.int64)
    y[:2] = [0, 1]  # both classes present
    s = rng.integers(0, 6, n) + 1.5 * y if ties else rng.normal(size=n) + y
    return torch.tensor(s, dtype=torch.float32), torch.tensor(y)


# --------------------------------------------------------------------------- #
# Shared conventions.
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("name", METRIC_PARAMS)
def test_metric_matches_a_brute_force_reference(metrics, name):
    for seed in range(8):
        for ties in (True, False):
            s, y = random_case(seed, n=20 + 11 * seed, ties=ties)
            got = call(metrics, name, s, y)
            want = REFERENCES[name](s.double().numpy(), y.numpy())
            assert abs(got - want) < 1e-9, (
                f"{name}: expected {want:.6f}, got {got:.6f} on {len(s)} scores "
                f"({'many tied' if ties else 'no ties'}, seed {seed}); compare with the brute-force "
                f"reference in test_metrics.py"
            )


@pytest.mark.parametrize("name", METRIC_PARAMS)
def test_metric_accepts_label_types_and_leaves_inputs(metrics, name):
    s, y = random_case(11, n=40)
    want = REFERENCES[name](s.double().numpy(), y.numpy())
    before = s.clone(), y.clone()
    for labels, kind in ((y, "int64"), (y.bool(), "bool"), (y.float(), "float")):
        got = call(metrics, name, s, labels)
        assert abs(got - want) < 1e-9, (
            f"{name}: with {kind} labels expected {want:.6f}, got {got:.6f}"
        )
    assert torch.equal(s, before[0]) and torch.equal(y, before[1]), (
        f"{name}: modified scores or labels in place (sorting in place?); work on copies"
    )
    for kind, (s_other, y_other) in {
        "numpy arrays": (s.numpy(), y.numpy()),
        "Python lists": (s.tolist(), y.tolist()),
    }.items():
        got = call(metrics, name, s_other, y_other)
        assert abs(got - want) < 1e-9, (
            f"{name}: with {kind} expected {want:.6f}, got {got:.6f}; convert the inputs with "
            f"torch.as_tensor first"
        )
    order = torch.randperm(len(s), generator=torch.Generator().manual_seed(0))
    shuffled = call(metrics, name, s[order], y[order])
    assert abs(shuffled - want) < 1e-9, (
        f"{name}: shuffling the examples changed the result from {want:.6f} to {shuffled:.6f}"
    )
    squashed = call(metrics, name, torch.sigmoid(s.double()), y)
    assert abs(squashed - want) < 1e-9, (
        f"{name}: a strictly increasing transform of the scores (sigmoid) changed the result "
        f"from {want:.6f} to {squashed:.6f}; only the order of the scores may matter"
    )
    from mlsafety.hardware import pick_device

    device = pick_device()
    on_device = call(metrics, name, s.to(device), y.to(device))
    assert abs(on_device - want) < 1e-9, f"{name}: wrong result for tensors on {device}"


@pytest.mark.parametrize("name", METRIC_PARAMS)
def test_metric_needs_both_classes(metrics, name):
    s = torch.arange(5.0)
    for labels in (torch.zeros(5, dtype=torch.int64), torch.ones(5, dtype=torch.int64)):
        with pytest.raises(ValueError):
            getattr(metrics, name)(s, labels)
            pytest.fail(
                f"{name}: labels {labels.tolist()} hold a single class; raise ValueError",
                pytrace=False,
            )


@pytest.mark.parametrize("name", METRIC_PARAMS)
def test_metric_perfect_and_reversed_detectors(metrics, name):
    s = torch.tensor([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    y = torch.tensor([0, 0, 0, 1, 1, 1])  # OOD (1) scores highest: a perfect detector
    perfect, reversed_ = call(metrics, name, s, y), call(metrics, name, s, 1 - y)
    want = {"auroc": (1.0, 0.0), "aupr": (1.0, ref_aupr(s.numpy(), 1 - y.numpy()))}.get(
        name, (0.0, 1.0)
    )
    assert abs(perfect - want[0]) < 1e-9, (
        f"{name}: OOD inputs (label 1) all score above in-distribution ones, so expected "
        f"{want[0]}, got {perfect}; OOD is the POSITIVE class and higher scores mean more anomalous"
    )
    assert abs(reversed_ - want[1]) < 1e-9, (
        f"{name}: OOD inputs all score below in-distribution ones, expected {want[1]:.4f}, got "
        f"{reversed_:.4f}"
    )


# --------------------------------------------------------------------------- #
# auroc
# --------------------------------------------------------------------------- #


@graded("auroc")
def test_auroc_counts_ties_as_one_half(metrics):
    cases = [
        # (scores, labels, expected, what)
        ([1.0, 1.0, 1.0, 1.0], [0, 0, 1, 1], 0.5, "all scores tied"),
        ([1.0, 1.0, 1.0, 1.0], [1, 1, 0, 0], 0.5, "all scores tied, OOD first"),
        ([1.0, 1.0, 1.0, 2.0], [0, 1, 0, 1], 0.75, "one OOD tied with both in-distribution"),
        ([2.0, 1.0, 1.0, 1.0], [1, 1, 0, 0], 0.75, "the same, in another order"),
        ([3.0, 3.0, 1.0, 3.0, 2.0], [0, 1, 0, 1, 1], 4.0 / 6, "ties at the top"),
    ]
    for s, y, want, what in cases:
        got = call(metrics, "auroc", torch.tensor(s), torch.tensor(y))
        assert abs(got - want) < 1e-12, (
            f"auroc: scores {s} with labels {y} ({what}) should give {want:.4f} (each tied "
            f"OOD/in pair counts one half), got {got:.4f}; give tied scores the average of "
            f"their ranks"
        )


@graded("auroc")
def test_auroc_equals_scikit_learn(metrics):
    from sklearn.metrics import roc_auc_score

    for seed in range(5):
        s, y = random_case(100 + seed, n=500, ties=seed % 2 == 0)
        got = call(metrics, "auroc", s, y)
        want = roc_auc_score(y.numpy(), s.numpy())
        assert abs(got - want) < 1e-9, (
            f"auroc: sklearn.metrics.roc_auc_score gives {want:.6f}, you give {got:.6f} "
            f"(500 scores, seed {100 + seed})"
        )


@graded("auroc")
def test_auroc_of_an_uninformative_score_is_one_half(metrics, gen):
    g = gen(9)
    s = torch.rand(6000, generator=g)
    y = (torch.rand(6000, generator=g) < 0.3).long()
    got = call(metrics, "auroc", s, y)
    n1, n0 = int(y.sum()), int((1 - y).sum())
    sd = np.sqrt((n0 + n1 + 1) / (12 * n0 * n1))
    assert abs(got - 0.5) < 4 * sd, (
        f"auroc: scores independent of the labels should give about 0.5 (+- {4 * sd:.3f}), got "
        f"{got:.4f}"
    )
    half = call(metrics, "auroc", torch.zeros(6000), y)
    assert abs(half - 0.5) < 1e-12, (
        f"auroc: a constant score carries no information and must give exactly 0.5, got {half}"
    )


# --------------------------------------------------------------------------- #
# aupr
# --------------------------------------------------------------------------- #


@graded("aupr")
def test_aupr_hand_case(metrics):
    s = torch.tensor([4.0, 3.0, 2.0, 1.0])
    y = torch.tensor([1, 0, 1, 0])
    got = call(metrics, "aupr", s, y)
    want = 0.5 * 1.0 + 0.5 * (2 / 3)
    assert abs(got - want) < 1e-12, (
        f"aupr: scores [4, 3, 2, 1] with labels [1, 0, 1, 0] give precision 1 at recall 0.5 and "
        f"2/3 at recall 1, so AP = 0.5 * 1 + 0.5 * 2/3 = {want:.4f}; got {got:.4f} (a trapezoid "
        f"or an interpolated curve gives a different area)"
    )
    tied = call(metrics, "aupr", torch.ones(10), torch.tensor([1, 0, 0, 1, 0, 0, 0, 0, 0, 1]))
    assert abs(tied - 0.3) < 1e-12, (
        f"aupr: when every score is tied there is one threshold, precision = the OOD fraction "
        f"0.3 at recall 1, so AP = 0.3; got {tied:.4f}; tied scores enter the curve together"
    )


@graded("aupr")
def test_aupr_equals_scikit_learn(metrics):
    from sklearn.metrics import average_precision_score

    for seed in range(5):
        s, y = random_case(200 + seed, n=400, ties=seed % 2 == 1, prevalence=0.2)
        got = call(metrics, "aupr", s, y)
        want = average_precision_score(y.numpy(), s.numpy())
        assert abs(got - want) < 1e-9, (
            f"aupr: sklearn.metrics.average_precision_score gives {want:.6f}, you give "
            f"{got:.6f} (400 scores, seed {200 + seed})"
        )


@graded("aupr")
def test_aupr_of_an_uninformative_score_is_the_ood_fraction(metrics, gen):
    g = gen(10)
    s = torch.rand(8000, generator=g)
    y = (torch.rand(8000, generator=g) < 0.2).long()
    got = call(metrics, "aupr", s, y)
    prevalence = y.float().mean().item()
    assert abs(got - prevalence) < 0.03, (
        f"aupr: scores independent of the labels should give about the OOD fraction "
        f"{prevalence:.3f}, got {got:.4f}; OOD (label 1) is the positive class"
    )


# --------------------------------------------------------------------------- #
# fpr_at_tpr
# --------------------------------------------------------------------------- #


@graded("fpr_at_tpr")
def test_fpr_at_tpr_hand_cases(metrics):
    ood = torch.arange(1.0, 21.0)  # 20 OOD scores 1..20: TPR >= 0.95 needs t <= 2
    inside = torch.tensor([0.5, 1.5, 1.5, 2.0, 2.0, 2.5, 0.0, -1.0, 1.0, 3.0])
    s, y = torch.cat([inside, ood]), torch.cat([torch.zeros(10), torch.ones(20)]).long()
    got = call(metrics, "fpr_at_tpr", s, y)
    assert abs(got - 0.4) < 1e-12, (
        f"fpr_at_tpr: OOD scores 1..20 reach TPR 0.95 at threshold 2 (scores >= 2 flagged); the "
        f"in-distribution scores >= 2 are 2, 2, 2.5, 3, so FPR = 4/10 = 0.4, got {got:.4f}; flag "
        f"score >= t (ties included) and take the largest t with TPR >= 0.95"
    )
    # 15 OOD: TPR >= 0.95 needs all 15 (14/15 = 0.933 is not enough)
    ood = torch.arange(1.0, 16.0)
    inside = torch.tensor([0.0, 1.0, 1.5, 2.5, 3.5, 10.0, 20.0, 0.2])
    s, y = torch.cat([inside, ood]), torch.cat([torch.zeros(8), torch.ones(15)]).long()
    got = call(metrics, "fpr_at_tpr", s, y)
    assert abs(got - 6 / 8) < 1e-12, (
        f"fpr_at_tpr: with 15 OOD scores, TPR >= 0.95 needs all 15 flagged (14/15 = 0.933 is "
        f"too few), so t = 1 and FPR = 6/8 = 0.75 (an in-distribution score ties at 1); got {got:.4f} (did you take the TPR nearest "
        f"to 0.95 instead of the first one at least 0.95?)"
    )
    full = call(metrics, "fpr_at_tpr", s, y, tpr=1.0)
    half = call(metrics, "fpr_at_tpr", s, y, tpr=0.5)
    assert abs(full - 6 / 8) < 1e-12 and abs(half - 2 / 8) < 1e-12, (
        f"fpr_at_tpr: at tpr=1.0 expected 0.75, at tpr=0.5 (8 of 15 OOD flagged, t = 8) expected "
        f"0.25; got {full:.4f} and {half:.4f}"
    )


@graded("fpr_at_tpr")
@pytest.mark.parametrize("level", [0.95, 0.8, 0.5, 1.0, 0.01])
def test_fpr_at_tpr_matches_a_threshold_sweep(metrics, level):
    for seed in range(6):
        s, y = random_case(300 + seed, n=50 + 17 * seed, ties=seed % 2 == 0)
        got = call(metrics, "fpr_at_tpr", s, y, tpr=level)
        want = ref_fpr_at_tpr(s.double().numpy(), y.numpy(), level)
        assert abs(got - want) < 1e-12, (
            f"fpr_at_tpr: at tpr={level} a sweep over every threshold gives FPR {want:.4f}, you "
            f"give {got:.4f} ({len(s)} scores, seed {300 + seed}); among thresholds t with "
            f"mean(ood >= t) >= tpr, report the smallest mean(in >= t)"
        )


@graded("fpr_at_tpr")
def test_fpr_at_tpr_equals_the_scikit_learn_roc_curve(metrics):
    from sklearn.metrics import roc_curve

    for seed in range(4):
        s, y = random_case(400 + seed, n=700, ties=seed % 2 == 0)
        fpr, tpr, _ = roc_curve(y.numpy(), s.numpy(), drop_intermediate=False)
        want = fpr[np.searchsorted(tpr, 0.95)]
        got = call(metrics, "fpr_at_tpr", s, y)
        assert abs(got - want) < 1e-12, (
            f"fpr_at_tpr: the default (tpr=0.95) should give {want:.4f} (first point of "
            f"sklearn's ROC curve with TPR >= 0.95), got {got:.4f}"
        )


@graded("fpr_at_tpr")
def test_fpr_at_tpr_rejects_bad_levels(metrics):
    s, y = random_case(5)
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError):
            metrics.fpr_at_tpr(s, y, tpr=bad)
            pytest.fail(f"fpr_at_tpr: tpr={bad} must raise ValueError", pytrace=False)
    number("fpr_at_tpr", metrics.fpr_at_tpr(s, y))


@pytest.mark.parametrize("name", METRIC_PARAMS)
def test_metric_rejects_scores_and_labels_of_different_lengths(metrics, name):
    s = torch.arange(6.0)
    for labels in (torch.tensor([0, 1, 0, 1, 0]), torch.tensor([0, 1, 0, 1, 0, 1, 1])):
        what = f"{name}: 6 scores with {len(labels)} labels (both classes present) must raise "
        try:
            getattr(metrics, name)(s, labels)
        except ValueError:
            continue
        except Exception as err:  # noqa: BLE001 - any other error is the wrong one
            pytest.fail(
                f"{what}ValueError, got {type(err).__name__} ({str(err)[:60]}); compare the "
                f"shapes before anything else",
                pytrace=False,
            )
        pytest.fail(f"{what}ValueError; compare the shapes before anything else", pytrace=False)
