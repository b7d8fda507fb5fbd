"""Week 2: long tails, black swans, and how a few events dominate totals.

Conventions for every function here:

- Randomness comes only from the ``numpy.random.Generator`` passed as ``rng``
  (make one with ``numpy.random.default_rng(seed)``). The same seed gives the
  same result, a different seed a different one, and the global
  ``numpy.random`` state (``np.random.seed``, ``np.random.rand``, ...) is never
  used.
- Data arguments accept anything ``numpy.asarray`` accepts and are read as
  1-D float arrays. They are never modified: sort a copy (``np.sort(x)``),
  never ``x.sort()`` in place.
- Array results are new ``float64`` numpy arrays; scalar results are Python
  floats.
- Bad arguments (a tail index ``alpha <= 0``, ``k`` out of range, a fraction
  ``q`` outside (0, 1]) raise ``ValueError``.

Pareto (type I) with tail index ``alpha > 0`` and scale ``x_min > 0`` has
survival function ``P(X > x) = (x_min / x) ** alpha`` for ``x >= x_min``. Its
``p``-th moment is finite only when ``p < alpha``: the smaller ``alpha``, the
longer the tail.
"""

# The imports below are for the functions you will write.
# ruff: noqa: F401

from __future__ import annotations

import math

import numpy as np


def sample_pareto(alpha: float, size, rng: np.random.Generator, x_min: float = 1.0) -> np.ndarray:
    """Draw Pareto (type I) samples by inverting the survival function.

    With ``U`` uniform on (0, 1], ``X = x_min * U ** (-1 / alpha)`` has
    ``P(X > x) = (x_min / x) ** alpha`` for ``x >= x_min``. Draw ``U`` as
    ``1 - rng.random(size)`` (``rng.random`` is uniform on [0, 1), so ``U`` is
    never 0). Note that ``rng.pareto`` is *not* this distribution: it samples
    the Lomax (Pareto II) distribution, which starts at 0; Pareto I is
    ``x_min * (1 + rng.pareto(alpha))``.

    Args:
        alpha: tail index, ``> 0``.
        size: output shape, an int or a tuple of ints (as for ``rng.random``).
        rng: the ``numpy.random.Generator`` to draw from.
        x_min: scale, the smallest possible value, ``> 0``.

    Returns:
        A ``float64`` array of shape ``size``, every value ``>= x_min``.

    Raises:
        ValueError: ``alpha <= 0`` or ``x_min <= 0``.
    """
    raise NotImplementedError(
        "TODO: implement sample_pareto as the docstring describes, then run `make test-week2`"
    )


def hill_estimator(x, k: int) -> float:
    """Hill's estimate of the tail index ``alpha`` from the ``k`` largest values.

    Sort the data in *decreasing* order, ``X_(1) >= X_(2) >= ... >= X_(n)``.
    The ``k`` largest values are the tail; the ``(k+1)``-th largest,
    ``X_(k+1)``, is the threshold where the tail starts::

        gamma = (1 / k) * sum_{i=1..k} ( log X_(i) - log X_(k+1) )
        alpha_hat = 1 / gamma

    For Pareto data ``log(X / threshold)`` above a threshold is exponential
    with mean ``1 / alpha``, so ``alpha_hat`` estimates ``alpha``; its
    standard error is about ``alpha / sqrt(k)``. The estimate does not depend
    on the order of ``x`` or on its unit (multiplying ``x`` by a constant).
    If the ``k + 1`` largest values are all equal, ``gamma = 0`` and the
    result is ``inf``.

    Args:
        x: ``(n,)`` positive data. Not modified.
        k: number of top order statistics used, ``1 <= k <= n - 1``.

    Returns:
        ``alpha_hat``, a Python float.

    Raises:
        ValueError: ``k`` outside ``1 .. n - 1`` or a value ``<= 0``.
    """
    raise NotImplementedError(
        "TODO: implement hill_estimator as the docstring describes, then run `make test-week2`"
    )


def max_to_sum_ratio(x, p: float = 1.0) -> np.ndarray:
    """Running max-to-sum ratio of ``|x| ** p``: is the ``p``-th moment finite?

    For ``n = 1 .. N``::

        R_n = max(|x_1|**p, ..., |x_n|**p) / (|x_1|**p + ... + |x_n|**p)

    so ``R_1 = 1`` and every ``R_n`` lies in (0, 1]. By the law of large
    numbers, ``R_n -> 0`` when ``E|X|**p`` is finite (light tails: normal,
    exponential, Pareto with ``alpha > p``). When it is infinite (Pareto with
    ``alpha < p``), ``R_n`` does not go to 0: single observations keep
    carrying a sizeable share of the total.

    Args:
        x: ``(N,)`` data, any sign (the absolute value is taken). Not modified.
        p: the moment, ``> 0``.

    Returns:
        A ``float64`` array ``(N,)`` of ``R_1 .. R_N``. Positions where every
        value so far is 0 are ``nan`` (0 / 0).

    Raises:
        ValueError: ``p <= 0``.
    """
    raise NotImplementedError(
        "TODO: implement max_to_sum_ratio as the docstring describes, then run `make test-week2`"
    )


