"""Week 5: calibration, or whether a classifier's confidence can be taken at its word.

Conventions for every function here:

- ``probs`` is a float tensor ``(N, C)`` of predicted class probabilities
  (rows sum to 1, e.g. ``torch.softmax(logits / T, dim=1)``); ``logits`` is
  ``(N, C)`` before the softmax; ``labels`` is an int64 tensor ``(N,)`` of true
  classes. ``nll`` and ``fit_temperature`` take logits (a log-probability is
  best computed from logits with ``log_softmax``); ``ece``,
  ``reliability_bins`` and ``brier_score`` take probabilities.
- The **prediction** is ``argmax_c probs_ic`` and its **confidence** is
  ``max_c probs_ic``; a prediction is correct when it equals the label.
- **Bins** are ``n_bins`` equal-width intervals of confidence over [0, 1],
  closed on the right: bin ``b`` (0-based) holds the confidences in
  ``(b / n_bins, (b + 1) / n_bins]``, and a confidence of exactly 0 goes in
  bin 0. (The edges are ``torch.linspace(0, 1, n_bins + 1)``; this is the
  binning of Guo et al., 2017.)
- Results are computed on the CPU in float64. Scalars are Python floats.
  Inputs are never modified, and nothing here is random.
"""

# The imports below are for the functions you will write.
# ruff: noqa: F401

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def reliability_bins(
    probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-bin mean confidence, accuracy and count: the data of a reliability
    diagram.

    For each bin ``b`` (see the module docstring for the edges), with ``S_b``
    the examples whose confidence falls in it:

    - ``confidence[b]`` = mean confidence over ``S_b``;
    - ``accuracy[b]`` = fraction of ``S_b`` predicted correctly;
    - ``count[b]`` = ``|S_b|``.

    An empty bin has count 0 and confidence and accuracy 0.0 (not NaN).

    Args:
        probs: ``(N, C)`` class probabilities.
        labels: ``(N,)`` int64 true classes.
        n_bins: number of equal-width bins, ``>= 1``.

    Returns:
        ``(confidence, accuracy, count)``: CPU tensors of shape ``(n_bins,)``,
        float64, float64 and int64; ``count.sum() == N``.
    """
    raise NotImplementedError(
        "TODO: implement reliability_bins as the docstring describes, then run `make test-week5`"
    )


def ece(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """Expected calibration error (Naeini et al., 2015; Guo et al., 2017).

    ``ECE = sum_b (count_b / N) * |accuracy_b - confidence_b|``

    with the per-bin quantities of :func:`reliability_bins`: the gap between
    how often the model is right and how sure it is, weighted by how many
    examples fall in each bin. Empty bins contribute 0. A perfectly calibrated
    model has ECE 0; a model that is always wrong with confidence 1 has ECE 1.

    Args:
        probs: ``(N, C)`` class probabilities.
        labels: ``(N,)`` int64 true classes.
        n_bins: number of equal-width bins over [0, 1], ``>= 1`` (default 15).

    Returns:
        A Python float in [0, 1].
    """
    raise NotImplementedError(
        "TODO: implement ece as the docstring describes, then run `make test-week5`"
    )


def brier_score(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Multiclass Brier score (Brier, 1950).

    ``Brier = (1/N) * sum_i sum_c (probs_ic - onehot(labels_i)_c)^2``

    summed over all ``C`` classes (not only the true one) and averaged over
    examples (not over classes). It lies in [0, 2]: 0 for a confident correct
    prediction, 2 for a confident wrong one, ``(C - 1) / C`` for the uniform
    distribution.

    Args:
        probs: ``(N, C)`` class probabilities.
        labels: ``(N,)`` int64 true classes.

    Returns:
        A Python float.
    """
    raise NotImplementedError(
        "TODO: implement brier_score as the docstring describes, then run `make test-week5`"
    )


def nll(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean negative log-likelihood of the true labels under ``softmax(logits)``.

    ``NLL = -(1/N) * sum_i log softmax(logits_i)_{labels_i}``: the
    cross-entropy loss, averaged over examples. Takes *logits* so that it stays
    finite for logits of magnitude 1e4 (use ``log_softmax``; ``log`` of a
    probability that rounded to 0 is ``-inf``).

    Args:
        logits: ``(N, C)`` logits (divide by a temperature first to evaluate a
            temperature-scaled model).
        labels: ``(N,)`` int64 true classes.

    Returns:
        A Python float ``>= 0``.
    """
    raise NotImplementedError(
        "TODO: implement nll as the docstring describes, then run `make test-week5`"
    )


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Temperature scaling (Guo et al., 2017): the temperature ``T > 0`` that
    minimises the NLL of ``softmax(logits / T)`` on held-out (validation) data.

    The logits are **divided** by ``T``: ``T > 1`` softens an overconfident
    model, ``T < 1`` sharpens an underconfident one. Dividing by a positive
    number never changes the argmax, so accuracy is unchanged. The NLL as a
    function of ``log T`` has a single minimum; search ``T`` in
    ``[0.01, 100]`` (for example a golden-section search on ``log T``, or
    L-BFGS on ``log T``) to a relative precision of 1e-4 or better. Never
    return a ``T`` outside that range: when the NLL keeps falling beyond an
    end (every example right with a wide margin, say), return that end.

    Args:
        logits: ``(N, C)`` validation logits (not modified; gradients of the
            caller's graph are not touched).
        labels: ``(N,)`` int64 true classes.

    Returns:
        The temperature ``T`` as a Python float in ``[0.01, 100]``.
    """
    raise NotImplementedError(
        "TODO: implement fit_temperature as the docstring describes, then run `make test-week5`"
    )
