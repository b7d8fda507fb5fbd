"""Security lab 3 (stretch): a rule-breaking direction in the residual stream.

Requests that try to make the assistant break its rule and matched requests
that keep within it differ, at a middle layer, along roughly one direction:
the difference of the two groups' mean activations. Adding that direction to
the residual stream pushes the model towards one behaviour; projecting it out
(ablation) removes what the model reads from it.

Conventions: ``model`` is an ``mlsafety.llm.InstructLM``: ``model.layers`` are
its decoder blocks (0-based), each mapping the residual stream ``(B, T, d)`` to
the next. "The residual stream after layer ``l``" is the hidden state that
block ``l`` outputs. Prompts are 1-D LongTensors of token ids, e.g.
``model.encode(model.chat_text(system, request))``. Weights are never changed.
"""

# The imports below are for the functions you will write.
# ruff: noqa: F401

from __future__ import annotations

from contextlib import contextmanager

import torch


@torch.no_grad()
def last_token_activations(model, prompts: list[torch.Tensor], layer: int) -> torch.Tensor:
    """The residual stream after ``layer`` at the last token of each prompt.

    Args:
        model: the language model.
        prompts: a non-empty list of ``(T_i,)`` long tensors (lengths may differ).
        layer: a decoder block index, ``0 <= layer < len(model.layers)``.

    Returns:
        float32 ``(N, d)`` on the model's device, one row per prompt.

    Raises:
        ValueError: if ``prompts`` is empty or ``layer`` is out of range.
    """
    raise NotImplementedError(
        "TODO: implement last_token_activations as the docstring describes, then run `make test-security3`"
    )


def difference_of_means(
    model, breaking: list[torch.Tensor], keeping: list[torch.Tensor], layer: int
) -> torch.Tensor:
    """The unit direction from rule-keeping to rule-breaking prompts.

    ``mean(last_token_activations(breaking)) - mean(last_token_activations(keeping))``,
    divided by its Euclidean norm.

    Args:
        model: the language model.
        breaking: prompts that try to make the model break its rule.
        keeping: matched prompts that keep within it.
        layer: the decoder block whose output is read.

    Returns:
        float32 ``(d,)`` with norm 1, on the model's device.

    Raises:
        ValueError: if either group is empty (checked before any prompt is
            run), ``layer`` is out of range, or the two means coincide (no
            direction).
    """
    raise NotImplementedError(
        "TODO: implement difference_of_means as the docstring describes, then run `make test-security3`"
    )


@contextmanager
def add_direction(model, layer: int, direction: torch.Tensor, alpha: float):
    """While the ``with`` block runs, add ``alpha * direction`` to the residual
    stream after ``layer``, at every position of every prompt.

    The hook is removed when the block ends, also when it raises; the model's
    weights never change.

    Args:
        model: the language model.
        layer: the decoder block whose output is changed.
        direction: float ``(d,)`` (used as given, not normalized).
        alpha: the scale; negative values push the other way.

    Raises:
        ValueError: if ``layer`` is out of range or ``direction`` is not ``(d,)``
            for the model's width d.
    """
    raise NotImplementedError(
        "TODO: implement add_direction as the docstring describes, then run `make test-security3`"
    )


@contextmanager
def ablate_direction(model, layer: int, direction: torch.Tensor):
    """While the ``with`` block runs, project ``direction`` out of the residual
    stream after ``layer``: each hidden vector h becomes ``h - (h . u) u`` with
    ``u = direction / |direction|``, at every position.

    The hook is removed when the block ends, also when it raises; the model's
    weights never change.

    Raises:
        ValueError: if ``layer`` is out of range, ``direction`` is not ``(d,)``
            or it is zero.
    """
    raise NotImplementedError(
        "TODO: implement ablate_direction as the docstring describes, then run `make test-security3`"
    )
