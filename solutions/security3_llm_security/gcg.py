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
    length = logits.shape[1]
    if not (1 <= target.start < target.stop <= length):
        raise ValueError(
            f"target_loss: the target slice must satisfy 1 <= start < stop <= {length}, "
            f"got {target.start}:{target.stop}"
        )
    ids = input_ids.expand(logits.shape[0], -1) if input_ids.dim() == 1 else input_ids
    predicted = logits[:, target.start - 1 : target.stop - 1]
    wanted = ids[:, target].to(logits.device)
    loss = F.cross_entropy(predicted.transpose(1, 2).float(), wanted, reduction="none")
    return loss.mean(dim=1)


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
    length = input_ids.shape[0]
    if not (0 <= suffix.start < suffix.stop <= length):
        raise ValueError(
            f"token_gradients: the suffix slice must satisfy 0 <= start < stop <= {length}, "
            f"got {suffix.start}:{suffix.stop}"
        )
    weights = model.embedding.weight
    ids = input_ids.to(weights.device)
    one_hot = F.one_hot(ids[suffix], weights.shape[0]).to(weights.dtype).requires_grad_(True)
    embeds = model.embedding(ids).detach()
    embeds = torch.cat([embeds[: suffix.start], one_hot @ weights, embeds[suffix.stop :]])
    logits = model(inputs_embeds=embeds[None])
    (grad,) = torch.autograd.grad(target_loss(logits, ids, target)[0], one_hot)
    return grad.float()


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
    if k < 1 or n < 1:
        raise ValueError(f"gcg_candidates: k and n must be >= 1, got k={k}, n={n}")
    length, vocab = grad.shape
    scores = grad.detach().float().cpu().clone()
    current = suffix_ids.cpu()
    if allowed is not None:
        scores[:, ~allowed.cpu()] = float("inf")
    scores[torch.arange(length), current] = float("inf")
    usable = torch.isfinite(scores).sum(dim=1).min().item()
    if usable < k:
        raise ValueError(
            f"gcg_candidates: k={k} but some position has only {usable} allowed tokens "
            f"other than its current one"
        )
    top = scores.topk(k, dim=1, largest=False).indices  # (L, k)
    positions = torch.randint(length, (n,), generator=generator)
    choices = torch.randint(k, (n,), generator=generator)
    candidates = current.repeat(n, 1)
    candidates[torch.arange(n), positions] = top[positions, choices]
    return candidates.to(suffix_ids.device)


@torch.no_grad()
def _losses(model, batch: torch.Tensor, target: slice, batch_size: int) -> torch.Tensor:
    return torch.cat(
        [target_loss(model(input_ids=chunk), chunk, target) for chunk in batch.split(batch_size)]
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
    if batch_size < 1:
        raise ValueError(f"gcg_step: batch_size must be >= 1, got {batch_size}")
    ids = input_ids.to(model.embedding.weight.device)
    grad = token_gradients(model, ids, suffix, target)
    candidates = gcg_candidates(ids[suffix], grad, k, n, generator, allowed)
    batch = ids.repeat(n + 1, 1)
    batch[1:, suffix] = candidates
    losses = _losses(model, batch, target, batch_size)
    best = int(losses.argmin())
    if losses[best] >= losses[0]:
        best = 0
    return batch[best].clone(), float(losses[best])


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
    if suffix_len < 1:
        raise ValueError(f"gcg_attack: suffix_len must be >= 1, got {suffix_len}")
    if steps < 1:
        raise ValueError(f"gcg_attack: the budget of steps must be >= 1, got {steps}")
    target_ids = model.encode(target) if target else torch.zeros(0, dtype=torch.long)
    if len(target_ids) == 0 or model.decode(target_ids) != target:
        raise ValueError(
            f"gcg_attack: the tokenizer cannot produce the target {target!r} "
            f"(its tokens decode to {model.decode(target_ids)!r})"
        )
    bang = model.encode("!")
    ids, suffix, target_slice = model.layout(system, user, bang.repeat(suffix_len), target_ids)
    allowed = model.allowed_tokens() if allowed is None else allowed
    generator = torch.Generator().manual_seed(seed)
    initial = float(_losses(model, ids[None], target_slice, 1)[0])
    losses = []
    for _ in range(steps):
        ids, loss = gcg_step(model, ids, suffix, target_slice, k, n, generator, allowed, batch_size)
        losses.append(loss)
    return GCGResult(
        suffix_ids=ids[suffix].clone(),
        suffix=model.decode(ids[suffix]),
        input_ids=ids,
        suffix_slice=suffix,
        target_slice=target_slice,
        initial_loss=initial,
        losses=losses,
    )
