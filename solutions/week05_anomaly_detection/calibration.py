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
    probs = probs.detach().cpu().double()
    confidence, prediction = probs.max(dim=1)
    correct = (prediction == labels.detach().cpu()).double()
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    # bucketize (right=False) gives i with edges[i-1] < c <= edges[i]: bins closed on the right
    bins = (torch.bucketize(confidence, edges) - 1).clamp(0, n_bins - 1)
    count = torch.bincount(bins, minlength=n_bins)
    safe = count.clamp_min(1).double()  # an empty bin's sums are 0, so it stays 0
    conf_sum = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, bins, confidence)
    acc_sum = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, bins, correct)
    return conf_sum / safe, acc_sum / safe, count


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
    confidence, accuracy, count = reliability_bins(probs, labels, n_bins)
    weight = count.double() / count.sum()
    return float((weight * (accuracy - confidence).abs()).sum())


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
    probs = probs.detach().cpu().double()
    onehot = F.one_hot(labels.detach().cpu(), probs.shape[1]).double()
    return float(((probs - onehot) ** 2).sum(dim=1).mean())


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
    return float(F.cross_entropy(logits.detach().cpu().double(), labels.detach().cpu()))


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
    z = logits.detach().cpu().double()
    y = labels.detach().cpu()

    def loss(log_t: float) -> float:
        return float(F.cross_entropy(z / math.exp(log_t), y))

    # golden-section search on log T: the NLL is convex in 1/T, so unimodal in log T
    lo, hi = math.log(0.01), math.log(100.0)
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    loss_a, loss_b = loss(a), loss(b)
    while hi - lo > 1e-7:
        if loss_a <= loss_b:
            hi, b, loss_b = b, a, loss_a
            a = hi - ratio * (hi - lo)
            loss_a = loss(a)
        else:
            lo, a, loss_a = a, b, loss_b
            b = lo + ratio * (hi - lo)
            loss_b = loss(b)
    return math.exp((lo + hi) / 2)
