"""Week 8: anomaly detection on network flows (ML for cyberdefence).

A defender rarely has labelled attacks, and tomorrow's attack will not look
like yesterday's. What a defender does have is plenty of normal traffic. So
the detector here is fitted on **normal traffic only** and flags what is
unlike it, the same idea as the feature-based OOD scores of week 5.

Conventions (as in week 5): an anomaly score is **higher for more anomalous**
flows; an attack is the positive class (label 1). Flow features are the
columns of ``mlsafety.flows.FEATURES`` (durations and counts of bytes,
packets, ports and hosts): non-negative and heavy-tailed, a few flows being
thousands of times larger than the typical one.
"""

from __future__ import annotations

import numpy as np


def flow_anomaly_scores(normal, flows, *, ridge: float = 1e-6) -> np.ndarray:
    """Anomaly scores of network flows: squared Mahalanobis distance of
    log-transformed features from the normal traffic.

    1. **Log-transform** every feature: ``z = log(1 + x)`` (``numpy.log1p``).
       Counts of bytes and packets span many orders of magnitude; on a log
       scale a flow a thousand times larger is a few units away, not a
       thousand standard deviations, and ratios (bytes per packet) become
       differences that the covariance can capture.
    2. **Fit on the normal flows only**: the mean ``mu`` of their ``z`` and
       their covariance ``S`` (the sample covariance, normalised by
       ``N - 1``: ``numpy.cov(z_normal, rowvar=False)``), plus
       ``ridge * I`` so that a feature that never varies in normal traffic
       does not make ``S`` singular.
    3. **Score** each flow of ``flows``:
       ``score = (z - mu)^T (S + ridge I)^{-1} (z - mu)``, the squared
       Mahalanobis distance. Unlike a per-feature z-score it uses the
       correlations: a large upload with almost no reply traffic is far
       from the normal traffic even if each number alone is common.

    The ``flows`` being scored never influence the fit (scoring one flow or a
    batch of them gives the same numbers).

    Args:
        normal: ``(N, F)`` non-negative features of normal flows, ``N >= 2``.
        flows: ``(M, F)`` non-negative features of the flows to score
            (``M >= 0``), the same ``F`` columns.
        ridge: added to the covariance's diagonal, ``>= 0``.

    Returns:
        A new float64 numpy array ``(M,)``, non-negative, higher = more
        anomalous. Neither input is modified.

    Raises:
        ValueError: the inputs are not 2-D with the same number of columns,
            there are fewer than 2 normal flows, a feature is negative, or
            ``ridge < 0``.
    """
    x_normal = np.asarray(normal, dtype=np.float64)
    x = np.asarray(flows, dtype=np.float64)
    if x_normal.ndim != 2 or x.ndim != 2 or x_normal.shape[1] != x.shape[1]:
        raise ValueError(
            f"flow_anomaly_scores: normal (N, F) and flows (M, F) expected, got "
            f"{x_normal.shape} and {x.shape}"
        )
    if len(x_normal) < 2:
        raise ValueError("flow_anomaly_scores: at least 2 normal flows are needed to fit")
    if np.any(x_normal < 0) or np.any(x < 0):
        raise ValueError("flow_anomaly_scores: flow features must be non-negative")
    if ridge < 0:
        raise ValueError(f"flow_anomaly_scores: ridge must be >= 0, got {ridge}")
    z_normal, z = np.log1p(x_normal), np.log1p(x)
    mu = z_normal.mean(axis=0)
    cov = np.atleast_2d(np.cov(z_normal, rowvar=False)) + ridge * np.eye(x.shape[1])
    centred = z - mu
    # solve instead of inverting: (S + ridge I)^{-1} (z - mu) for every flow at once
    solved = np.linalg.solve(cov, centred.T).T
    # a quadratic form of a positive definite matrix: only rounding can make it negative
    return np.maximum(np.einsum("ij,ij->i", centred, solved), 0.0)
