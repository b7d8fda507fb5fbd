"""Week 7: a utility model learned from pairwise comparisons.

A *utility model* gives every scenario a number ``u``, higher for better
scenarios. It is trained, as in the ETHICS utilitarianism task (Hendrycks et
al., 2021), from pairs ``(better, worse)`` where people judged the first
scenario the more pleasant one, with the Bradley-Terry model of a judgement:

    P(better is judged better) = sigmoid(u(better) - u(worse)).

Only differences of utilities matter, so a constant added to every utility
changes nothing (and the model needs no bias).

Conventions for every function here:

- Utilities are float tensors of shape ``(N,)``: ``u_better[i]`` and
  ``u_worse[i]`` are the utilities of the two scenarios of pair ``i``.
- Embeddings are float tensors of shape ``(N, D)``: row ``i`` of ``better``
  and of ``worse`` embed the two scenarios of pair ``i`` (for example from
  the sentence encoder, ``mlsafety.encoder.encode``, or the hashing
  featurizer, ``mlsafety.text.embed``).
- Inputs are never modified. Randomness comes only from the
  ``torch.Generator`` passed as ``generator``: the same seed gives the same
  result, whatever the state of torch's global generator.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _same_shape(name: str, a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{name}: u_better and u_worse must have the same shape, got "
            f"{tuple(a.shape)} and {tuple(b.shape)}"
        )


def pairwise_utility_loss(u_better: torch.Tensor, u_worse: torch.Tensor) -> torch.Tensor:
    """Bradley-Terry loss of a utility model on ranked pairs.

    The mean over pairs of ``-log sigmoid(u_better - u_worse)``: the negative
    log-likelihood of the judgements "better beats worse". It is ``log 2`` when
    the model cannot tell the two apart, tends to 0 when ``u_better`` is far
    above ``u_worse`` and grows linearly when it is far below.

    Compute it in a numerically stable form: ``sigmoid`` of a large negative
    difference is 0 in float32, and ``log`` of it is ``-inf``, so the naive
    formula gives ``inf`` (and NaN gradients) where the true loss is, say, 200.
    ``-log sigmoid(d) = softplus(-d) = log(1 + exp(-d))``, and
    ``F.softplus`` / ``F.logsigmoid`` evaluate it without overflow.

    Args:
        u_better: utilities of the preferred scenarios, float, any shape.
        u_worse: utilities of the other scenarios, the same shape (no
            broadcasting: a ``(N, 1)`` against a ``(N,)`` raises).

    Returns:
        A scalar float tensor, differentiable with respect to both inputs.

    Raises:
        ValueError: the two shapes differ.
    """
    _same_shape("pairwise_utility_loss", u_better, u_worse)
    return F.softplus(u_worse - u_better).mean()


def train_utility_head(
    better: torch.Tensor,
    worse: torch.Tensor,
    *,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 0.01,
    weight_decay: float = 0.0,
    generator: torch.Generator | None = None,
) -> nn.Linear:
    """Train a linear utility model ``u(x) = w . x`` on fixed embeddings of ranked pairs.

    1. ``head = nn.Linear(D, 1, bias=False)`` on the device and dtype of
       ``better``, its weight set to **zeros** (an untrained head scores every
       scenario 0);
    2. ``optimizer = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay)``;
    3. for each of ``epochs`` epochs: draw the order of the pairs with
       ``torch.randperm(N, generator=generator)`` (one permutation per epoch,
       on the CPU), then for each consecutive batch of ``batch_size``
       indices of that order (the last batch may be smaller): zero the
       gradients, compute the utilities ``head(better[idx]).squeeze(-1)`` and
       ``head(worse[idx]).squeeze(-1)``, the :func:`pairwise_utility_loss` of
       the batch, backpropagate, take one optimizer step.

    Args:
        better: ``(N, D)`` float embeddings of the preferred scenarios.
        worse: ``(N, D)`` float embeddings of the other scenario of each pair.
        epochs: passes over the pairs, ``>= 0`` (0 returns the zero head).
        batch_size: pairs per optimizer step, ``>= 1``.
        lr, weight_decay: Adam's learning rate and L2 penalty.
        generator: CPU ``torch.Generator`` for the orders (``None``: torch's
            global generator). The same seeded generator gives the same head.

    Returns:
        The trained ``nn.Linear(D, 1, bias=False)``, in eval mode; utilities of
        embeddings ``x`` are ``head(x).squeeze(-1)``. ``better`` and ``worse``
        are not modified.

    Raises:
        ValueError: ``better`` and ``worse`` differ in shape or are not 2-D.
    """
    if better.dim() != 2 or better.shape != worse.shape:
        raise ValueError(
            f"train_utility_head: better and worse must both be (N, D), got "
            f"{tuple(better.shape)} and {tuple(worse.shape)}"
        )
    n, d = better.shape
    head = nn.Linear(d, 1, bias=False).to(device=better.device, dtype=better.dtype)
    nn.init.zeros_(head.weight)
    optimizer = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay)
    head.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator).to(better.device)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            optimizer.zero_grad()
            loss = pairwise_utility_loss(
                head(better[idx]).squeeze(-1), head(worse[idx]).squeeze(-1)
            )
            loss.backward()
            optimizer.step()
    return head.eval()


def pairwise_accuracy(u_better: torch.Tensor, u_worse: torch.Tensor) -> float:
    """Fraction of pairs ranked the right way round: ``u_better > u_worse``.

    A tie (``u_better == u_worse``) counts one half: a model that scores
    everything the same gets 0.5, chance level, not 0 or 1.

    Args:
        u_better, u_worse: utilities of the two scenarios of each pair, the
            same shape, at least one pair; tensors (or anything
            ``torch.as_tensor`` accepts).

    Returns:
        A Python float in [0, 1].

    Raises:
        ValueError: the shapes differ, or there are no pairs.
    """
    u_better, u_worse = torch.as_tensor(u_better), torch.as_tensor(u_worse)
    _same_shape("pairwise_accuracy", u_better, u_worse)
    if u_better.numel() == 0:
        raise ValueError("pairwise_accuracy: no pairs")
    wins = (u_better > u_worse).double() + 0.5 * (u_better == u_worse).double()
    return wins.mean().item()
