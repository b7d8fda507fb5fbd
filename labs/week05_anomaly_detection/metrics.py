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

# The imports below are for the functions you will write.
# ruff: noqa: F401

from __future__ import annotations

import torch


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
    raise NotImplementedError(
        "TODO: implement auroc as the docstring describes, then run `make test-week5`"
    )


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
    raise NotImplementedError(
        "TODO: implement aupr as the docstring describes, then run `make test-week5`"
    )


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
    raise NotImplementedError(
        "TODO: implement fpr_at_tpr as the docstring describes, then run `make test-week5`"
    )
