"""Week 5: how well an anomaly score separates OOD inputs from in-distribution ones.

Conventions for every function here:

- ``scores`` is a 1-D float tensor ``(N,)`` of anomaly scores, **higher =
  more anomalous**; ``labels`` is a 1-D tensor ``(N,)`` of 0/1 (int or bool):
  **1 = OOD, the positive class**, 0 = in-distribution. Both classes must be
  present, otherwise the function raises ``ValueError``. Lists and numpy
  arrays are accepted too (converted with ``torch.as_tensor``).
- A threshold ``t`` flags every input with ``score >= t`` as OOD. So the true
  positive rate is ``TPR(t) = #{OOD with score >= t} / #OOD`` and the false
  positive rate ``FPR(t) = #{in-distribution with score >= t} / #in``.
- Equal scores (ties) are never split: all inputs with the same score are
  flagged together.
- Results are Python floats, whatever the device of the inputs. Inputs are
  never modified.
"""

from __future__ import annotations

import torch


def _check(scores, labels) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 scores and bool labels, both 1-D and the same length; both classes present."""
    # on the CPU: the result is a Python float anyway, and Apple MPS has no float64
    scores = torch.as_tensor(scores).detach().cpu().double().flatten()
    labels = torch.as_tensor(labels).detach().cpu().flatten()
    if scores.shape != labels.shape:
        raise ValueError(f"scores {tuple(scores.shape)} and labels {tuple(labels.shape)} differ")
    positive = labels != 0
    if bool(positive.all()) or not bool(positive.any()):
        raise ValueError("labels must contain both OOD (1) and in-distribution (0) examples")
    return scores, positive


def _counts_at_thresholds(scores: torch.Tensor, positive: torch.Tensor):
    """True and false positive counts when the threshold is set at each distinct
    score, from the highest to the lowest (float64 tensors)."""
    order = torch.argsort(scores, descending=True)
    s, pos = scores[order], positive[order].double()
    tp, fp = pos.cumsum(0), (1 - pos).cumsum(0)
    # keep the last index of each run of equal scores: ties enter together
    last = torch.ones_like(s, dtype=torch.bool)
    last[:-1] = s[1:] != s[:-1]
    return tp[last], fp[last]


def auroc(scores, labels) -> float:
    """Area under the ROC curve, OOD (label 1) as the positive class.

    It is the probability that a random OOD input scores higher than a random
    in-distribution input, with ties counted as one half (the Mann-Whitney U
    statistic divided by ``n_ood * n_in``):

        ``AUROC = mean over pairs (o, i) of [s_o > s_i] + 0.5 * [s_o == s_i]``.

    Compute it from ranks rather than from all pairs: with ``r`` the ranks of
    all scores (1 = lowest; tied scores all get the *average* of the ranks they
    span), ``AUROC = (sum of r over OOD - n_ood (n_ood + 1) / 2) / (n_ood n_in)``.
    1.0 means every OOD input scores above every in-distribution input, 0.0
    the reverse, and 0.5 a score that carries no information. Equals
    ``sklearn.metrics.roc_auc_score(labels, scores)``.

    Args:
        scores: ``(N,)`` anomaly scores, higher = more anomalous.
        labels: ``(N,)`` 1 = OOD, 0 = in-distribution.

    Returns:
        A Python float in [0, 1].

    Raises:
        ValueError: if only one class is present or the shapes differ.
    """
    scores, positive = _check(scores, labels)
    sorted_scores, order = torch.sort(scores)
    _, group, counts = torch.unique_consecutive(
        sorted_scores, return_inverse=True, return_counts=True
    )
    last_rank = counts.cumsum(0).double()  # ranks are 1-based
    mean_rank = last_rank - (counts.double() - 1) / 2  # average rank of each tie group
    ranks = torch.empty_like(scores)
    ranks[order] = mean_rank[group]
    n_pos = int(positive.sum())
    n_neg = len(scores) - n_pos
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def aupr(scores, labels) -> float:
    """Area under the precision-recall curve with OOD (label 1) as the positive
    class ("AUPR-Out"), computed as the **average precision**:

        ``AP = sum_k (R_k - R_{k-1}) * P_k``

    over the thresholds ``t_k`` at the distinct scores, from the highest to the
    lowest, where ``P_k = TP / (TP + FP)`` and ``R_k = TP / n_ood`` at ``t_k``
    and ``R_0 = 0``. It is a step sum, not the trapezoidal area (which
    overestimates it). A perfect score gives 1.0; a score that carries no
    information gives about the fraction of OOD inputs. Equals
    ``sklearn.metrics.average_precision_score(labels, scores)``.

    Args:
        scores: ``(N,)`` anomaly scores, higher = more anomalous.
        labels: ``(N,)`` 1 = OOD, 0 = in-distribution.

    Returns:
        A Python float in [0, 1].

    Raises:
        ValueError: if only one class is present or the shapes differ.
    """
    scores, positive = _check(scores, labels)
    tp, fp = _counts_at_thresholds(scores, positive)
    precision = tp / (tp + fp)
    recall = tp / tp[-1]
    steps = torch.diff(recall, prepend=recall.new_zeros(1))
    return float((steps * precision).sum())


def fpr_at_tpr(scores, labels, tpr: float = 0.95) -> float:
    """False positive rate at the threshold that catches ``tpr`` of the OOD inputs
    ("FPR95" for the default).

    Among all thresholds ``t`` with ``TPR(t) >= tpr`` (at least that fraction
    of the OOD inputs has ``score >= t``), take the largest one, which has the
    smallest FPR, and return the fraction of in-distribution inputs with
    ``score >= t``. The candidate thresholds are the distinct scores: no
    interpolation between scores, and tied scores are flagged together. Lower
    is better; 0.0 means 95% of OOD inputs can be caught without a single
    false alarm. Equals ``fpr[np.searchsorted(tpr_curve, tpr)]`` of
    ``sklearn.metrics.roc_curve(labels, scores, drop_intermediate=False)``.

    Args:
        scores: ``(N,)`` anomaly scores, higher = more anomalous.
        labels: ``(N,)`` 1 = OOD, 0 = in-distribution.
        tpr: the true positive rate to reach, ``0 < tpr <= 1``.

    Returns:
        A Python float in [0, 1].

    Raises:
        ValueError: if ``tpr`` is not in (0, 1], only one class is present or
            the shapes differ.
    """
    if not 0 < tpr <= 1:
        raise ValueError(f"tpr must be in (0, 1], got {tpr}")
    scores, positive = _check(scores, labels)
    tp, fp = _counts_at_thresholds(scores, positive)
    rates = tp / tp[-1]  # true positive rate at each threshold, non-decreasing
    first = int(torch.searchsorted(rates, torch.tensor([tpr], dtype=rates.dtype)))
    return float(fp[first] / fp[-1])
