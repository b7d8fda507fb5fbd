"""Week 6: trojans (backdoors), BadNets poisoning and Neural Cleanse detection.

Conventions for every function here:

- A *trigger* is a pair ``(mask, pattern)`` of float tensors with values in
  [0, 1] that broadcast against one image ``(C, H, W)``: typically a mask
  ``(1, H, W)`` (where the trigger is, shared by the channels) and a pattern
  ``(C, H, W)`` (what it looks like). Stamping replaces the masked pixels by
  the pattern: ``(1 - mask) * x + mask * pattern``.
- Images are float tensors ``(N, C, H, W)`` in [0, 1]; labels are int64
  ``(N,)``. Inputs are never modified in place.
- ``model`` maps images to logits ``(N, K)``. Functions use it as given: they
  never call ``model.train()``/``model.eval()``, never change its weights or
  the ``requires_grad`` flags of its parameters, and leave every parameter's
  ``.grad`` exactly as they found it.
- Randomness comes only from the ``generator`` argument (a
  ``torch.Generator``; ``None`` means torch's global generator).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MAD_CONSISTENCY = 1.4826  # 1 / Phi^-1(3/4): makes the MAD estimate sigma for normal data


def stamp_trigger(x: torch.Tensor, mask: torch.Tensor, pattern: torch.Tensor) -> torch.Tensor:
    """Stamp a trigger on images: ``(1 - mask) * x + mask * pattern``.

    Where ``mask`` is 1 the pixel becomes the pattern, where it is 0 the image
    is unchanged, and in between the two are blended. Differentiable in
    ``mask`` and ``pattern`` (Neural Cleanse optimises both through it).

    Args:
        x: images ``(N, C, H, W)`` or one image ``(C, H, W)``, float in [0, 1].
        mask: values in [0, 1], broadcastable to one image, e.g. ``(1, H, W)``.
        pattern: values in [0, 1], broadcastable to one image, e.g. ``(C, H, W)``.

    Returns:
        A new tensor of ``x``'s shape with the trigger stamped on every image;
        ``x`` is not modified.
    """
    return (1 - mask) * x + mask * pattern


def poison_dataset(
    x: torch.Tensor,
    y: torch.Tensor,
    fraction: float,
    target: int,
    mask: torch.Tensor,
    pattern: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """BadNets data poisoning (Gu et al., 2017).

    Choose ``n = floor(fraction * N)`` images (``int(fraction * len(x))``; for
    example 1 of 30 at ``fraction = 0.05``, not 2): the first ``n`` entries of
    ``torch.randperm(N, generator=generator)``, drawn among all images
    (target-class images included). Stamp the trigger on those images
    (:func:`stamp_trigger`) and relabel them ``target``. Every other image and
    label is left exactly as it was.

    Args:
        x: images ``(N, C, H, W)``, float in [0, 1].
        y: labels ``(N,)``, int64.
        fraction: share of the images to poison, in [0, 1].
        target: the label the trojan should output.
        mask, pattern: the trigger (see the module docstring).
        generator: CPU ``torch.Generator`` for the choice of images.

    Returns:
        ``(x_poisoned, y_poisoned, indices)``: new tensors like ``x`` and ``y``
        (the inputs are not modified), and the poisoned indices, an int64
        tensor of length ``n`` in increasing order, on ``x``'s device.

    Raises:
        ValueError: if ``fraction`` is not in [0, 1].
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    n = int(fraction * len(x))
    chosen = torch.randperm(len(x), generator=generator)[:n]
    indices = chosen.sort().values.to(x.device)
    x_poisoned, y_poisoned = x.clone(), y.clone()
    x_poisoned[indices] = stamp_trigger(x[indices], mask, pattern)
    y_poisoned[indices] = target
    return x_poisoned, y_poisoned, indices


def attack_success_rate(
    model,
    x: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor,
    pattern: torch.Tensor,
    target: int,
) -> float:
    """How often the trigger makes the model output ``target``.

    Among the images whose true label ``y`` is *not* ``target`` (an image of
    the target class says nothing about the trojan), the fraction that the
    model classifies as ``target`` once the trigger is stamped on them.

    Args:
        model: classifier returning logits.
        x, y: clean images ``(N, C, H, W)`` and their true labels ``(N,)``.
        mask, pattern: the trigger.
        target: the trojan's target label.

    Returns:
        A Python float in [0, 1].

    Raises:
        ValueError: if every label is ``target`` (there is nothing to measure).
    """
    keep = y != target
    if not keep.any():
        raise ValueError("every image has the target label; nothing to measure")
    with torch.no_grad():
        predicted = model(stamp_trigger(x[keep], mask, pattern)).argmax(dim=1)
    return (predicted == target).float().mean().item()


def _adam_step(params, grads, state, lr, t, betas=(0.9, 0.999), eps=1e-8):
    """One step of Adam, the same update as ``torch.optim.Adam`` (written out:
    torch.optim's first use imports its compiler stack, which costs about a
    second, longer than the whole reverse-engineering of a small model)."""
    with torch.no_grad():
        for p, g, (m, v) in zip(params, grads, state, strict=True):
            m.mul_(betas[0]).add_(g, alpha=1 - betas[0])
            v.mul_(betas[1]).addcmul_(g, g, value=1 - betas[1])
            denom = (v.sqrt() / (1 - betas[1] ** t) ** 0.5).add_(eps)
            p.addcdiv_(m, denom, value=-lr / (1 - betas[0] ** t))


