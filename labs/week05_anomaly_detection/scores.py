"""Week 5: anomaly scores for out-of-distribution (OOD) detection.

Conventions for every function here:

- **Higher score = more anomalous.** Every score is oriented so that OOD
  inputs should score *higher* than in-distribution ones (the metrics in
  ``metrics.py`` treat OOD as the positive class). Where the quantity from
  the literature points the other way (the maximum softmax probability, the
  maximum logit), the score is its negative.
- ``logits`` is a float tensor ``(N, C)`` of classifier outputs (before the
  softmax); ``features`` is a float tensor ``(N, D)`` of penultimate-layer
  features, the input of the last linear layer ``logits = features @ W.T + b``
  with ``W`` of shape ``(C, D)`` and ``b`` of shape ``(C,)``.
- A score is a new 1-D float tensor ``(N,)``, with the dtype and device of
  its input. Inputs are never modified in place.
- Scores must be finite for logits as large as 1e4 in magnitude: use
  ``torch.logsumexp`` / ``torch.log_softmax``, never ``exp`` then ``log``.
- The feature-space functions (Mahalanobis, ViM) compute in float64 inside;
  Apple's MPS device has no float64, so there pass them CPU tensors.
- Nothing here is random.
"""

# The imports below are for the functions you will write.
# ruff: noqa: F401

from __future__ import annotations

import torch
import torch.nn.functional as F


def msp_score(logits: torch.Tensor) -> torch.Tensor:
    """Negative maximum softmax probability (Hendrycks and Gimpel, 2017).

    ``score_i = -max_c softmax(logits_i)_c``. A confident prediction (MSP near
    1) gives a score near -1; a flat softmax gives the highest possible score,
    ``-1 / C``. So the score lies in ``[-1, -1/C]`` and is higher for inputs the
    classifier is unsure about.

    Args:
        logits: ``(N, C)`` float tensor, any device.

    Returns:
        ``(N,)`` float tensor (dtype and device of ``logits``).
    """
    raise NotImplementedError(
        "TODO: implement msp_score as the docstring describes, then run `make test-week5`"
    )


def max_logit_score(logits: torch.Tensor) -> torch.Tensor:
    """Negative maximum logit (Hendrycks et al., 2022, "MaxLogit").

    ``score_i = -max_c logits_ic``. Unlike the MSP, it is not squashed by the
    softmax, so it keeps the scale of the logits.

    Args:
        logits: ``(N, C)`` float tensor.

    Returns:
        ``(N,)`` float tensor (dtype and device of ``logits``).
    """
    raise NotImplementedError(
        "TODO: implement max_logit_score as the docstring describes, then run `make test-week5`"
    )


