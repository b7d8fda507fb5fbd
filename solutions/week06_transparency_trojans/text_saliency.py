"""Week 6: token saliency for a text classifier, over the input embeddings.

A language model never sees characters: the tokenizer cuts a sentence into
tokens ("I", "saved", "5", ...) and the model's first layer turns each token
into a vector, its **input embedding**. Those vectors are the continuous input
that gradients can flow into, so a text heat map explains the score through
them and then adds up each token's vector to a single number per token.

- **Gradient x input** (Shrikumar et al., 2016; Denil et al., 2014): for token
  ``t`` of sentence ``i``, ``sum_e (d score_i / d e_{i,t,e}) * e_{i,t,e}``, the
  first-order estimate of how much the score owes to that token's embedding.
- **Integrated gradients** (Sundararajan et al., 2017) over the input
  embeddings: the gradient averaged along the straight path from a baseline
  (the zero vector, or the padding token's embedding) to the sentence's
  embeddings, times ``(embeds - baseline)``, summed over the embedding
  dimensions. The attributions of a sentence then add up to
  ``f(embeds) - f(baseline)`` (completeness).

Conventions for every function here:

- ``model(embeds, mask)`` maps input embeddings ``(N, T, E)`` (float) and an
  attention mask ``(N, T)`` (1 for a real token, 0 for padding) to logits
  ``(N, K)``; for example ``mlsafety.encoder.TextClassifier``, a linear head on
  the MiniLM encoder. Padding positions have no influence on the logits.
  Functions use the model as given: they never call ``model.train()`` /
  ``model.eval()``, never change its weights or ``requires_grad`` flags, and
  leave every parameter's ``.grad`` as they found it (take gradients with
  ``torch.autograd.grad`` with respect to the embeddings, not ``.backward()``).
- ``embeds`` is never modified, and its ``requires_grad`` flag is left as it
  was: differentiate a detached copy. ``mask`` is the same for every point of
  an integration path (only the embeddings move).
- ``target`` is the class whose score is explained: a Python int (the same
  class for every sentence) or an int64 tensor ``(N,)``. The score is the
  target's **logit** (before the softmax).
- Token attributions are new ``(N, T)`` tensors, detached, on ``embeds``'s
  device with its dtype: one number per token, the embedding dimensions
  summed. Padding positions get exactly 0. Positive values mean "evidence for
  the target class".
"""

from __future__ import annotations

import torch


def _scores(logits: torch.Tensor, target) -> torch.Tensor:
    """The target class's entry of each row of ``logits``: shape ``(N,)``."""
    target = torch.as_tensor(target, device=logits.device)
    if target.dim() == 0:
        target = target.expand(logits.shape[0])
    return logits.gather(1, target.view(-1, 1)).squeeze(1)


def _check(embeds: torch.Tensor, mask) -> None:
    if embeds.dim() != 3 or tuple(mask.shape) != tuple(embeds.shape[:2]):
        raise ValueError(
            f"need embeds (N, T, E) and mask (N, T), got {tuple(embeds.shape)} and "
            f"{tuple(mask.shape)}"
        )


def _embedding_grad(model, embeds: torch.Tensor, mask, target) -> torch.Tensor:
    """Gradient of each sentence's target logit with respect to its embeddings."""
    embeds = embeds.detach().requires_grad_(True)
    # Sentences are independent, so the gradient of the summed scores gives
    # every sentence the gradient of its own score.
    (grad,) = torch.autograd.grad(_scores(model(embeds, mask), target).sum(), embeds)
    return grad


def _per_token(values: torch.Tensor, mask) -> torch.Tensor:
    """Sum over the embedding dimensions; padding positions set to exactly 0."""
    return values.sum(-1) * (torch.as_tensor(mask, device=values.device) != 0).to(values.dtype)


def token_gradient_x_input(model, embeds: torch.Tensor, mask, target) -> torch.Tensor:
    """Gradient x input per token: ``sum_e (d score / d embeds) * embeds``.

    For each sentence ``i`` and token ``t``, the dot product of the token's
    input embedding with the gradient of sentence ``i``'s target logit with
    respect to that embedding. Padding positions get 0.

    For a model whose logits are linear in the summed embeddings of the real
    tokens, ``logits = W (sum_t mask_t * embeds_t) + b``, the attribution of
    token ``t`` is ``embeds[i, t] . W[target]``.

    Args:
        model: maps ``(embeds, mask)`` to logits ``(N, K)``.
        embeds: input embeddings ``(N, T, E)``, float.
        mask: attention mask ``(N, T)``, 1 for real tokens and 0 for padding.
        target: class index (int) or int64 tensor ``(N,)``.

    Returns:
        A detached ``(N, T)`` tensor with ``embeds``'s dtype and device.

    Raises:
        ValueError: ``embeds`` is not 3-D or ``mask`` is not ``(N, T)``.
    """
    _check(embeds, mask)
    grad = _embedding_grad(model, embeds, mask, target)
    return _per_token(grad * embeds.detach(), mask)


