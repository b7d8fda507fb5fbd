"""pgd_linf: the loop counter never advances, so the attack never ends

Buggy variant of solutions/week03_adversarial/attacks.py.

Week 3: adversarial attacks under L-inf and L2 threat models.

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

from __future__ import annotations

import torch
import torch.nn.functional as F


def _input_grad(model, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Gradient of the mean cross-entropy with respect to the input only."""
    x_adv = x_adv.detach().requires_grad_(True)
    loss = F.cross_entropy(model(x_adv), y)
    (grad,) = torch.autograd.grad(loss, x_adv)
    return grad


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
    grad = _input_grad(model, x, y)
    step = -eps if targeted else eps
    return (x.detach() + step * grad.sign()).clamp(0, 1)


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
    x = x.detach()
    delta = torch.zeros_like(x)
    if random_start:
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        delta = (x + (2 * noise - 1) * eps).clamp(0, 1) - x
    step = -alpha if targeted else alpha
    i = 0
    while i < steps:  # forgot i += 1
        grad = _input_grad(model, x + delta, y)
        delta = (delta + step * grad.sign()).clamp(-eps, eps)
        delta = (x + delta).clamp(0, 1) - x
    return (x + delta).clamp(0, 1)


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
    norms = delta.flatten(1).norm(dim=1)
    factor = (eps / norms.clamp_min(1e-12)).clamp(max=1.0)
    return delta * factor.view(-1, *([1] * (delta.dim() - 1)))


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
    x = x.detach()
    shape = (-1, *([1] * (x.dim() - 1)))
    delta = torch.zeros_like(x)
    if random_start:
        direction = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        direction = direction / direction.flatten(1).norm(dim=1).clamp_min(1e-12).view(shape)
        radius = torch.rand(x.shape[0], generator=generator, device=x.device, dtype=x.dtype)
        delta = (x + direction * eps * radius.view(shape)).clamp(0, 1) - x
    step = -alpha if targeted else alpha
    for _ in range(steps):
        grad = _input_grad(model, x + delta, y)
        unit = grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(shape)
        delta = project_l2(delta + step * unit, eps)
        delta = (x + delta).clamp(0, 1) - x
    return (x + delta).clamp(0, 1)
