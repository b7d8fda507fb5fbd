"""Week 8: scoring and combining probabilistic forecasts of yes/no questions.

A forecast is a probability that an event happens ("will this model pass the
benchmark by June?"); the outcome is 1 if it happened and 0 if not. A
**scoring rule** turns forecasts and outcomes into a number, and it is
**proper** when a forecaster expects the best score by reporting what they
actually believe: if the event has probability ``q``, reporting ``p = q``
beats every other report on average. Both rules here are proper (strictly).

Conventions for every function here:

- ``forecasts`` are probabilities in [0, 1] (of the outcome being 1);
  ``outcomes`` are 0/1 (ints, floats or bools). Anything ``numpy.asarray``
  accepts works: lists, numpy arrays, CPU torch tensors.
- Computation is in float64. Scalars are returned as Python floats, arrays as
  new float64 numpy arrays. Inputs are never modified.
- Shapes must match exactly (no broadcasting); a mismatch, an empty input, a
  forecast outside [0, 1] or an outcome other than 0/1 raises ``ValueError``.
- **Orientation**: the Brier score is a loss (lower is better); the log score
  is a log-likelihood (higher is better). Keep the two apart when you compare.
"""

from __future__ import annotations

import numpy as np


def _forecasts_and_outcomes(function: str, forecasts, outcomes) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(forecasts, dtype=np.float64)
    o = np.asarray(outcomes, dtype=np.float64)
    if p.shape != o.shape:
        raise ValueError(f"{function}: forecasts {p.shape} and outcomes {o.shape} differ in shape")
    if p.size == 0:
        raise ValueError(f"{function}: no forecasts")
    if not np.all((p >= 0) & (p <= 1)):  # also refuses NaN
        raise ValueError(f"{function}: forecasts must be probabilities in [0, 1]")
    if not np.all((o == 0) | (o == 1)):
        raise ValueError(f"{function}: outcomes must be 0 or 1")
    return p, o


def brier_score(forecasts, outcomes) -> float:
    """Mean Brier score of binary forecasts (Brier, 1950). Lower is better.

    ``Brier = mean_i (p_i - o_i)^2``

    over all forecasts (any shape, averaged over every element). 0 is a
    perfect, certain forecaster; always saying 0.5 scores 0.25; a certain
    forecaster who is always wrong scores 1. This is the binary form: one
    squared error per question (the multiclass form of week 5 sums over both
    classes and is twice this).

    Args:
        forecasts: probabilities in [0, 1], any shape.
        outcomes: 0/1, the same shape.

    Returns:
        A Python float in [0, 1].

    Raises:
        ValueError: see the module docstring (shapes, empty, ranges).
    """
    p, o = _forecasts_and_outcomes("brier_score", forecasts, outcomes)
    return float(np.mean((p - o) ** 2))


def log_score(forecasts, outcomes, *, eps: float = 1e-12) -> float:
    """Mean logarithmic score of binary forecasts. **Higher is better.**

    ``log score = mean_i [ o_i ln(p_i) + (1 - o_i) ln(1 - p_i) ]``

    the mean **natural** log of the probability the forecaster gave to what
    actually happened (the log-likelihood of the outcomes per question; the
    negative of the binary cross-entropy, or "log loss"). It is <= 0: 0 for a
    certain, correct forecaster, ``ln(0.5) = -0.693`` for always saying 0.5.

    A forecast of exactly 0 or 1 that turns out wrong would score
    ``ln(0) = -inf``. To keep the score finite, forecasts are first clipped
    to ``[eps, 1 - eps]``: such a forecast then scores ``ln(eps)``
    (``-27.6`` for the default ``eps = 1e-12``), a heavy but finite penalty.

    Args:
        forecasts: probabilities in [0, 1], any shape.
        outcomes: 0/1, the same shape.
        eps: clipping of the forecasts, ``0 < eps < 0.5``.

    Returns:
        A Python float, ``<= 0``.

    Raises:
        ValueError: see the module docstring, or ``eps`` out of range.
    """
    if not 0 < eps < 0.5:
        raise ValueError(f"log_score: eps must be in (0, 0.5), got {eps}")
    p, o = _forecasts_and_outcomes("log_score", forecasts, outcomes)
    p = np.clip(p, eps, 1 - eps)
    return float(np.mean(o * np.log(p) + (1 - o) * np.log1p(-p)))


