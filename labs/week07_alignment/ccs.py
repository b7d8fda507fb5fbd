"""Week 7: contrast-consistent search (CCS), a probe for latent knowledge.

Burns et al. (2022), "Discovering Latent Knowledge in Language Models Without
Supervision". Take statements ``q_i`` that are either true or false, and for
each one a **contrast pair**: the statement answered "Yes" (``x_pos[i]``, the
model's hidden activations on it) and answered "No" (``x_neg[i]``). Exactly
one of the two is true. A probe ``p(x) = sigmoid(w . x + b)`` should then give
probabilities that behave like beliefs: ``p(x_pos) = 1 - p(x_neg)``
(consistency), and not both near 0.5 (confidence). CCS finds such a probe
**without labels**, so it can only find truth up to a sign: it never learns
which side is "true", and its accuracy is reported as ``max(acc, 1 - acc)``.

**Normalisation** (when ``normalize=True``). Each side is normalised on its
own, over the examples:

    x_tilde = (x - x.mean(dim=0)) / x.std(dim=0)

with torch's default (unbiased) ``std``, per feature, separately for
``x_pos`` and for ``x_neg``. Without it the probe finds the easiest
consistent and confident direction, which is usually not truth: every
``x_pos`` contains "Yes" and every ``x_neg`` "No", so a probe that reads the
answer token alone gives ``p(x_pos) = 1`` and ``p(x_neg) = 0`` for every
statement, a perfect CCS loss and chance accuracy. Normalising each side
removes what all statements of a side share.

Conventions for every function here:

- ``x_pos``, ``x_neg``: float tensors ``(N, D)``, row ``i`` of each from the
  same statement; ``labels``: ``(N,)`` bool (or 0/1), True when the statement
  answered "Yes" (``x_pos``) is the true one.
- A probe is an ``nn.Linear(D, 1)``; on normalised activations its
  probabilities are ``torch.sigmoid(probe(x_tilde)).squeeze(-1)``.
- Inputs are never modified; randomness comes only from the
  ``torch.Generator`` passed as ``generator``.
"""

# The imports below are for the functions you will write.
# ruff: noqa: F401

from __future__ import annotations

import math

import torch
from torch import nn


def ccs_loss(p_pos: torch.Tensor, p_neg: torch.Tensor) -> torch.Tensor:
    """The CCS loss of a probe's probabilities on contrast pairs.

    ``mean((p_pos - (1 - p_neg)) ** 2) + mean(min(p_pos, p_neg) ** 2)``

    - consistency: a statement and its negation should have probabilities
      that sum to 1;
    - confidence: the smaller of the two should be near 0, which rules out the
      trivial consistent answer ``p_pos = p_neg = 0.5`` (loss 0.25).

    Args:
        p_pos: ``(N,)`` probabilities that the "Yes" statements are true, in
            [0, 1].
        p_neg: ``(N,)`` probabilities for the "No" statements, same shape.

    Returns:
        A scalar float tensor in [0, 2], differentiable with respect to both.

    Raises:
        ValueError: the shapes differ.
    """
    raise NotImplementedError(
        "TODO: implement ccs_loss as the docstring describes, then run `make test-week7`"
    )


def train_ccs_probe(
    x_pos: torch.Tensor,
    x_neg: torch.Tensor,
    *,
    restarts: int = 10,
    steps: int = 300,
    lr: float = 0.01,
    weight_decay: float = 0.01,
    normalize: bool = True,
    generator: torch.Generator | None = None,
) -> nn.Linear:
    """Find a CCS probe: the lowest-loss of several trained linear probes.

    1. Normalise each side (module docstring) if ``normalize``; otherwise use
       the activations as they are.
    2. For each of ``restarts`` restarts, in order: draw the initial weight
       ``w = torch.randn(D, generator=generator) / sqrt(D)`` (on the CPU,
       then moved to the activations' device and dtype) and set the bias
       ``b = 0``; run ``steps`` full-batch steps of
       ``torch.optim.Adam([w, b], lr=lr, weight_decay=weight_decay)`` on
       ``ccs_loss(sigmoid(x_pos_tilde @ w + b), sigmoid(x_neg_tilde @ w + b))``;
       then compute that loss once more with the final ``w, b``.
    3. Keep the restart with the lowest final loss (the first one on a tie).

    Nothing else draws from ``generator``, so restart ``r`` of a run equals
    restart ``r`` of any run with more restarts from the same seed; each
    extra restart can only lower the loss of the result.

    Args:
        x_pos, x_neg: ``(N, D)`` activations of the contrast pairs, ``N >= 2``.
        restarts: number of random restarts, ``>= 1``.
        steps: Adam steps per restart, ``>= 0``.
        lr, weight_decay: Adam's learning rate and L2 penalty.
        normalize: normalise each side first (leave True except to see why).
        generator: CPU ``torch.Generator`` for the initial weights (``None``:
            torch's global generator).

    Returns:
        An ``nn.Linear(D, 1)`` with weight ``w`` (shape ``(1, D)``) and bias
        ``b`` of the kept restart, on the activations' device and dtype.
        It applies to activations normalised as in step 1.

    Raises:
        ValueError: the shapes differ, are not 2-D, or ``restarts < 1``.
    """
    raise NotImplementedError(
        "TODO: implement train_ccs_probe as the docstring describes, then run `make test-week7`"
    )


def probe_accuracy(
    probe: nn.Module,
    x_pos: torch.Tensor,
    x_neg: torch.Tensor,
    labels: torch.Tensor,
    *,
    normalize: bool = True,
) -> float:
    """Accuracy of a probe on contrast pairs, up to the sign CCS cannot know.

    1. Normalise each side of the given pairs (module docstring) with their own
       statistics, if ``normalize``.
    2. Probabilities ``p_pos = sigmoid(probe(x_pos_tilde)).squeeze(-1)``, and
       ``p_neg`` likewise.
    3. The probe's credence that the "Yes" statement is true averages both
       views: ``c = (p_pos + (1 - p_neg)) / 2``; predict True when ``c > 0.5``.
    4. ``acc`` = fraction of predictions equal to ``labels``; return
       ``max(acc, 1 - acc)``.

    No gradients are recorded; the probe's parameters and mode are left as
    they were.

    Args:
        probe: maps ``(N, D)`` to logits ``(N, 1)`` (an ``nn.Linear(D, 1)``).
        x_pos, x_neg: ``(N, D)`` activations of the contrast pairs.
        labels: ``(N,)`` bool or 0/1, True when the "Yes" statement is true.
        normalize: normalise each side first, as the probe was trained.

    Returns:
        A Python float in [0.5, 1].
    """
    raise NotImplementedError(
        "TODO: implement probe_accuracy as the docstring describes, then run `make test-week7`"
    )
