"""Week 3: adversarial attacks under L-inf and L2 threat models.

Conventions for every function here:

- ``model`` maps float images to logits ``(N, C)``. Attacks use it as given:
  they never call ``model.train()``/``model.eval()``, never update its
  parameters and leave every parameter's ``.grad`` exactly as they found it
  (use ``torch.autograd.grad`` with respect to the input, not ``.backward()``).
- ``x`` is a float tensor of images in [0, 1], shape ``(N, C, H, W)``, on any
  device; ``y`` holds int64 class indices ``(N,)``. For targeted attacks ``y``
  holds the *target* classes.
- The loss is the cross-entropy of the model's logits against ``y``.
  Untargeted attacks ascend it (make the true class less likely); targeted
  attacks descend it (make the target class more likely).
- Results are new tensors with the shape, dtype and device of ``x``, values in
  [0, 1], detached from the graph. ``x`` itself is never modified.
"""

# The imports below are for the functions you will write.
# ruff: noqa: F401

from __future__ import annotations

import torch
import torch.nn.functional as F


def fgsm(
    model, x: torch.Tensor, y: torch.Tensor, eps: float, *, targeted: bool = False
) -> torch.Tensor:
    """Fast Gradient Sign Method (Goodfellow et al., 2015): one signed step.

    Untargeted: ``x + eps * sign(grad_x loss(model(x), y))``; targeted: the
    same step with a minus sign (towards the target ``y``). The result is
    clamped to [0, 1].

    Args:
        model: classifier returning logits ``(N, C)``.
        x: images ``(N, C, H, W)``, float, in [0, 1].
        y: labels ``(N,)``, int64 (target classes if ``targeted``).
        eps: L-inf budget, ``eps >= 0``; ``eps = 0`` returns ``x`` unchanged.
        targeted: descend the loss towards ``y`` instead of ascending it.

    Returns:
        Adversarial images, same shape/dtype/device as ``x``, with
        ``max |x_adv - x| <= eps`` and values in [0, 1].
    """
    raise NotImplementedError(
        "TODO: implement fgsm as the docstring describes, then run `make test-week3`"
    )


def pgd_linf(
    model,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    alpha: float,
    steps: int,
    *,
    targeted: bool = False,
    random_start: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Projected Gradient Descent in the L-inf ball (Madry et al., 2018).

    Start from ``x`` (or, with ``random_start``, from ``x + delta`` with every
    entry of ``delta`` drawn uniformly from ``[-eps, eps]`` using ``generator``,
    then clamped so the image stays in [0, 1]). Then ``steps`` times:

    1. take a signed gradient step of size ``alpha`` (ascend the loss, or
       descend it when ``targeted``);
    2. project back onto the ball: every entry of ``x_adv - x`` in ``[-eps, eps]``;
    3. clamp the image to [0, 1].

    Projection and clamping happen after *every* step, not only at the end.

    Args:
        model, x, y, targeted: as in :func:`fgsm`.
        eps: L-inf radius, ``eps >= 0``.
        alpha: step size, ``alpha > 0``.
        steps: number of steps, ``steps >= 0`` (0 returns the start point).
        random_start: start from a uniform random point of the ball.
        generator: ``torch.Generator`` on ``x``'s device for the random start
            (``None``: torch's global generator). The same seeded generator
            gives the same result.

    Returns:
        Adversarial images like ``x`` with ``max |x_adv - x| <= eps`` per
        sample and values in [0, 1].
    """
    raise NotImplementedError(
        "TODO: implement pgd_linf as the docstring describes, then run `make test-week3`"
    )


def project_l2(delta: torch.Tensor, eps: float) -> torch.Tensor:
    """Project each sample of ``delta`` onto the L2 ball of radius ``eps``.

    For every sample ``i`` (first dimension), with ``n_i`` the L2 norm of
    ``delta[i]`` over all its other dimensions: ``delta[i]`` is returned
    unchanged if ``n_i <= eps`` and scaled by ``eps / n_i`` otherwise. Norms
    are per sample, never over the whole batch. All-zero samples stay zero
    (no NaN).

    Args:
        delta: perturbations ``(N, ...)``, float, any device.
        eps: radius, ``eps >= 0``.

    Returns:
        A new tensor like ``delta``; ``delta`` is not modified.
    """
    raise NotImplementedError(
        "TODO: implement project_l2 as the docstring describes, then run `make test-week3`"
    )


def pgd_l2(
    model,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    alpha: float,
    steps: int,
    *,
    targeted: bool = False,
    random_start: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Projected Gradient Descent in the L2 ball.

    Like :func:`pgd_linf`, but each step moves every sample by ``alpha`` along
    its own *normalised* gradient ``g_i / ||g_i||_2`` (norm per sample; a zero
    gradient gives a zero step), then projects each sample's perturbation onto
    the L2 ball of radius ``eps`` (:func:`project_l2`) and clamps the image to
    [0, 1], after every step.

    With ``random_start``, the start is ``x + delta`` where, per sample, a
    standard normal direction (from ``generator``) is normalised to unit L2
    norm and scaled by ``eps * u`` with ``u ~ Uniform(0, 1)`` (also from
    ``generator``), then clamped so the image stays in [0, 1].

    Returns:
        Adversarial images like ``x`` with ``||x_adv[i] - x[i]||_2 <= eps`` for
        every sample and values in [0, 1].
    """
    raise NotImplementedError(
        "TODO: implement pgd_l2 as the docstring describes, then run `make test-week3`"
    )
