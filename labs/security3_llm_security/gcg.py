"""Security lab 3: jailbreak optimization with Greedy Coordinate Gradient.

GCG (Zou et al., 2023) searches for a suffix of tokens that, appended to the
user's message, makes the model begin its answer with a chosen target string
(here: the guarded assistant revealing its secret). Each step takes the
gradient of the target loss with respect to a one-hot encoding of the suffix,
keeps for every suffix position the k tokens whose gradient promises the
largest decrease, tries n random single-token swaps among them and keeps the
best.

Conventions for every function here:

- ``model`` is an ``mlsafety.llm.InstructLM`` (or anything alike):
  ``model(input_ids=ids)`` and ``model(inputs_embeds=e)`` return logits
  ``(B, T, V)``; ``model.embedding`` is its ``nn.Embedding``. Its parameters
  are frozen and its weights are never changed, nor given a ``.grad``.
- ``input_ids`` is a 1-D LongTensor ``(T,)`` of one prompt laid out by
  ``model.layout``: ``suffix`` and ``target`` are slices of it (Python
  ``slice`` objects with a start and a stop, ``suffix`` before ``target``).
- The loss at a position is the cross-entropy of the logits one position
  earlier against the token there: logits at ``t - 1`` predict token ``t``.
- Inputs are never modified in place; results are new tensors on the model's
  device.
"""

# The imports below are for the functions you will write.
# ruff: noqa: F401

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


def target_loss(logits: torch.Tensor, input_ids: torch.Tensor, target: slice) -> torch.Tensor:
    """The mean cross-entropy of the target tokens, one value per sequence.

    For each sequence b, the mean over positions ``t`` in ``target`` of
    ``cross_entropy(logits[b, t - 1], input_ids[b, t])``: the model is scored
    on predicting the target, never on the prompt before it.

    Args:
        logits: ``(B, T, V)`` float.
        input_ids: ``(B, T)`` or ``(T,)`` (then shared by every sequence) long.
        target: the target's positions, ``1 <= target.start < target.stop <= T``.

    Returns:
        float ``(B,)``, differentiable with respect to ``logits``.

    Raises:
        ValueError: if the target slice is empty, starts before position 1 or
            ends past ``T``.
    """
    raise NotImplementedError(
        "TODO: implement target_loss as the docstring describes, then run `make test-security3`"
    )


def token_gradients(model, input_ids: torch.Tensor, suffix: slice, target: slice) -> torch.Tensor:
    """The gradient of the target loss with respect to the one-hot suffix.

    The suffix tokens are written as a one-hot matrix ``(L, V)`` (L suffix
    tokens, V the vocabulary size); their embeddings are that matrix times the
    embedding weights, every other token's embedding is its row of the weights.
    The model runs on these embeddings and :func:`target_loss` of its logits is
    differentiated with respect to the one-hot matrix only. Entry ``[i, v]``
    says how the loss changes, to first order, when position ``i`` of the
    suffix moves towards token ``v``: the most negative entries are the most
    promising swaps.

    Args:
        model: the language model (not modified; no parameter gets a grad).
        input_ids: ``(T,)`` long, the prompt laid out with its suffix and target.
        suffix: the suffix's positions.
        target: the target's positions.

    Returns:
        float32 ``(L, V)`` on the model's device, not normalized.

    Raises:
        ValueError: if the suffix slice is empty or does not lie within
            ``input_ids``.
    """
    raise NotImplementedError(
        "TODO: implement token_gradients as the docstring describes, then run `make test-security3`"
    )


def gcg_candidates(
    suffix_ids: torch.Tensor,
    grad: torch.Tensor,
    k: int,
    n: int,
    generator: torch.Generator,
    allowed: torch.Tensor | None = None,
) -> torch.Tensor:
    """n candidate suffixes, each the current one with one token swapped.

    For each position ``i``, the candidate tokens are the ``k`` tokens with the
    smallest ``grad[i]`` among the allowed ones, never the token already at
    ``i``, in order of increasing gradient. Each candidate then draws, from
    ``generator`` and in this order, the positions of all n candidates
    (``torch.randint(L, (n,))``) and then which of that position's k tokens
    each takes (``torch.randint(k, (n,))``), so the same generator state gives
    the same candidates.

    Args:
        suffix_ids: ``(L,)`` long, the current suffix.
        grad: ``(L, V)``, from :func:`token_gradients`.
        k: tokens kept per position, ``>= 1``.
        n: candidates to make, ``>= 1``.
        generator: a CPU ``torch.Generator``.
        allowed: optional bool ``(V,)``: the tokens a suffix may use (e.g.
            ``model.allowed_tokens()``); None allows every token.

    Returns:
        long ``(n, L)`` on the device of ``suffix_ids``; row ``j`` differs from
        ``suffix_ids`` at exactly one position, with an allowed token.

    Raises:
        ValueError: if ``k < 1`` or ``n < 1``, or if fewer than ``k`` allowed
            tokens differ from the current one at some position.
    """
    raise NotImplementedError(
        "TODO: implement gcg_candidates as the docstring describes, then run `make test-security3`"
    )


