"""Week 6: saliency maps, feature attribution and a sanity check for them.

Conventions for every function here:

- ``model`` maps float images ``(N, C, H, W)`` to logits ``(N, K)``. Functions
  use it as given: they never call ``model.train()``/``model.eval()``, never
  change its weights or the ``requires_grad`` flags of its parameters, and
  leave every parameter's ``.grad`` exactly as they found it (take gradients
  with ``torch.autograd.grad`` with respect to the input, not ``.backward()``).
- ``x`` is a float tensor of images ``(N, C, H, W)`` on any device. It is never
  modified, and its ``requires_grad`` flag is left as it was: differentiate a
  detached copy.
- ``target`` is the class whose score is explained: a Python int (the same class
  for every image) or an int64 tensor ``(N,)`` with one class per image.
- The score is the target class's **logit** (before the softmax) unless a
  function says otherwise.
- Attributions are new tensors, detached from the graph, on ``x``'s device,
  with ``x``'s dtype. Positive values mean "evidence for the target class".
"""

from __future__ import annotations

import copy
import math

import torch


def _scores(logits: torch.Tensor, target) -> torch.Tensor:
    """The target class's entry of each row of ``logits``: shape ``(N,)``."""
    target = torch.as_tensor(target, device=logits.device)
    if target.dim() == 0:
        target = target.expand(logits.shape[0])
    return logits.gather(1, target.view(-1, 1)).squeeze(1)


def _input_grad(model, x: torch.Tensor, target, output: str = "logit") -> torch.Tensor:
    """Gradient of each image's target score with respect to that image."""
    x = x.detach().requires_grad_(True)
    out = model(x)
    if output == "probability":
        out = out.softmax(dim=1)
    # Summing over the batch gives every image the gradient of its own score:
    # the model treats images independently, so the cross terms vanish.
    (grad,) = torch.autograd.grad(_scores(out, target).sum(), x)
    return grad


def gradient_saliency(
    model, x: torch.Tensor, target, *, absolute: bool = False, output: str = "logit"
) -> torch.Tensor:
    """Vanilla gradient saliency (Simonyan et al., 2014).

    The gradient of each image's target score with respect to that image:
    ``d score_i / d x_i``, where the score is the target class's logit
    (``output="logit"``, the default) or its softmax probability
    (``output="probability"``). The logit is the usual choice: the gradient of
    a probability also depends on every other class and vanishes when the
    model is confident.

    Args:
        model: classifier returning logits ``(N, K)``.
        x: images ``(N, C, H, W)``, float.
        target: class index (int) or int64 tensor ``(N,)`` of class indices.
        absolute: return ``|gradient|`` instead of the signed gradient.
        output: ``"logit"`` or ``"probability"``; anything else raises
            ``ValueError``.

    Returns:
        A tensor like ``x`` (shape, dtype, device), detached. For a linear model
        ``logits = W x.flatten() + b`` it is row ``W[target]``, reshaped like an
        image.

    Raises:
        ValueError: if ``output`` is neither ``"logit"`` nor ``"probability"``.
    """
    if output not in ("logit", "probability"):
        raise ValueError(f"output must be 'logit' or 'probability', got {output!r}")
    grad = _input_grad(model, x, target, output)
    return grad.abs() if absolute else grad