def reverse_engineer_trigger(
    model,
    x: torch.Tensor,
    target: int,
    *,
    steps: int = 100,
    lr: float = 0.1,
    lam: float = 0.01,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Neural Cleanse (Wang et al., 2019): the smallest trigger that sends the
    images ``x`` to class ``target``.

    Optimise unconstrained tensors ``m`` ``(1, H, W)`` and ``p`` ``(C, H, W)``
    through ``mask = sigmoid(m)`` and ``pattern = sigmoid(p)`` (so both stay in
    [0, 1]) to minimise::

        loss = cross_entropy(model(stamp_trigger(x, mask, pattern)), target) + lam * mask.sum()

    (cross-entropy averaged over the images, plus ``lam`` times the mask's L1
    norm). Start from ``m = torch.randn((1, H, W))`` and then
    ``p = torch.randn((C, H, W))``, both drawn from ``generator`` in that order
    (on ``x``'s device, with ``x``'s dtype); take ``steps`` steps of Adam with
    learning rate ``lr`` and PyTorch's defaults (betas 0.9 and 0.999,
    eps 1e-8) on ``m`` and ``p``. The model's parameters are not optimised and
    their ``.grad`` stays as it was: take gradients with ``torch.autograd.grad``
    with respect to ``m`` and ``p`` (then ``torch.optim.Adam([m, p], lr=lr)``
    can apply them, after setting ``m.grad`` and ``p.grad``).

    A label that a trojan's trigger reaches needs a much smaller mask than the
    labels the model reaches only by repainting a large part of the image.

    Args:
        model: classifier returning logits.
        x: clean images ``(N, C, H, W)`` in [0, 1] (usually of other classes).
        target: the label to reach.
        steps: number of Adam steps, ``>= 0``.
        lr: Adam's learning rate.
        lam: weight of the mask's L1 norm, ``>= 0``.
        generator: ``torch.Generator`` on ``x``'s device for the start.

    Returns:
        ``(mask, pattern)`` after the last step: ``sigmoid(m)`` of shape
        ``(1, H, W)`` and ``sigmoid(p)`` of shape ``(C, H, W)``, values in
        [0, 1], detached, on ``x``'s device.
    """
    x = x.detach()
    _, channels, height, width = x.shape
    like = {"generator": generator, "device": x.device, "dtype": x.dtype}
    m = torch.randn((1, height, width), **like).requires_grad_(True)
    p = torch.randn((channels, height, width), **like).requires_grad_(True)
    labels = torch.full((len(x),), target, dtype=torch.long, device=x.device)
    state = [(torch.zeros_like(m), torch.zeros_like(m)), (torch.zeros_like(p), torch.zeros_like(p))]
    for t in range(1, steps + 1):
        mask, pattern = torch.sigmoid(m), torch.sigmoid(p)
        logits = model(stamp_trigger(x, mask, pattern))
        loss = F.cross_entropy(logits, labels) + lam * mask.sum()
        grads = torch.autograd.grad(loss, [m, p])
        _adam_step([m, p], grads, state, lr, t)
    return torch.sigmoid(m).detach(), torch.sigmoid(p).detach()


def mad_anomaly_index(values) -> torch.Tensor:
    """Anomaly index of each value from the median absolute deviation (MAD).

    With ``med = median(values)`` and ``MAD = median(|values - med|)``, the
    index of value ``v`` is ``|v - med| / (1.4826 * MAD)``. The constant 1.4826
    makes ``1.4826 * MAD`` estimate the standard deviation for normally
    distributed values, so the index reads like a z-score that a few outliers
    cannot inflate. The median of an even number of values is the mean of the
    two middle ones (as ``numpy.median``; note that ``torch.median`` returns the
    lower one instead). If ``MAD = 0`` the index is 0 for values equal to the
    median and ``inf`` for the others.

    Args:
        values: 1-D tensor (or sequence) of at least one number; not modified.

    Returns:
        A float64 tensor of the same length, on the same device as ``values``
        (if it is a tensor), with non-negative entries.
    """
    values = torch.as_tensor(values).to(torch.float64)
    deviation = (values - values.quantile(0.5)).abs()
    mad = deviation.quantile(0.5)
    if mad == 0:
        return torch.where(deviation == 0, 0.0, torch.inf).to(values)
    return deviation / (MAD_CONSISTENCY * mad)


def detect_trojan(mask_norms, threshold: float = 2.0) -> list[int]:
    """Neural Cleanse's decision: which labels look trojaned.

    ``mask_norms[k]`` is the L1 norm of the reverse-engineered mask for label
    ``k``. A label is flagged when its anomaly index (:func:`mad_anomaly_index`
    of all the norms) exceeds ``threshold`` (strictly: ``index > threshold``)
    *and* its norm is below the median: a trojan makes its label unusually easy
    to reach, never unusually hard.

    Args:
        mask_norms: 1-D tensor (or sequence) of one non-negative norm per label.
        threshold: anomaly index above which a label is flagged (default 2, as
            in the paper).

    Returns:
        The flagged labels as a list of Python ints in increasing order (empty
        when nothing looks trojaned).
    """
    norms = torch.as_tensor(mask_norms).to(torch.float64)
    index = mad_anomaly_index(norms)
    flagged = (index > threshold) & (norms < norms.quantile(0.5))
    return flagged.nonzero().flatten().tolist()
