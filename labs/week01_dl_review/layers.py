"""Week 1: the building blocks of a deep network, written with tensor operations.

Conventions for every function here:

- Inputs are float tensors (float32 or float64) on any device. Results are new
  tensors with the input's dtype and device. Inputs are never modified in
  place.
- Results keep the autograd graph: no ``.detach()``, no ``torch.no_grad()``,
  no ``.item()`` in the computation, so a model built from these functions
  trains with ``loss.backward()``.
- Write each formula yourself. Do not call the ``torch.nn.functional``
  function of the same name (``F.gelu``, ``F.layer_norm``,
  ``F.scaled_dot_product_attention``): the specs compare your results with it,
  and they check that you did not call it. Tensor arithmetic, ``torch.erf``,
  ``torch.tanh``, ``torch.softmax``, ``torch.sqrt``, ``F.linear`` and ``@``
  are all fine.

The classes at the end of the file are given (not graded): they hold the
parameters of a residual block, an MLP and a small CNN, and their ``forward``
methods call your functions. The notebook trains them.
"""

# The imports below are for the functions you will write.
# ruff: noqa: F401

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def gelu(x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """Gaussian Error Linear Unit (Hendrycks and Gimpel, 2016), elementwise.

    ``approximate="none"`` (the exact form): ``x * Phi(x)`` with ``Phi`` the
    standard normal CDF, that is ``0.5 * x * (1 + erf(x / sqrt(2)))``.

    ``approximate="tanh"``: the tanh approximation
    ``0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3)))``.

    Args:
        x: float tensor of any shape (a 0-dimensional tensor too).
        approximate: ``"none"`` or ``"tanh"``; anything else raises
            ``ValueError``.

    Returns:
        A tensor like ``x``. Agrees with ``F.gelu(x, approximate=...)`` to 1e-5.
    """
    raise NotImplementedError(
        "TODO: implement gelu as the docstring describes, then run `make test-week1`"
    )


def layer_norm(
    x: torch.Tensor,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Layer normalisation (Ba et al., 2016) over the last dimension.

    For every vector ``v = x[..., :]`` of length ``D``:
    ``(v - mean(v)) / sqrt(var(v) + eps)``, where ``var`` is the *biased*
    variance (divide by ``D``, not ``D - 1``) and ``eps`` sits inside the
    square root. Then, if given, multiply by ``weight`` and add ``bias``
    (the affine part, both of shape ``(D,)``).

    Args:
        x: float tensor ``(..., D)`` with at least one dimension.
        weight: ``(D,)`` scale, or None (no scaling).
        bias: ``(D,)`` shift, or None (no shift).
        eps: added to the variance, ``eps > 0``; keeps a constant vector
            finite (its output is ``bias``, or zeros).

    Returns:
        A tensor like ``x``. Agrees with ``F.layer_norm(x, (D,), weight, bias, eps)``.
    """
    raise NotImplementedError(
        "TODO: implement layer_norm as the docstring describes, then run `make test-week1`"
    )


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Scaled dot-product attention (Vaswani et al., 2017).

    ``softmax(q @ k^T / sqrt(d)) @ v``, with the softmax over the keys (the
    last dimension of the scores) and ``d`` the size of the query/key vectors
    (``q.shape[-1]``, not ``v``'s).

    With a boolean ``mask``, ``True`` means "this query may attend to this
    key" (the convention of ``F.scaled_dot_product_attention``): where the
    mask is ``False`` the score is ``-inf`` before the softmax, so that key
    gets weight exactly 0 and its value has no influence on the output.

    Args:
        q: queries ``(..., L, d)``.
        k: keys ``(..., S, d)``.
        v: values ``(..., S, dv)``.
        mask: None, or a bool tensor broadcastable to ``(..., L, S)`` (for
            example ``(L, S)`` shared by a batch, or ``(B, 1, L, S)`` shared by
            heads). Every query must be allowed at least one key.

    Returns:
        ``(..., L, dv)``, dtype and device of ``q``. Agrees with
        ``F.scaled_dot_product_attention(q, k, v, attn_mask=mask)``.
    """
    raise NotImplementedError(
        "TODO: implement scaled_dot_product_attention as the docstring describes, then run `make test-week1`"
    )


def residual_block(
    x: torch.Tensor,
    norm_weight: torch.Tensor,
    norm_bias: torch.Tensor,
    w1: torch.Tensor,
    b1: torch.Tensor,
    w2: torch.Tensor,
    b2: torch.Tensor,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Forward pass of a pre-norm residual MLP block (as in a transformer).

    ``x + linear2(gelu(linear1(layer_norm(x))))``, where

    - ``layer_norm`` is your :func:`layer_norm` over the last dimension with
      ``norm_weight``, ``norm_bias`` and ``eps``;
    - ``linear1(h) = h @ w1.T + b1`` and ``linear2(h) = h @ w2.T + b2`` (the
      ``nn.Linear`` convention: weights are ``(out_features, in_features)``);
    - ``gelu`` is your exact :func:`gelu`.

    The skip connection adds the *input* ``x`` (not its normalised version),
    and the normalisation comes *before* the MLP (pre-norm), not after the
    sum.

    Args:
        x: ``(..., D)``.
        norm_weight, norm_bias: ``(D,)``.
        w1: ``(H, D)``; b1: ``(H,)``.
        w2: ``(D, H)``; b2: ``(D,)``.
        eps: the layer norm's eps.

    Returns:
        ``(..., D)``, like ``x``.
    """
    raise NotImplementedError(
        "TODO: implement residual_block as the docstring describes, then run `make test-week1`"
    )


# --------------------------------------------------------------------------- #
# Given (not graded): modules whose forward passes call your functions.
# --------------------------------------------------------------------------- #


class ResidualBlock(nn.Module):
    """The parameters of one :func:`residual_block`: a layer norm (ones and
    zeros) and two linear layers initialised like ``nn.Linear``."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.norm_weight = nn.Parameter(torch.ones(dim))
        self.norm_bias = nn.Parameter(torch.zeros(dim))
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return residual_block(
            x,
            self.norm_weight,
            self.norm_bias,
            self.fc1.weight,
            self.fc1.bias,
            self.fc2.weight,
            self.fc2.bias,
        )


class MLP(nn.Module):
    """Flatten, a linear embedding and GELU, ``depth`` residual blocks, a final
    layer norm and a linear head. Input ``(N, ...)`` with ``in_features``
    values per example; output logits ``(N, num_classes)``."""

    def __init__(self, in_features: int, num_classes: int = 10, width: int = 128, depth: int = 2):
        super().__init__()
        self.embed = nn.Linear(in_features, width)
        self.blocks = nn.ModuleList(ResidualBlock(width, 2 * width) for _ in range(depth))
        self.norm_weight = nn.Parameter(torch.ones(width))
        self.norm_bias = nn.Parameter(torch.zeros(width))
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = gelu(self.embed(x.flatten(1)))
        for block in self.blocks:
            h = block(h)
        return self.head(layer_norm(h, self.norm_weight, self.norm_bias))


class ConvNet(nn.Module):
    """A small CNN: two stages of 3x3 convolution, layer norm over the
    channels, GELU and 2x2 max-pooling, then a linear projection, one residual
    block and a linear head. Input ``(N, in_channels, image_size,
    image_size)`` with ``image_size`` divisible by 4; output logits
    ``(N, num_classes)``."""

    def __init__(
        self, in_channels: int = 1, num_classes: int = 10, width: int = 16, image_size: int = 28
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1)
        self.norm1_weight = nn.Parameter(torch.ones(width))
        self.norm1_bias = nn.Parameter(torch.zeros(width))
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.norm2_weight = nn.Parameter(torch.ones(2 * width))
        self.norm2_bias = nn.Parameter(torch.zeros(2 * width))
        side = image_size // 4
        self.proj = nn.Linear(2 * width * side * side, 4 * width)
        self.block = ResidualBlock(4 * width, 8 * width)
        self.head = nn.Linear(4 * width, num_classes)

    @staticmethod
    def _stage(x, conv, norm_weight, norm_bias):
        h = conv(x)
        # layer_norm works on the last dimension: move the channels there and back
        h = layer_norm(h.movedim(1, -1), norm_weight, norm_bias).movedim(-1, 1)
        return F.max_pool2d(gelu(h), 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self._stage(x, self.conv1, self.norm1_weight, self.norm1_bias)
        h = self._stage(h, self.conv2, self.norm2_weight, self.norm2_bias)
        h = gelu(self.proj(h.flatten(1)))
        return self.head(self.block(h))
