"""Week 1: the classification loss, computed so that it never overflows.

Conventions for every function here:

- ``logits`` are raw, unnormalised class scores: float tensors (float32 or
  float64) on any device, of any magnitude. Logits of size 1e4 are normal
  after a few bad optimizer steps, and a loss of ``inf`` or ``nan`` ends a
  training run, so results must be finite for every finite input.
- Results keep the autograd graph and have the input's dtype and device.
  Inputs are never modified in place.
- Write the computation yourself. Do not call torch's own versions
  (``F.log_softmax``, ``torch.log_softmax``, ``Tensor.log_softmax``,
  ``torch.logsumexp``, ``torch.softmax``, ``F.cross_entropy``,
  ``F.nll_loss``): the specs compare with them and check that you did not
  call them. ``torch.exp``, ``torch.log``, ``amax``, ``sum``, ``gather`` and
  indexing are fine.
"""

# The imports below are for the functions you will write.
# ruff: noqa: F401

from __future__ import annotations

import torch


def log_softmax(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Logarithm of the softmax along ``dim``, computed stably.

    ``log_softmax(z)_i = z_i - log(sum_j exp(z_j))``. Computed literally,
    ``exp(z_j)`` overflows to ``inf`` for ``z_j`` above about 89 (float32) and
    the result becomes ``nan``. Subtract the maximum along ``dim`` first: with
    ``m = max_j z_j``, ``log_softmax(z)_i = (z_i - m) - log(sum_j exp(z_j - m))``
    (the largest term of the sum is then ``exp(0) = 1``, so the sum is at
    least 1 and at most the number of classes). Do not take the log of a
    softmax either: tiny probabilities underflow to 0 and their log is
    ``-inf``.

    Args:
        logits: float tensor of any shape with at least one dimension.
        dim: the dimension to normalise over (negative values count from the
            end).

    Returns:
        A tensor like ``logits``: every entry ``<= 0``, and the ``exp`` of the
        entries sums to 1 along ``dim``. Agrees with ``F.log_softmax(logits, dim)``.
    """
    raise NotImplementedError(
        "TODO: implement log_softmax as the docstring describes, then run `make test-week1`"
    )


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of class scores against integer class labels.

    For example ``i`` with logits ``z_i`` (a row) and label ``t_i``, the loss
    is ``-log_softmax(z_i)[t_i]``; the result is the mean over the batch.
    Use your :func:`log_softmax` over the class dimension, so the loss is as
    stable as it is.

    Args:
        logits: ``(N, C)`` float scores, ``N >= 1`` examples, ``C`` classes.
        targets: ``(N,)`` int64 class indices in ``[0, C)``.

    Returns:
        A 0-dimensional tensor (a scalar) with ``logits``' dtype and device,
        differentiable with respect to ``logits``. Agrees with
        ``F.cross_entropy(logits, targets)``.
    """
    raise NotImplementedError(
        "TODO: implement cross_entropy as the docstring describes, then run `make test-week1`"
    )
