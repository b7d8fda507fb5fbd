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

# The imports below are for the functions you will write.
# ruff: noqa: F401

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
    raise NotImplementedError(
        "TODO: implement flow_anomaly_scores as the docstring describes, then run `make test-week8`"
    )
