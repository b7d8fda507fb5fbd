"""Security lab 2: a model behind an API, and what the API lets out.

Conventions for every function here:

- ``model`` maps float images ``(N, C, H, W)`` to logits ``(N, K)``. The
  black box runs it in eval mode without gradients and leaves its mode and
  weights as it found them.
- Probabilities are the softmax of the logits: float32 ``(N, K)``, rows
  summing to 1. Labels are int64 ``(N,)``.
- Every answer is a new tensor on the model's device, detached from any graph;
  no input is modified in place.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MODES = ("probs", "top_k", "rounded", "label")


class BudgetExceeded(RuntimeError):
    """A query asked for more answers than the black box's budget has left."""


@dataclass
class Victim:
    """A black-box classifier behind an API, built by :func:`victim`.

    Call it like a function: ``victim(x)`` answers the queries ``x`` in its
    output mode (see :func:`query`). ``used`` counts the queries answered so
    far (one per image); ``remaining`` is what is left of ``budget``.
    """

    model: torch.nn.Module
    budget: int
    input_shape: tuple[int, ...]
    mode: str = "probs"
    k: int = 3
    decimals: int = 1
    used: int = 0

    @property
    def remaining(self) -> int:
        return self.budget - self.used

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return query(self, x)


def round_outputs(probs: torch.Tensor, decimals: int = 1) -> torch.Tensor:
    """Output-side defence: probabilities rounded to ``decimals`` decimal places.

    Each entry becomes ``round(p, decimals)`` (round half to even, as
    ``torch.round`` does); with ``decimals=1`` the answer only says 0.0, 0.1,
    ..., 1.0. Rows need not sum to 1 afterwards.

    Args:
        probs: probabilities ``(N, K)``, float.
        decimals: number of decimal places kept, an int ``>= 0``.

    Returns:
        A new tensor like ``probs``; ``probs`` is not modified.

    Raises:
        ValueError: if ``decimals`` is negative.
    """
    if decimals < 0:
        raise ValueError(f"round_outputs: decimals must be >= 0, got {decimals}")
    return torch.round(probs, decimals=decimals)


def label_only(probs: torch.Tensor) -> torch.Tensor:
    """Output-side defence: answer the top-1 label and nothing else.

    Args:
        probs: probabilities (or logits) ``(N, K)``, float.

    Returns:
        int64 labels ``(N,)``, the index of each row's largest entry, on the
        device of ``probs``.

    Raises:
        ValueError: if ``probs`` is not 2-D.
    """
    if probs.dim() != 2:
        raise ValueError(
            f"label_only: expected probabilities of shape (N, K), got {tuple(probs.shape)}"
        )
    return probs.argmax(dim=1)


def victim(
    model: torch.nn.Module,
    budget: int,
    input_shape: tuple[int, ...],
    mode: str = "probs",
    *,
    k: int = 3,
    decimals: int = 1,
) -> Victim:
    """Put ``model`` behind a black-box API with a query budget.

    Args:
        model: the classifier to hide, returning logits ``(N, K)``.
        budget: how many images the API answers in total, a positive int
            (``bool`` is not an int here).
        input_shape: the shape of one query image, e.g. ``(1, 28, 28)``.
        mode: what each answer reveals, one of :data:`MODES`: ``"probs"`` (all
            probabilities), ``"top_k"`` (the ``k`` largest, the rest 0),
            ``"rounded"`` (probabilities rounded to ``decimals`` places) or
            ``"label"`` (the top-1 label only).
        k: entries kept in ``"top_k"`` mode, ``k >= 1``.
        decimals: decimal places in ``"rounded"`` mode, ``decimals >= 0``.

    Returns:
        A :class:`Victim` with ``used == 0``. Nothing is queried yet.

    Raises:
        TypeError: if ``budget`` is not an int.
        ValueError: if ``budget <= 0``, ``mode`` is not one of :data:`MODES`,
            ``k < 1`` or ``decimals < 0``.
    """
    if isinstance(budget, bool) or not isinstance(budget, int):
        raise TypeError(f"victim: budget must be a positive int, got {budget!r}")
    if budget <= 0:
        raise ValueError(f"victim: budget must be a positive int, got {budget}")
    if mode not in MODES:
        raise ValueError(f"victim: unknown output mode {mode!r}; choose one of {', '.join(MODES)}")
    if k < 1:
        raise ValueError(f"victim: k must be >= 1, got {k}")
    if decimals < 0:
        raise ValueError(f"victim: decimals must be >= 0, got {decimals}")
    return Victim(model, budget, tuple(input_shape), mode, k, decimals)


def query(box: Victim, x: torch.Tensor) -> torch.Tensor:
    """Answer the queries ``x`` through the black box ``box``, within its budget.

    Every image counts as one query: ``box.used`` grows by ``len(x)``. A batch
    that would take ``box.used`` past ``box.budget`` is refused whole: nothing
    is answered and nothing is counted. The model runs in eval mode without
    gradients and is put back in the mode it was in.

    Args:
        box: the black box (from :func:`victim`).
        x: query images ``(N, *box.input_shape)``, a floating-point tensor,
            ``N >= 1``.

    Returns:
        In mode ``"probs"``: float32 probabilities ``(N, K)``. ``"top_k"``: the
        same with all but the ``box.k`` largest entries of each row set to 0.
        ``"rounded"``: :func:`round_outputs` of the probabilities with
        ``box.decimals``. ``"label"``: :func:`label_only`, int64 ``(N,)``.

    Raises:
        TypeError: if ``x`` is not a floating-point tensor.
        ValueError: if ``x`` is not shaped ``(N, *box.input_shape)`` with ``N >= 1``.
        BudgetExceeded: if ``box.used + len(x) > box.budget``.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        kind = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"query: queries must be a floating-point tensor, got {kind}")
    if x.dim() != 1 + len(box.input_shape) or tuple(x.shape[1:]) != box.input_shape or not len(x):
        raise ValueError(
            f"query: queries must have shape (N, {', '.join(map(str, box.input_shape))}) with "
            f"N >= 1, got {tuple(x.shape)}"
        )
    if box.used + len(x) > box.budget:
        raise BudgetExceeded(
            f"query: {len(x)} queries asked, {box.remaining} of the budget of {box.budget} left"
        )
    was_training = box.model.training
    box.model.eval()
    try:
        with torch.no_grad():
            probs = box.model(x).float().softmax(dim=1)
    finally:
        box.model.train(was_training)
    box.used += len(x)
    if box.mode == "top_k":
        keep = probs.topk(min(box.k, probs.shape[1]), dim=1).indices
        return torch.zeros_like(probs).scatter(1, keep, probs.gather(1, keep))
    if box.mode == "rounded":
        return round_outputs(probs, box.decimals)
    if box.mode == "label":
        return label_only(probs)
    return probs
