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

from __future__ import annotations

import math

import numpy as np
from scipy import special


def _check_orders(orders) -> np.ndarray:
    orders = np.atleast_1d(np.asarray(orders, dtype=np.float64))
    if orders.ndim != 1 or len(orders) == 0:
        raise ValueError(
            f"orders must be a non-empty 1-D sequence of numbers, got {orders.tolist()}"
        )
    if not bool((orders > 1).all()):
        raise ValueError(f"every RDP order must be > 1, got {orders[orders <= 1].tolist()}")
    return orders


def _log_a_integer(q: float, sigma: float, alpha: int) -> float:
    """log A_alpha for an integer order: the binomial expansion of
    E[((1 - q) + q exp((2z - 1) / (2 sigma^2)))^alpha], z ~ N(0, sigma^2)."""
    terms = [
        math.log(special.binom(alpha, k))
        + k * math.log(q)
        + (alpha - k) * math.log1p(-q)
        + (k * k - k) / (2 * sigma**2)
        for k in range(alpha + 1)
    ]
    return float(special.logsumexp(terms))


def _log_a_fractional(q: float, sigma: float, alpha: float) -> float:
    """log A_alpha for a fractional order (Mironov, Talwar and Zhang 2019,
    Section 3.3): two alternating series split at z0, summed until their terms
    are negligible."""
    z0 = sigma**2 * math.log(1 / q - 1) + 0.5
    pos0, neg0, pos1, neg1 = [], [], [], []
    k = 0
    while True:
        coef = special.binom(alpha, k)
        log_coef = math.log(abs(coef))
        j = alpha - k
        log_t0 = log_coef + k * math.log(q) + j * math.log1p(-q)
        log_t1 = log_coef + j * math.log(q) + k * math.log1p(-q)
        # log(erfc(u / (sqrt(2) sigma)) / 2) = log Phi(-u / sigma), finite far in the tail
        log_e0 = float(special.log_ndtr((z0 - k) / sigma))
        log_e1 = float(special.log_ndtr((j - z0) / sigma))
        log_s0 = log_t0 + (k * k - k) / (2 * sigma**2) + log_e0
        log_s1 = log_t1 + (j * j - j) / (2 * sigma**2) + log_e1
        (pos0 if coef > 0 else neg0).append(log_s0)
        (pos1 if coef > 0 else neg1).append(log_s1)
        k += 1
        if max(log_s0, log_s1) < -30 and k > alpha:
            break
    positive = special.logsumexp(pos0 + pos1)
    negative = special.logsumexp(neg0 + neg1) if neg0 + neg1 else -math.inf
    return float(positive + math.log1p(-math.exp(negative - positive)))


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
    if not 0 <= sample_rate <= 1:
        raise ValueError(f"sample_rate must be in [0, 1], got {sample_rate}")
    if not noise_multiplier > 0:
        raise ValueError(
            f"noise_multiplier must be positive, got {noise_multiplier} (without noise "
            f"there is no privacy to account)"
        )
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    orders = _check_orders(orders)
    q, sigma = float(sample_rate), float(noise_multiplier)
    out = np.zeros(len(orders))
    for i, alpha in enumerate(orders):
        if q == 0:
            continue
        if q == 1:
            out[i] = alpha / (2 * sigma**2)
        elif float(alpha).is_integer():
            out[i] = _log_a_integer(q, sigma, int(alpha)) / (alpha - 1)
        else:
            out[i] = _log_a_fractional(q, sigma, float(alpha)) / (alpha - 1)
    return out * steps


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
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    orders = _check_orders(orders)
    rdp = np.atleast_1d(np.asarray(rdp, dtype=np.float64))
    if rdp.shape != orders.shape:
        raise ValueError(f"rdp has {rdp.size} values but orders has {orders.size}")
    eps = (
        rdp
        + math.log(1 / delta) / (orders - 1)
        + np.log((orders - 1) / orders)
        - np.log(orders) / (orders - 1)
    )
    eps = np.where(np.isnan(eps), np.inf, eps)
    best = int(np.argmin(eps))
    return max(0.0, float(eps[best])), float(orders[best])