def calibration_table(
    forecasts, outcomes, bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-bin mean forecast, observed frequency and count: a reliability diagram.

    The forecasts are sorted into ``bins`` equal-width bins over [0, 1],
    **closed on the right** as in week 5: bin ``b`` (0-based) holds the
    forecasts in ``(b / bins, (b + 1) / bins]``, and a forecast of exactly 0
    goes in bin 0 (the edges are ``numpy.linspace(0, 1, bins + 1)``). With
    ``S_b`` the forecasts in bin ``b``:

    - ``mean_forecast[b]`` = mean of the forecasts in ``S_b``;
    - ``frequency[b]`` = fraction of ``S_b`` whose outcome was 1;
    - ``count[b]`` = ``|S_b|``.

    A calibrated forecaster has ``frequency ≈ mean_forecast`` in every bin
    (of its 70% forecasts, about 70% come true). An **empty bin** has count 0
    and ``NaN`` mean forecast and frequency (nothing was observed there;
    matplotlib leaves NaN points out of a plot).

    Args:
        forecasts: probabilities in [0, 1], any shape (flattened).
        outcomes: 0/1, the same shape.
        bins: number of bins, an int ``>= 1``.

    Returns:
        ``(mean_forecast, frequency, count)``: numpy arrays of shape
        ``(bins,)``, float64, float64 and int64; ``count.sum()`` is the
        number of forecasts.

    Raises:
        ValueError: see the module docstring, or ``bins`` is not an integer
            ``>= 1`` (``2.5`` is refused, not truncated).
    """
    if int(bins) != bins or bins < 1:
        raise ValueError(f"calibration_table: bins must be an integer >= 1, got {bins}")
    bins = int(bins)
    p, o = _forecasts_and_outcomes("calibration_table", forecasts, outcomes)
    p, o = p.ravel(), o.ravel()
    edges = np.linspace(0, 1, bins + 1)
    # side="left" gives i with edges[i-1] < p <= edges[i]; p = 0 gives 0, clipped into bin 0
    index = np.clip(np.searchsorted(edges, p, side="left") - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):  # empty bins: 0 / 0 = NaN
        mean_forecast = np.bincount(index, weights=p, minlength=bins) / count
        frequency = np.bincount(index, weights=o, minlength=bins) / count
    return mean_forecast, frequency, count.astype(np.int64)


def aggregate_forecasts(
    forecasts, method: str = "geo_mean_odds", *, extremize: float = 1.0, eps: float = 1e-6
) -> np.ndarray:
    """Combine several forecasters' probabilities into one per question.

    ``forecasts[f, q]`` is forecaster ``f``'s probability for question ``q``.
    For each question (column), over the forecasters (rows):

    - ``"mean"``: the arithmetic mean of the probabilities;
    - ``"median"``: their median (``numpy.median``: the mean of the two middle
      values for an even number of forecasters);
    - ``"geo_mean_odds"``: the geometric mean of the **odds**
      ``p / (1 - p)``, turned back into a probability: with
      ``logit(p) = ln(p / (1 - p))``, the aggregate is
      ``sigmoid(mean_f logit(p_fq))``. (Not the geometric mean of the
      probabilities, which is biased towards 0 and is not symmetric:
      aggregating ``1 - p`` would not give ``1 - aggregate``.)

    Then, for every method, the aggregate ``a`` is **extremized** with the
    exponent ``extremize`` on its odds: ``odds -> odds ** extremize``, that is
    ``a -> sigmoid(extremize * logit(a))``. ``extremize = 1`` changes
    nothing; ``> 1`` pushes the aggregate away from 0.5 (forecasters who each
    hold part of the evidence are together more certain than any one of them);
    ``< 1`` pulls it towards 0.5.

    Probabilities are clipped to ``[eps, 1 - eps]`` wherever a logit is taken
    (for ``"geo_mean_odds"``, and before extremizing when ``extremize != 1``),
    so forecasts of exactly 0 or 1 give finite logits. With ``extremize = 1``
    the mean and median are returned unclipped.

    Args:
        forecasts: ``(F, Q)`` probabilities in [0, 1], ``F >= 1`` forecasters
            (rows), ``Q >= 1`` questions (columns).
        method: ``"mean"``, ``"median"`` or ``"geo_mean_odds"`` (default).
        extremize: exponent on the odds, ``> 0``.
        eps: clipping before logits, ``0 < eps < 0.5``.

    Returns:
        A new float64 numpy array of shape ``(Q,)``, values in [0, 1].

    Raises:
        ValueError: ``forecasts`` is not 2-D or is empty, a forecast is
            outside [0, 1], ``method`` is unknown, ``extremize <= 0`` or
            ``eps`` out of range.
    """
    p = np.asarray(forecasts, dtype=np.float64)
    if p.ndim != 2 or p.size == 0:
        raise ValueError(
            f"aggregate_forecasts: forecasts must be (forecasters, questions), got shape {p.shape}"
        )
    if not np.all((p >= 0) & (p <= 1)):
        raise ValueError("aggregate_forecasts: forecasts must be probabilities in [0, 1]")
    if not extremize > 0:
        raise ValueError(f"aggregate_forecasts: extremize must be > 0, got {extremize}")
    if not 0 < eps < 0.5:
        raise ValueError(f"aggregate_forecasts: eps must be in (0, 0.5), got {eps}")

    def logit(x):
        x = np.clip(x, eps, 1 - eps)
        return np.log(x) - np.log1p(-x)

    def sigmoid(z):
        return 1 / (1 + np.exp(-z))

    if method == "mean":
        aggregate = p.mean(axis=0)
    elif method == "median":
        aggregate = np.median(p, axis=0)
    elif method == "geo_mean_odds":
        aggregate = sigmoid(logit(p).mean(axis=0))
    else:
        raise ValueError(
            f"aggregate_forecasts: method must be 'mean', 'median' or 'geo_mean_odds', got {method!r}"
        )
    if extremize != 1:
        aggregate = sigmoid(extremize * logit(aggregate))
    return aggregate
