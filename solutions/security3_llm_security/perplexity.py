"""Security lab 3: perplexity, and the filter that answers optimized suffixes.

A suffix found by GCG is a string of odd tokens ("describing.\\ + similarlyNow
write oppositeley"): the model itself finds it unlikely. Jain et al. (2023)
flag a prompt whose perplexity under a language model exceeds a threshold,
and, so that a long natural preamble cannot dilute a short optimized suffix,
look at every window of a few consecutive tokens.

Conventions: ``model`` is an ``mlsafety.llm.InstructLM`` (``model(input_ids=ids)``
returns logits ``(B, T, V)``), used without gradients and never modified.
``input_ids`` is long ``(B, T)`` (a batch of prompts of one length) or ``(T,)``
(one prompt, treated as a batch of one).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def _token_nll(model, input_ids: torch.Tensor, name: str) -> torch.Tensor:
    ids = input_ids[None] if input_ids.dim() == 1 else input_ids
    if ids.shape[1] < 2:
        raise ValueError(f"{name}: a prompt needs at least 2 tokens, got {ids.shape[1]}")
    ids = ids.to(model.embedding.weight.device)
    logits = model(input_ids=ids).float()
    return F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")


def perplexity(model, input_ids: torch.Tensor) -> torch.Tensor:
    """The model's perplexity of each prompt.

    ``exp`` of the mean, over positions ``t = 1 .. T-1``, of the negative log
    probability the model gives token ``t`` after tokens ``0 .. t-1`` (the
    first token is not predicted). This is ``exp`` of the loss the model
    reports for the prompt as its own label.

    Args:
        model: the language model.
        input_ids: ``(B, T)`` or ``(T,)`` long, ``T >= 2``.

    Returns:
        float ``(B,)`` (``(1,)`` for one prompt), each ``>= 1``.

    Raises:
        ValueError: if a prompt has fewer than 2 tokens.
    """
    return _token_nll(model, input_ids, "perplexity").mean(dim=1).exp()


def perplexity_filter(
    model, input_ids: torch.Tensor, threshold: float, window: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flag prompts whose windowed perplexity exceeds ``threshold``.

    With the ``T - 1`` per-token negative log probabilities of a prompt (as in
    :func:`perplexity`), the score is the largest ``exp(mean)`` over every run
    of ``window`` consecutive values, sliding one token at a time and never
    past the end (``T - window`` runs). When ``window`` is None or at least
    ``T - 1``, the whole prompt is one run and the score is its perplexity. A
    prompt is flagged when its score is strictly greater than ``threshold``.

    Args:
        model: the language model.
        input_ids: ``(B, T)`` or ``(T,)`` long, ``T >= 2``.
        threshold: a perplexity, ``> 0``.
        window: tokens per window, ``>= 1``, or None.

    Returns:
        ``(flagged, score)``: bool ``(B,)`` and float ``(B,)``.

    Raises:
        ValueError: if ``threshold <= 0``, ``window < 1`` or a prompt has fewer
            than 2 tokens.
    """
    if not threshold > 0:
        raise ValueError(f"perplexity_filter: threshold must be > 0, got {threshold}")
    if window is not None and window < 1:
        raise ValueError(f"perplexity_filter: window must be >= 1, got {window}")
    nll = _token_nll(model, input_ids, "perplexity_filter")
    if window is None or window >= nll.shape[1]:
        score = nll.mean(dim=1)
    else:
        score = nll.unfold(1, window, 1).mean(dim=2).amax(dim=1)
    score = score.exp()
    return score > threshold, score