def multiplicative_process(
    n_paths: int, n_steps: int, sigma: float, rng: np.random.Generator
) -> np.ndarray:
    """Paths that *multiply* random factors: the road to extremistan.

    Draw all shocks at once, ``Z = rng.standard_normal((n_paths, n_steps))``,
    and turn them into positive factors with mean 1,
    ``G = exp(sigma * Z - sigma**2 / 2)``. Every path starts at 1 and is
    multiplied by its next factor at every step::

        X_0 = 1,   X_t = X_{t-1} * G_t

    So ``log X_t`` is normal with mean ``-t * sigma**2 / 2`` and standard
    deviation ``sigma * sqrt(t)``: ``E[X_t] = 1`` for every ``t``, yet the
    typical (median) path shrinks like ``exp(-t * sigma**2 / 2)`` and the mean
    is carried by a few huge paths.

    Args:
        n_paths: number of independent paths, ``>= 1``.
        n_steps: number of steps, ``>= 0``.
        sigma: volatility of the log-factors, ``>= 0`` (0 gives constant paths).
        rng: the ``numpy.random.Generator`` the shocks come from.

    Returns:
        ``float64`` array ``(n_paths, n_steps + 1)``; column 0 is the start
        (all ones) and column ``t`` is ``X_t``. Every value is positive.

    Raises:
        ValueError: ``n_paths < 1``, ``n_steps < 0`` or ``sigma < 0``.
    """
    raise NotImplementedError(
        "TODO: implement multiplicative_process as the docstring describes, then run `make test-week2`"
    )


def additive_process(
    n_paths: int, n_steps: int, sigma: float, rng: np.random.Generator
) -> np.ndarray:
    """Paths that *add* the same random factors: mediocristan.

    The shocks are drawn and turned into factors exactly as in
    :func:`multiplicative_process` (``Z = rng.standard_normal((n_paths,
    n_steps))``, ``G = exp(sigma * Z - sigma**2 / 2)``), but every path starts
    at 0 and *adds* its next factor at every step::

        X_0 = 0,   X_t = X_{t-1} + G_t

    so ``X_t`` is a sum of ``t`` independent positive factors with mean 1 and
    variance ``exp(sigma**2) - 1``: ``E[X_t] = t`` and, by the central limit
    theorem, the values crowd around ``t`` with thin tails. With the same
    ``rng`` state, the increments of this process are exactly the factors that
    :func:`multiplicative_process` multiplies.

    Args:
        n_paths, n_steps, sigma, rng: as in :func:`multiplicative_process`.

    Returns:
        ``float64`` array ``(n_paths, n_steps + 1)``; column 0 is the start
        (all zeros) and column ``t`` is ``X_t``.

    Raises:
        ValueError: ``n_paths < 1``, ``n_steps < 0`` or ``sigma < 0``.
    """
    raise NotImplementedError(
        "TODO: implement additive_process as the docstring describes, then run `make test-week2`"
    )


def top_share(x, q: float) -> float:
    """Share of the total held by the largest ``q`` fraction of the values.

    Take the ``k`` largest values, where ``k`` is the smallest whole number
    with ``k >= q * n`` (``q * n = 2.5`` gives ``k = 3``; round ``q * n`` to 9
    decimals first so that ``0.1 * 30`` counts as exactly 3), and return
    their sum divided by the sum of all values. ``q = 1`` gives 1.0. For a
    thin-tailed sample the top 1% hold a little over 1% of the total; for a
    long-tailed one they can hold most of it. For Pareto data with
    ``alpha > 1`` the share approaches ``q ** (1 - 1 / alpha)`` as ``n``
    grows; for exponential data, ``q * (1 - log q)``.

    Args:
        x: ``(n,)`` non-negative values with a positive sum. Not modified.
        q: the top fraction, ``0 < q <= 1``.

    Returns:
        The share, a Python float in (0, 1].

    Raises:
        ValueError: ``q`` outside (0, 1], no data, a negative value, or a
            total of 0.
    """
    raise NotImplementedError(
        "TODO: implement top_share as the docstring describes, then run `make test-week2`"
    )
