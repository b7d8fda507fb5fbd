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

# The imports below are for the functions you will write.
# ruff: noqa: F401

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
    raise NotImplementedError(
        "TODO: implement round_outputs as the docstring describes, then run `make test-security2`"
    )


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
    raise NotImplementedError(
        "TODO: implement label_only as the docstring describes, then run `make test-security2`"
    )


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
    raise NotImplementedError(
        "TODO: implement victim as the docstring describes, then run `make test-security2`"
    )


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
    raise NotImplementedError(
        "TODO: implement query as the docstring describes, then run `make test-security2`"
    )