def gcg_step(
    model,
    input_ids: torch.Tensor,
    suffix: slice,
    target: slice,
    k: int,
    n: int,
    generator: torch.Generator,
    allowed: torch.Tensor | None = None,
    batch_size: int = 64,
) -> tuple[torch.Tensor, float]:
    """One step of GCG: gradients, n candidates, keep the best.

    Computes :func:`token_gradients`, makes n candidates with
    :func:`gcg_candidates` (same ``k``, ``generator`` and ``allowed``), scores
    each full prompt with :func:`target_loss` (in batches of ``batch_size``,
    without gradients) and returns the prompt with the lowest loss. When no
    candidate beats the current prompt, the current prompt is returned: a step
    never increases the loss.

    Args:
        model, input_ids, suffix, target: as in :func:`token_gradients`.
        k, n, generator, allowed: as in :func:`gcg_candidates`.
        batch_size: candidates scored per forward pass, ``>= 1``.

    Returns:
        ``(ids, loss)``: the new prompt ``(T,)`` (a new tensor, the same length,
        differing from ``input_ids`` at most inside ``suffix``) and its target
        loss as a Python float.

    Raises:
        ValueError: if ``batch_size < 1`` (and as :func:`gcg_candidates` does).
    """
    raise NotImplementedError(
        "TODO: implement gcg_step as the docstring describes, then run `make test-security3`"
    )


@dataclass
class GCGResult:
    """What :func:`gcg_attack` found.

    ``suffix_ids``/``suffix``: the best suffix as ids and as text;
    ``input_ids``, ``suffix_slice``, ``target_slice``: the best prompt and where
    the suffix and the target sit in it; ``initial_loss``: the target loss of
    the starting suffix; ``losses``: the best loss after each step.
    """

    suffix_ids: torch.Tensor
    suffix: str
    input_ids: torch.Tensor
    suffix_slice: slice
    target_slice: slice
    initial_loss: float
    losses: list[float] = field(default_factory=list)


def gcg_attack(
    model,
    system: str,
    user: str,
    target: str,
    suffix_len: int = 10,
    steps: int = 50,
    k: int = 64,
    n: int = 128,
    seed: int = 0,
    allowed: torch.Tensor | None = None,
    batch_size: int = 64,
) -> GCGResult:
    """GCG: a suffix for ``user`` that makes the model begin its answer with ``target``.

    The suffix starts as ``suffix_len`` copies of the token ``"!"``; the prompt
    is ``model.layout(system, user, suffix_ids, model.encode(target))``.
    Each of the ``steps`` steps is one :func:`gcg_step` with a generator
    seeded once with ``seed`` (so a run is reproducible) and ``allowed``
    defaulting to ``model.allowed_tokens()``.

    Args:
        model: the language model.
        system, user: the system prompt and the user's message.
        target: the text the answer should begin with, e.g. "The staff door code is".
        suffix_len: number of suffix tokens, ``>= 1``.
        steps: the budget, in GCG steps, ``>= 1``.
        k, n, batch_size: as in :func:`gcg_step`.
        seed: seeds the generator of the candidates.
        allowed: the tokens the suffix may use (default: printable ASCII).

    Returns:
        A :class:`GCGResult`; ``losses`` has one entry per step, never
        increasing, each ``<= initial_loss``.

    Raises:
        ValueError: if ``target`` is empty or the tokenizer cannot produce it
            (decoding its tokens does not give it back), if
            ``suffix_len < 1``, or if ``steps < 1``.
    """
    raise NotImplementedError(
        "TODO: implement gcg_attack as the docstring describes, then run `make test-security3`"
    )