def energy_score(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """The free energy of the logits (Liu et al., 2020).

    ``score_i = E(x_i; T) = -T * logsumexp_c(logits_ic / T)``. The energy is
    *lower* for in-distribution inputs (large logits), so the energy itself is
    the anomaly score: no extra minus sign. (Liu et al. write the detector as
    "negative energy above a threshold means in-distribution"; it is the same
    ordering.) As ``T -> 0`` the energy tends to ``-max_c logits_ic``, the
    max-logit score. Compute it with ``torch.logsumexp``: it must stay finite
    for logits of magnitude 1e4.

    Args:
        logits: ``(N, C)`` float tensor.
        temperature: ``T > 0`` (Python float).

    Returns:
        ``(N,)`` float tensor (dtype and device of ``logits``).

    Raises:
        ValueError: if ``temperature <= 0``.
    """
    raise NotImplementedError(
        "TODO: implement energy_score as the docstring describes, then run `make test-week5`"
    )


def uniform_kl_score(logits: torch.Tensor) -> torch.Tensor:
    """Negative cross-entropy from the uniform distribution to the softmax.

    With ``p = softmax(logits_i)`` and ``u`` the uniform distribution over the
    ``C`` classes, the cross-entropy is ``H(u, p) = -(1/C) * sum_c log p_c``.
    It is large when ``p`` is far from uniform (a confident, typical input),
    so the anomaly score is its negative:

        ``score_i = -H(u, p) = (1/C) * sum_c log_softmax(logits_i)_c``.

    This is the score Hendrycks et al. (2019) use with outlier exposure. It
    equals ``-KL(u || p) - log C``: the KL divergence from uniform up to a
    constant, so the two rank inputs identically, but return the cross-entropy
    form above. The score is at most ``-log C`` (reached when ``p`` is uniform)
    and goes to ``-inf`` as ``p`` becomes one-hot. Use ``torch.log_softmax``:
    ``log(softmax(...))`` gives ``-inf`` for logits of magnitude 1e4.

    Args:
        logits: ``(N, C)`` float tensor.

    Returns:
        ``(N,)`` float tensor (dtype and device of ``logits``).
    """
    raise NotImplementedError(
        "TODO: implement uniform_kl_score as the docstring describes, then run `make test-week5`"
    )


def outlier_exposure_loss(
    logits_in: torch.Tensor,
    labels_in: torch.Tensor,
    logits_out: torch.Tensor,
    lam: float = 0.5,
) -> torch.Tensor:
    """The outlier exposure training loss (Hendrycks et al., 2019).

    ``loss = CE(logits_in, labels_in) + lam * mean_j H(u, softmax(logits_out_j))``

    where ``CE`` is the usual cross-entropy averaged over the in-distribution
    batch and ``H(u, p) = -(1/C) * sum_c log p_c`` is the cross-entropy from the
    uniform distribution to the softmax of an outlier, averaged over the
    outlier batch (the two batches may have different sizes). The second term
    pushes the softmax of outliers towards uniform; it is the negative of
    :func:`uniform_kl_score` averaged over the outliers. Stable for large
    logits (``log_softmax``).

    Args:
        logits_in: ``(N, C)`` logits of in-distribution examples.
        labels_in: ``(N,)`` int64 class indices.
        logits_out: ``(M, C)`` logits of auxiliary outliers.
        lam: weight ``lambda >= 0`` of the outlier term.

    Returns:
        A 0-dim tensor, differentiable with respect to both logit tensors
        (call ``.backward()`` on it).
    """
    raise NotImplementedError(
        "TODO: implement outlier_exposure_loss as the docstring describes, then run `make test-week5`"
    )


def mahalanobis_fit(
    features: torch.Tensor, labels: torch.Tensor, num_classes: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class means and ONE shared covariance of in-distribution features
    (Lee et al., 2018).

    - ``means[k]`` is the mean of the features of class ``k``.
    - The shared (tied, pooled) covariance centres every feature on the mean
      of *its own class* and averages over all ``N`` examples:
      ``Sigma = (1/N) * sum_i (f_i - mu_{y_i})(f_i - mu_{y_i})^T``
      (divide by ``N``, not ``N - 1`` or ``N - K``). It is not a per-class
      covariance, nor the covariance around the global mean, nor an
      unweighted average of per-class covariances.
    - ``precision`` is its Moore-Penrose pseudo-inverse
      (``torch.linalg.pinv(Sigma, hermitian=True)``), which exists even when
      some features are constant (dead ReLUs).

    Compute in float64 and return in the dtype of ``features``.

    Args:
        features: ``(N, D)`` float tensor of in-distribution features.
        labels: ``(N,)`` int64 class indices in ``[0, K)``.
        num_classes: ``K``; default ``labels.max() + 1``.

    Returns:
        ``(means, precision)``: ``(K, D)`` and ``(D, D)`` float tensors on the
        device of ``features``.

    Raises:
        ValueError: if some class in ``[0, K)`` has no example.
    """
    raise NotImplementedError(
        "TODO: implement mahalanobis_fit as the docstring describes, then run `make test-week5`"
    )


def mahalanobis_score(
    features: torch.Tensor, means: torch.Tensor, precision: torch.Tensor
) -> torch.Tensor:
    """Distance to the closest class mean, measured with the shared covariance.

    ``score_i = min_k sqrt((f_i - mu_k)^T P (f_i - mu_k))``, with ``P`` the
    shared precision matrix from :func:`mahalanobis_fit`: the Mahalanobis
    distance (not squared) to the nearest class mean. It is 0 at a class mean
    and higher further from every class, so no sign change is needed. (Lee et
    al.'s "confidence score" is the negative squared distance, which points the
    other way.) Tiny negative squared distances from rounding count as 0.

    Args:
        features: ``(N, D)`` float tensor.
        means: ``(K, D)`` class means.
        precision: ``(D, D)`` symmetric positive semi-definite matrix.

    Returns:
        ``(N,)`` float tensor, ``>= 0`` (dtype and device of ``features``).
    """
    raise NotImplementedError(
        "TODO: implement mahalanobis_score as the docstring describes, then run `make test-week5`"
    )


def vim_fit(
    features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, dim: int
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Fit Virtual-logit Matching (ViM; Wang et al., 2022) on in-distribution
    features.

    1. **Origin.** ``u = -pinv(W) @ b``: the point of feature space whose
       logits are all zero (the minimum-norm solution of ``W u + b = 0``).
       Features are centred on ``u``, not on their mean.
    2. **Principal subspace.** With ``X = features - u``, take the
       eigenvectors of ``(1/N) * X^T X`` (no further mean subtraction:
       "assume centred"). The ``dim`` eigenvectors with the largest
       eigenvalues span the principal subspace; the other ``D - dim`` (the
       smallest eigenvalues) form ``residual_basis``, an orthonormal basis of
       its complement. ``torch.linalg.eigh`` returns eigenvalues in
       *ascending* order.
    3. **Scale.** ``alpha = sum_i max_c logits_ic / sum_i ||X_i @ residual_basis||``
       over the fit set, with ``logits = features @ W.T + b``: it puts the
       residual norm on the scale of the logits.

    Compute in float64.

    Args:
        features: ``(N, D)`` in-distribution features (the fit set).
        weight: ``(C, D)`` weight ``W`` of the last linear layer.
        bias: ``(C,)`` its bias ``b``.
        dim: size of the principal subspace, ``0 < dim < D``.

    Returns:
        ``(origin, residual_basis, alpha)``: ``(D,)`` and ``(D, D - dim)``
        float tensors (dtype and device of ``features``) and a Python float.

    Raises:
        ValueError: if ``dim`` is not in ``1 .. D - 1``.
    """
    raise NotImplementedError(
        "TODO: implement vim_fit as the docstring describes, then run `make test-week5`"
    )


def vim_score(
    features: torch.Tensor,
    logits: torch.Tensor,
    origin: torch.Tensor,
    residual_basis: torch.Tensor,
    alpha: float,
) -> torch.Tensor:
    """The ViM anomaly score (Wang et al., 2022).

    ``score_i = alpha * ||(f_i - u) @ residual_basis|| - logsumexp_c(logits_ic)``

    The first term is the *virtual logit*: how far the feature lies outside the
    principal subspace of the training features, scaled by ``alpha``. The
    second is the negative energy. Wang et al. define the ViM score as
    ``-(this)`` with "higher = in-distribution"; here higher = more anomalous.

    Args:
        features: ``(N, D)`` float tensor.
        logits: ``(N, C)`` the classifier's logits for the same inputs.
        origin, residual_basis, alpha: the output of :func:`vim_fit`.

    Returns:
        ``(N,)`` float tensor (dtype and device of ``features``).
    """
    raise NotImplementedError(
        "TODO: implement vim_score as the docstring describes, then run `make test-week5`"
    )
