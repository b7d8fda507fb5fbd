"""Week 4: data augmentation for robustness (Mixup, AugMix) and the JSD consistency loss.

Conventions for every function here:

- Images are float tensors in [0, 1], shape ``(N, C, H, W)``, on any device;
  labels are int64 class indices ``(N,)``. Results are new tensors on the
  device of the input, with its dtype; inputs are never modified.
- Randomness comes only from the ``numpy.random.Generator`` passed as ``rng``
  (make one with ``numpy.random.default_rng(seed)``): its ``beta``,
  ``dirichlet``, ``permutation`` and ``integers`` are exactly the draws these
  methods need, and torch has no seeded Beta or Dirichlet sampler. The same
  seed gives the same result; the global numpy and torch generators are never
  used. Draw on the CPU and move the weights to the images' device
  (``torch.as_tensor(w, dtype=x.dtype, device=x.device)``).
- Mixing weights are per image: every image in a batch gets its own.
"""

# The imports below are for the functions you will write.
# ruff: noqa: F401

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def mixup(
    x: torch.Tensor, y: torch.Tensor, alpha: float, rng: np.random.Generator, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup (Zhang et al., 2018): train on convex combinations of pairs of examples.

    Draw, in this order, one weight per image ``lam = rng.beta(alpha, alpha,
    size=N)`` and the partners ``perm = rng.permutation(N)``. Image ``i`` is
    mixed with image ``perm[i]``, and its one-hot label with the partner's, with
    the *same* weight::

        x_mixed[i] = lam[i] * x[i] + (1 - lam[i]) * x[perm[i]]
        y_soft[i]  = lam[i] * onehot(y[i]) + (1 - lam[i]) * onehot(y[perm[i]])

    Train on the pair with a soft-label cross-entropy, for example
    ``F.cross_entropy(logits, y_soft)``.

    Args:
        x: images ``(N, C, H, W)``, float, in [0, 1].
        y: labels ``(N,)``, int64, in ``0 .. num_classes - 1``.
        alpha: concentration of the Beta distribution, ``> 0``. Small ``alpha``
            puts most weights near 0 or 1 (little mixing); ``alpha = 1`` is uniform.
        rng: ``numpy.random.Generator``, the only source of randomness.
        num_classes: the number of classes ``K``.

    Returns:
        ``(x_mixed, y_soft)``: mixed images like ``x`` (values in [0, 1]) and
        soft labels ``(N, K)`` with ``x``'s dtype and device, every row
        non-negative and summing to 1.
    """
    raise NotImplementedError(
        "TODO: implement mixup as the docstring describes, then run `make test-week4`"
    )


def augmix(
    x: torch.Tensor,
    rng: np.random.Generator,
    width: int = 3,
    depth: int = -1,
    alpha: float = 1.0,
    ops=None,
) -> torch.Tensor:
    """AugMix (Hendrycks et al., 2020): mix several chains of augmentations with the original.

    For the batch:

    1. draw, for every image, chain weights ``w[i] ~ Dirichlet(alpha, ..., alpha)``
       (``width`` of them, summing to 1: ``rng.dirichlet([alpha] * width, size=N)``)
       and a mixing weight ``m[i] ~ Beta(alpha, alpha)`` (``rng.beta``);
    2. build ``width`` chains. Each chain starts again from the original ``x``
       and applies ``d`` operations one after the other, every one picked
       uniformly at random from ``ops`` (``ops[rng.integers(len(ops))]``) and
       called as ``op(images, rng)``. With ``depth > 0``, ``d = depth``;
       otherwise every chain draws its own ``d`` uniformly from 1, 2, 3
       (``rng.integers(1, 4)``). The operations are drawn per chain for the
       whole batch, and each operation draws its own strength for every image
       (drawing the chains per image, as the original code does, is also
       correct, only slower);
    3. mix: ``mix[i] = sum_j w[i, j] * chain_j[i]`` and return
       ``(1 - m[i]) * x[i] + m[i] * mix[i]``.

    Every output is a convex combination of ``x`` and augmented copies of it,
    so it stays in [0, 1] whenever the operations do, and with operations that
    return their input unchanged it equals ``x``.

    Args:
        x: images ``(N, C, H, W)``, float, in [0, 1].
        rng: ``numpy.random.Generator``, the only source of randomness (it is
            also handed to the operations).
        width: number of chains, ``>= 1``.
        depth: operations per chain; ``-1`` (or any value ``<= 0``) draws 1 to 3
            per chain.
        alpha: concentration of the Dirichlet and Beta distributions, ``> 0``.
        ops: sequence of label-preserving operations ``op(images, rng) ->
            images``; ``None`` means :data:`AUGMIX_OPS`.

    Returns:
        A new tensor like ``x``.
    """
    raise NotImplementedError(
        "TODO: implement augmix as the docstring describes, then run `make test-week4`"
    )


def jsd_consistency(
    logits_clean: torch.Tensor, logits_aug1: torch.Tensor, logits_aug2: torch.Tensor
) -> torch.Tensor:
    """Jensen-Shannon divergence among three predictive distributions (AugMix's consistency loss).

    With ``p1, p2, p3`` the softmax distributions of the three logits (one per
    row) and ``M = (p1 + p2 + p3) / 3`` their mixture::

        JS = (KL(p1 || M) + KL(p2 || M) + KL(p3 || M)) / 3,   KL(p || q) = sum_k p_k log(p_k / q_k)

    computed per example and averaged over the batch. It is 0 when the three
    predictions agree, symmetric in its arguments, and at most ``log 3``
    (three confident predictions of three different classes). Work with
    ``log_softmax`` and ``torch.logsumexp`` so that logits of magnitude 1e4
    give no ``inf`` or ``nan``. The result is differentiable with respect to
    all three inputs (nothing is detached): AugMix trains with
    ``cross_entropy(logits_clean, y) + 12 * jsd_consistency(...)``.

    Args:
        logits_clean, logits_aug1, logits_aug2: logits ``(N, K)``, float, for the
            clean images and two AugMix views of them.

    Returns:
        A 0-dimensional tensor in ``[0, log 3]``, attached to the graph.
    """
    raise NotImplementedError(
        "TODO: implement jsd_consistency as the docstring describes, then run `make test-week4`"
    )


# --------------------------------------------------------------------------- #
# Provided: the label-preserving operations AugMix chains (not graded).
# --------------------------------------------------------------------------- #


class AugMixOp:
    """A label-preserving image operation for AugMix (provided; you do not write it).

    ``AugMixOp(kind)(x, rng)`` returns a new batch like ``x`` with values in
    [0, 1]. Every image gets its own strength ``u ~ Uniform(0, 1)`` from ``rng``
    (and, for the geometric kinds, its own direction), scaled to the kind's
    maximum in :attr:`MAXIMUM`. AugMix leaves out operations that resemble the
    test corruptions (noise, blur, contrast, brightness), so that robustness to
    them is not trained in directly.
    """

    MAXIMUM = {
        "autocontrast": 1.0,  # stretch each channel to [0, 1] (no randomness)
        "rotate": 20.0,  # degrees
        "shear_x": 0.2,  # horizontal shift per unit of height
        "shear_y": 0.2,
        "translate_x": 0.15,  # fraction of the image side
        "translate_y": 0.15,
        "posterize": 4.0,  # low bits (of 8) set to zero: 1 to 4
        "solarize": 0.3,  # values above 1 - 0.3 * u are inverted
    }

    def __init__(self, kind: str):
        if kind not in self.MAXIMUM:
            raise ValueError(f"unknown operation {kind!r}; choose from {list(self.MAXIMUM)}")
        self.kind = kind

    def __repr__(self) -> str:
        return f"AugMixOp({self.kind!r})"

    def __call__(self, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        n, top = len(x), self.MAXIMUM[self.kind]
        if self.kind == "autocontrast":
            lo = x.amin(dim=(2, 3), keepdim=True)
            hi = x.amax(dim=(2, 3), keepdim=True)
            return torch.where(hi > lo, (x - lo) / (hi - lo).clamp_min(1e-12), x)
        u = torch.as_tensor(rng.uniform(0, 1, size=n), dtype=x.dtype, device=x.device)
        if self.kind == "posterize":
            step = (2.0 ** torch.ceil(u * top).clamp(1, top)).view(-1, 1, 1, 1)  # 1 to 4 bits
            return (torch.floor(x * 255 / step) * step / 255).clamp(0, 1)
        if self.kind == "solarize":
            return torch.where(x >= (1 - top * u).view(-1, 1, 1, 1), 1 - x, x)
        sign = torch.as_tensor(rng.choice([-1.0, 1.0], size=n), dtype=x.dtype, device=x.device)
        v = sign * u * top
        one, zero = torch.ones_like(v), torch.zeros_like(v)
        if self.kind == "rotate":
            a = v * math.pi / 180
            rows = [[a.cos(), -a.sin(), zero], [a.sin(), a.cos(), zero]]
        elif self.kind == "shear_x":
            rows = [[one, v, zero], [zero, one, zero]]
        elif self.kind == "shear_y":
            rows = [[one, zero, zero], [v, one, zero]]
        elif self.kind == "translate_x":
            rows = [[one, zero, 2 * v], [zero, one, zero]]  # grid coordinates span 2
        else:
            rows = [[one, zero, zero], [zero, one, 2 * v]]
        theta = torch.stack([torch.stack(r, dim=1) for r in rows], dim=1)  # (N, 2, 3)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, padding_mode="zeros", align_corners=False).clamp(0, 1)


# The operations augmix chains by default.
AUGMIX_OPS = tuple(AugMixOp(kind) for kind in AugMixOp.MAXIMUM)