def token_integrated_gradients(
    model,
    embeds: torch.Tensor,
    mask,
    target,
    *,
    baseline: torch.Tensor | None = None,
    steps: int = 50,
) -> torch.Tensor:
    """Integrated gradients over the input embeddings, per token (right Riemann sum).

    Along the straight path from ``baseline`` to ``embeds``, average the
    gradient of the target logit at the ``steps`` points
    ``baseline + (k / steps) * (embeds - baseline)`` for ``k = 1, ..., steps``
    (the baseline itself is not evaluated, ``embeds`` is), all with the same
    ``mask``; multiply element-wise by ``(embeds - baseline)`` and sum over the
    embedding dimensions::

        IG[i, t] = sum_e (embeds - baseline)[i, t, e] * (1 / steps) * sum_k grad[k][i, t, e]

    Padding positions get 0. Completeness: the attributions of a sentence add
    up to ``f(embeds) - f(baseline)`` (its target logit at the embeddings minus
    at the baseline, same mask), exactly for a model linear in the embeddings
    and up to an error that shrinks like ``1 / steps`` for a smooth one (see
    :func:`completeness_gap`). For ``logits = W (sum_t mask_t * embeds_t) + b``
    it is ``(embeds - baseline)[i, t] . W[target]`` at any ``steps``.

    Args:
        model, embeds, mask, target: as in :func:`token_gradient_x_input`.
        baseline: the reference embeddings, broadcastable to ``embeds``: one
            vector ``(E,)`` for every token (the padding token's embedding, for
            instance) or a full ``(N, T, E)``; ``None`` means all zeros.
        steps: number of points on the path, ``>= 1``.

    Returns:
        A detached ``(N, T)`` tensor with ``embeds``'s dtype and device.

    Raises:
        ValueError: ``steps < 1``, or the shapes are wrong (as in
            :func:`token_gradient_x_input`).
    """
    _check(embeds, mask)
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    x = embeds.detach()
    start = torch.zeros_like(x) if baseline is None else baseline.detach().to(x).expand_as(x)
    diff = x - start
    total = torch.zeros_like(x)
    for k in range(1, steps + 1):
        total += _embedding_grad(model, start + (k / steps) * diff, mask, target)
    return _per_token(diff * (total / steps), mask)


def completeness_gap(
    model,
    embeds: torch.Tensor,
    mask,
    target,
    attributions: torch.Tensor,
    *,
    baseline: torch.Tensor | None = None,
) -> torch.Tensor:
    """How far each sentence's attributions are from adding up to the score change.

    ``gap[i] = sum_t attributions[i, t] - (f(embeds)[i] - f(baseline)[i])``,
    where ``f`` is the target logit (same ``mask`` at both ends). Integrated
    gradients make it 0 in the limit of many steps; gradient x input does not
    promise it. A positive gap means the attributions claim more than the
    score changed.

    Args:
        model, embeds, mask, target: as in :func:`token_gradient_x_input`.
        attributions: ``(N, T)`` token attributions (padding entries included
            in the sum as given; they are 0 for this module's methods).
        baseline: as in :func:`token_integrated_gradients` (``None``: zeros).

    Returns:
        A detached ``(N,)`` tensor with ``embeds``'s dtype and device. No
        gradients are needed.

    Raises:
        ValueError: ``attributions`` is not ``(N, T)``, or the shapes of
            ``embeds`` and ``mask`` are wrong.
    """
    _check(embeds, mask)
    if tuple(attributions.shape) != tuple(embeds.shape[:2]):
        raise ValueError(
            f"attributions must be (N, T) = {tuple(embeds.shape[:2])}, got "
            f"{tuple(attributions.shape)}"
        )
    x = embeds.detach()
    start = torch.zeros_like(x) if baseline is None else baseline.detach().to(x).expand_as(x)
    with torch.no_grad():
        change = _scores(model(x, mask), target) - _scores(model(start, mask), target)
    return (attributions.detach().to(x).sum(1) - change).detach()