def smoothgrad(
    model,
    x: torch.Tensor,
    target,
    *,
    n_samples: int = 25,
    sigma: float = 0.15,
    absolute: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """SmoothGrad (Smilkov et al., 2017): gradient saliency averaged over noisy copies.

    For ``s = 1 .. n_samples``, add Gaussian noise ``eps_s ~ N(0, sigma^2)``
    (independently for every sample, image and pixel) to ``x`` and take the
    gradient of the target logit at ``x + eps_s``; return the mean of the
    ``n_samples`` gradients (of their absolute values with ``absolute=True``,
    i.e. the mean of the absolute maps, not the absolute value of the mean).
    The noisy images are not clamped.

    ``sigma`` is the noise's standard deviation in the units of ``x``, not a
    fraction of each image's range. For images in [0, 1] the two are the same:
    the paper's recommended 10-20% of the range is ``sigma`` = 0.1 to 0.2.

    Args:
        model, x, target: as in :func:`gradient_saliency`.
        n_samples: number of noisy copies, ``>= 1``.
        sigma: noise standard deviation, ``>= 0`` (0 gives the plain gradient).
        absolute: average ``|gradient|`` instead of the signed gradient.
        generator: ``torch.Generator`` on ``x``'s device for the noise
            (``None``: torch's global generator). The same seeded generator gives
            the same result.

    Returns:
        A tensor like ``x``, detached.

    Raises:
        ValueError: if ``n_samples < 1``.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}")
    total = torch.zeros_like(x)
    for _ in range(n_samples):
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        grad = _input_grad(model, x.detach() + sigma * noise, target)
        total += grad.abs() if absolute else grad
    return total / n_samples


def integrated_gradients(
    model, x: torch.Tensor, target, *, baseline: torch.Tensor | None = None, steps: int = 50
) -> torch.Tensor:
    """Integrated gradients (Sundararajan et al., 2017), right Riemann sum.

    Along the straight path from ``baseline`` to ``x``, average the gradient
    of the target logit at the ``steps`` points
    ``baseline + (k / steps) * (x - baseline)`` for ``k = 1, ..., steps`` (the
    right Riemann rule: the baseline itself is not evaluated, ``x`` is), then
    multiply element-wise by ``(x - baseline)``::

        IG = (x - baseline) * (1 / steps) * sum_k grad f(baseline + k/steps * (x - baseline))

    Completeness: the attributions of an image sum to
    ``f(x) - f(baseline)`` (its target logit at ``x`` minus at the baseline),
    exactly for a linear model and up to an error that shrinks like
    ``1 / steps`` for a smooth one. For a linear model
    ``IG = (x - baseline) * W[target]`` at any ``steps``.

    Args:
        model, x, target: as in :func:`gradient_saliency`.
        baseline: the reference input, broadcastable to ``x`` (e.g. one image
            ``(C, H, W)``); ``None`` means all zeros (a black image).
        steps: number of points on the path, ``>= 1``.

    Returns:
        A tensor like ``x``, detached.

    Raises:
        ValueError: if ``steps < 1``.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    x = x.detach()
    baseline = torch.zeros_like(x) if baseline is None else baseline.detach().to(x)
    diff = x - baseline
    total = torch.zeros_like(x)
    for k in range(1, steps + 1):
        total += _input_grad(model, baseline + (k / steps) * diff, target)
    return diff * (total / steps)


def occlusion_map(
    model,
    x: torch.Tensor,
    target,
    *,
    patch: int = 4,
    stride: int | None = None,
    fill: float = 0.0,
) -> torch.Tensor:
    """Occlusion sensitivity (Zeiler and Fergus, 2014): how much the target
    logit drops when a square patch of the image is covered.

    Slide a ``patch x patch`` window over the image with step ``stride``
    (default: ``patch``, non-overlapping): its top-left corner takes every
    position ``(i * stride, j * stride)`` with the window inside the image
    (``i * stride + patch <= H``, same for the width). For each position, set
    the window to ``fill`` in every channel and record
    ``drop = logit(x) - logit(x_occluded)`` for the target class (positive:
    covering this region removes evidence for the target). Each pixel's value
    is the mean drop over the windows that cover it; pixels that no window
    covers get 0.

    Args:
        model, x, target: as in :func:`gradient_saliency`.
        patch: window side in pixels, ``1 <= patch <= min(H, W)``.
        stride: step between windows, ``>= 1``; ``None`` means ``patch``.
        fill: value written into the window (0.0: black).

    Returns:
        A tensor ``(N, H, W)`` (one value per pixel position, shared by the
        channels) with ``x``'s dtype and device. No gradients are needed.

    Raises:
        ValueError: if ``patch`` is not in ``1 .. min(H, W)`` or ``stride < 1``.
    """
    stride = patch if stride is None else stride
    n, _, height, width = x.shape
    if not (1 <= patch <= min(height, width)) or stride < 1:
        raise ValueError(f"need 1 <= patch <= {min(height, width)} and stride >= 1")
    x = x.detach()
    drops = torch.zeros(n, height, width, dtype=x.dtype, device=x.device)
    counts = torch.zeros(height, width, dtype=x.dtype, device=x.device)
    with torch.no_grad():
        clean = _scores(model(x), target)
        for top in range(0, height - patch + 1, stride):
            for left in range(0, width - patch + 1, stride):
                covered = x.clone()
                covered[:, :, top : top + patch, left : left + patch] = fill
                drop = clean - _scores(model(covered), target)
                drops[:, top : top + patch, left : left + patch] += drop.view(n, 1, 1)
                counts[top : top + patch, left : left + patch] += 1
    return drops / counts.clamp_min(1)


def _layers(model) -> list[tuple[str, torch.nn.Module]]:
    """Modules that own parameters directly, in ``named_modules()`` order."""
    return [
        (name, module)
        for name, module in model.named_modules()
        if any(True for _ in module.parameters(recurse=False))
    ]


def randomize_layers(model, layers, *, generator: torch.Generator | None = None):
    """A copy of ``model`` with some layers re-initialised at random, for the
    model-randomisation sanity check of saliency maps (Adebayo et al., 2018).

    A *layer* is a module that owns parameters itself (for ``SmallCNN``: its
    ``Conv2d`` and ``Linear`` layers), in the order of ``model.named_modules()``,
    which for a sequential network is the order of the forward pass.

    ``layers`` picks the layers to re-initialise: an int ``k`` means the last
    ``k`` layers (``k = 0``: none; the cascading check randomises from the
    output backwards), a list of names means the modules of those names in
    ``named_modules()`` (an unknown name, or a module without parameters,
    raises ``ValueError``).

    Every parameter of a chosen layer (weight and bias) is redrawn uniformly
    on ``[-b, b]`` with ``b = 1 / sqrt(fan_in)`` and
    ``fan_in = weight[0].numel()`` (inputs per output unit: ``in_features`` of
    a ``Linear``, ``in_channels * kh * kw`` of a ``Conv2d``): PyTorch's default
    initialisation of those layers. All draws come from ``generator``.

    Args:
        model: any ``torch.nn.Module``; it is not modified.
        layers: int ``k >= 0`` or a list of module names.
        generator: ``torch.Generator`` on the model's device (``None``: torch's
            global generator). The same seeded generator gives the same copy.

    Returns:
        A new module (a deep copy, in the same train/eval mode, on the same
        device, with the same ``requires_grad`` flags) whose chosen layers are
        re-initialised and whose other parameters equal the original's.

    Raises:
        ValueError: if an int ``layers`` is not in ``0 .. number of layers``, or
            a name is unknown or names a module without parameters.
    """
    found = _layers(model)
    if isinstance(layers, int):
        if not 0 <= layers <= len(found):
            raise ValueError(f"layers must be in [0, {len(found)}], got {layers}")
        chosen = [name for name, _ in found[len(found) - layers :]]
    else:
        names = [name for name, _ in found]
        unknown = [name for name in layers if name not in names]
        if unknown:
            raise ValueError(f"no layer with parameters named {unknown}; layers: {names}")
        chosen = list(layers)
    copied = copy.deepcopy(model)
    modules = dict(copied.named_modules())
    with torch.no_grad():
        for name in chosen:
            module = modules[name]
            fan_in = module.weight[0].numel()
            bound = 1.0 / math.sqrt(fan_in)
            for param in module.parameters(recurse=False):
                draw = torch.rand(
                    param.shape, generator=generator, device=param.device, dtype=param.dtype
                )
                param.copy_((2 * draw - 1) * bound)
    return copied
