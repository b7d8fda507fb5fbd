"""Security lab 1: the privacy accountant of DP-SGD, in Renyi differential privacy.

One DP-SGD step is a *sampled Gaussian mechanism*: a batch drawn by Poisson
sampling with rate ``q``, its clipped gradients summed, Gaussian noise of
standard deviation ``sigma * C`` added. Renyi differential privacy (RDP,
Mironov 2017) at order ``alpha`` composes by addition over steps, and a
conversion turns the RDP curve into the familiar ``(epsilon, delta)``.

Conventions for every function here:

- ``sample_rate`` is ``q`` in [0, 1], ``noise_multiplier`` is ``sigma > 0``
  (the noise's std divided by the clipping bound), ``steps`` counts DP-SGD
  steps.
- ``orders`` is a sequence (list, tuple or 1-D array) of RDP orders
  ``alpha > 1``, integer or fractional.
- Results are numpy float64 arrays or Python floats; nothing is random.
"""

# The imports below are for the functions you will write.
# ruff: noqa: F401

from __future__ import annotations

import math

import numpy as np
from scipy import special


def rdp_subsampled_gaussian(
    sample_rate: float, noise_multiplier: float, steps: int, orders
) -> np.ndarray:
    """RDP of ``steps`` DP-SGD steps, at each order: the sampled Gaussian
    mechanism (Mironov, Talwar and Zhang 2019) composed ``steps`` times.

    For one step at order ``alpha`` the RDP is ``log(A_alpha) / (alpha - 1)``
    with ``A_alpha = E_{z ~ N(0, sigma^2)}[((1 - q) + q exp((2z - 1) /
    (2 sigma^2)))^alpha]``. For an integer ``alpha`` it is the finite sum

        ``A_alpha = sum_{k=0}^{alpha} binom(alpha, k) (1 - q)^(alpha - k) q^k
        exp((k^2 - k) / (2 sigma^2))``;

    for a fractional ``alpha`` it is the two-series expansion of Section 3.3
    of the paper (binomials of a fractional order alternate in sign; each
    series is weighted by half an ``erfc``). Sum in log space
    (``scipy.special.logsumexp``): the terms overflow a float64 long before the
    result does. Special cases: ``q = 0`` gives 0 (no example is ever used);
    ``q = 1`` is the plain Gaussian mechanism, ``alpha / (2 sigma^2)``. RDP
    composes by addition, so ``steps`` steps give ``steps`` times the one-step
    value (0 for ``steps = 0``).

    Args:
        sample_rate: ``q`` in [0, 1].
        noise_multiplier: ``sigma > 0``.
        steps: number of steps, ``>= 0``.
        orders: the orders ``alpha > 1`` (see the module docstring).

    Returns:
        ``np.ndarray`` float64 of shape ``(len(orders),)``: the RDP epsilon
        at each order, in the order given; non-decreasing in ``alpha``.

    Raises:
        ValueError: if ``sample_rate`` is not in [0, 1], ``noise_multiplier``
            is not positive, ``steps`` is negative, an order is not > 1, or
            ``orders`` is empty or not one-dimensional.
    """
    raise NotImplementedError(
        "TODO: implement rdp_subsampled_gaussian as the docstring describes, then run `make test-security1`"
    )


def epsilon_from_rdp(rdp, orders, delta: float) -> tuple[float, float]:
    """Convert an RDP curve to ``(epsilon, delta)``-DP: the best order wins.

    At order ``alpha``, RDP ``r`` implies ``(epsilon_alpha, delta)``-DP with
    (Balle et al. 2020, Theorem 21; the conversion Opacus uses)

        ``epsilon_alpha = r + log(1 / delta) / (alpha - 1)
        + log((alpha - 1) / alpha) - log(alpha) / (alpha - 1)``,

    which is never larger than the classic ``r + log(1 / delta) / (alpha - 1)``
    (Mironov 2017). Return the smallest ``epsilon_alpha`` over the given orders
    and the order that attains it. An infinite ``r``
    gives an infinite ``epsilon_alpha``; the minimum is never below 0
    (``max(0, ...)``: a negative epsilon means nothing).

    Args:
        rdp: RDP epsilons, one per order (as :func:`rdp_subsampled_gaussian`
            returns them).
        orders: the orders ``alpha > 1`` they were computed at.
        delta: ``0 < delta < 1``; usually below ``1 / dataset size``.

    Returns:
        ``(epsilon, alpha)``: two Python floats.

    Raises:
        ValueError: if ``delta`` is not in (0, 1), an order is not > 1,
            ``orders`` is empty or not one-dimensional, or ``rdp`` and
            ``orders`` have different lengths.
    """
    raise NotImplementedError(
        "TODO: implement epsilon_from_rdp as the docstring describes, then run `make test-security1`"
    )
