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

from __future__ import annotations

from contextlib import contextmanager

import torch


def _check_layer(model, layer: int, name: str) -> None:
    if not 0 <= layer < len(model.layers):
        raise ValueError(f"{name}: layer must be in 0..{len(model.layers) - 1}, got {layer}")


def _replace_output(output, hidden):
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


def _hidden(output):
    return output[0] if isinstance(output, tuple) else output


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
    _check_layer(model, layer, "last_token_activations")
    if len(prompts) == 0:
        raise ValueError("last_token_activations: no prompts")
    rows = []

    def keep(_module, _inputs, output):
        rows.append(_hidden(output)[0, -1].float())

    handle = model.layers[layer].register_forward_hook(keep)
    try:
        for ids in prompts:
            model(input_ids=ids[None].to(model.embedding.weight.device))
    finally:
        handle.remove()
    return torch.stack(rows)


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
    _check_layer(model, layer, "difference_of_means")
    if len(breaking) == 0 or len(keeping) == 0:
        raise ValueError("difference_of_means: both groups of prompts must be non-empty")
    diff = last_token_activations(model, breaking, layer).mean(0) - last_token_activations(
        model, keeping, layer
    ).mean(0)
    norm = diff.norm()
    if norm == 0:
        raise ValueError("difference_of_means: the two groups have the same mean activation")
    return diff / norm


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
    _check_layer(model, layer, "add_direction")
    width = model.embedding.weight.shape[1]
    if direction.shape != (width,):
        raise ValueError(
            f"add_direction: direction must have shape ({width},), got {tuple(direction.shape)}"
        )
    shift = (alpha * direction.detach()).to(model.embedding.weight)

    def hook(_module, _inputs, output):
        return _replace_output(output, _hidden(output) + shift)

    handle = model.layers[layer].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


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
    _check_layer(model, layer, "ablate_direction")
    width = model.embedding.weight.shape[1]
    if direction.shape != (width,):
        raise ValueError(
            f"ablate_direction: direction must have shape ({width},), got {tuple(direction.shape)}"
        )
    if direction.norm() == 0:
        raise ValueError("ablate_direction: the direction is zero")
    unit = (direction.detach() / direction.norm()).to(model.embedding.weight)

    def hook(_module, _inputs, output):
        hidden = _hidden(output)
        return _replace_output(output, hidden - (hidden @ unit)[..., None] * unit)

    handle = model.layers[layer].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()
