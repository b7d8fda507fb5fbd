"""Week 2: risk decomposition and accident models.

Conventions for every function here:

- Probabilities are floats in [0, 1]; severities are non-negative floats in
  whatever unit of harm you choose (the same unit for every hazard).
- Array arguments accept anything ``numpy.asarray`` accepts (lists, tuples,
  arrays). Inputs are never modified: no in-place sorting, no writing into
  the caller's arrays, dicts or trees.
- Scalar results are Python ``float`` (or ``int`` for FMEA risk priority
  numbers), not numpy scalars or 0-d arrays.
- Bad input (a probability outside [0, 1], a negative severity, an FMEA
  rating outside 1..10, an unknown gate) raises ``ValueError`` naming the
  problem, rather than returning a number that looks plausible.
- Randomness comes only from the ``numpy.random.Generator`` passed as ``rng``
  (make one with ``numpy.random.default_rng(seed)``). The same seed gives
  the same result; the global ``numpy.random`` state is never used.
"""

# The imports below are for the functions you will write.
# ruff: noqa: F401

from __future__ import annotations

from statistics import NormalDist

import numpy as np

GATES = ("AND", "OR")
RATING_KEYS = ("severity", "occurrence", "detection")


def expected_risk(probability, severity, exposure=1.0, vulnerability=1.0) -> float:
    """Expected harm summed over hazards: the risk decomposition.

    With one entry per hazard ``h``::

        risk = sum_h  probability[h] * severity[h] * exposure[h] * vulnerability[h]

    ``probability * severity`` is the hazard (how likely and how bad it is);
    ``exposure`` is the chance that the system actually meets the hazard and
    ``vulnerability`` the chance that it is harmed when it does. With the
    defaults (exposure = vulnerability = 1) this is the plain expected harm
    ``sum_h P(h) * severity(h)``. Lowering any one factor of a hazard lowers
    its contribution in proportion.

    Args:
        probability: ``(H,)`` probabilities of the hazards, in [0, 1].
        severity: ``(H,)`` harm if a hazard strikes, ``>= 0``.
        exposure: ``(H,)`` or a scalar in [0, 1] (broadcast to every hazard).
        vulnerability: ``(H,)`` or a scalar in [0, 1] (broadcast to every hazard).

    Returns:
        The total expected harm, a Python float ``>= 0`` (a sum over hazards,
        not a mean). No hazards gives 0.0.

    Raises:
        ValueError: a probability, exposure or vulnerability outside [0, 1], a
            negative severity, or lengths that do not broadcast.
    """
    raise NotImplementedError(
        "TODO: implement expected_risk as the docstring describes, then run `make test-week2`"
    )


def fmea_rank(modes: list[dict]) -> list[tuple[str, int]]:
    """Rank failure modes by their risk priority number (FMEA).

    Each failure mode is a dict with a ``"name"`` and three ratings, each an
    integer from 1 to 10:

    - ``"severity"``: how bad the effect is (10 = catastrophic);
    - ``"occurrence"``: how often the cause occurs (10 = almost always);
    - ``"detection"``: how *hard* it is to catch before it does harm
      (1 = almost certainly caught, 10 = almost certainly missed).

    The risk priority number is ``RPN = severity * occurrence * detection``
    (1..1000). The result lists every mode as ``(name, rpn)``, highest RPN
    first. Ties are broken by severity, higher first (of two equal RPNs, the
    worse effect comes first); modes equal in both keep their input order.

    Args:
        modes: list of dicts as above (extra keys are ignored). Not modified.

    Returns:
        ``[(name, rpn), ...]`` with ``rpn`` a Python int, one entry per mode,
        sorted as described. An empty list gives an empty list.

    Raises:
        ValueError: a rating that is not an integer in 1..10.
    """
    raise NotImplementedError(
        "TODO: implement fmea_rank as the docstring describes, then run `make test-week2`"
    )


def fault_tree_probability(tree, probabilities: dict) -> float:
    """Probability of a fault tree's top event, with independent basic events.

    A tree is either

    - a **basic event**: a string, its name, looked up in ``probabilities``; or
    - a **gate**: a tuple ``(gate, input_1, input_2, ...)`` where ``gate`` is
      ``"AND"`` or ``"OR"`` and each input is itself a tree (so gates nest to
      any depth). Lists work like tuples.

    For example ``("OR", "sensor fails", ("AND", "alarm fails", "operator asleep"))``
    happens when the sensor fails, or when both the alarm fails and the
    operator sleeps.

    Basic events are independent, so for a gate whose inputs happen with
    probabilities ``p_1 .. p_n``::

        AND: p_1 * p_2 * ... * p_n              (all inputs happen)
        OR:  1 - (1 - p_1) * ... * (1 - p_n)    (at least one happens)

    OR is *not* the sum of its inputs: the sum counts overlaps twice and can
    exceed 1. A gate with one input passes its probability through.

    The gates' inputs are independent only if no basic event appears twice in
    the tree; a repeated event is a shared cause, which these formulas get
    wrong, so it raises ``ValueError``.

    Args:
        tree: nested tuples as above. Not modified.
        probabilities: ``{event name: probability in [0, 1]}``. Not modified;
            events that are not in the tree are ignored.

    Returns:
        The top event's probability, a Python float in [0, 1].

    Raises:
        ValueError: an unknown gate, a gate without inputs, a basic event
            missing from ``probabilities`` or with a probability outside
            [0, 1], or a basic event that appears more than once.
    """
    raise NotImplementedError(
        "TODO: implement fault_tree_probability as the docstring describes, then run `make test-week2`"
    )


def layered_defence_failure(
    failure_probs, correlation: float, trials: int, rng: np.random.Generator
) -> float:
    """Monte Carlo probability that every layer of a defence fails at once.

    Swiss-cheese model with a shared cause (a one-factor Gaussian model). In
    each of ``trials`` independent trials, draw one shared factor ``S`` and,
    for every layer ``i``, its own noise ``E_i``, all standard normal, and set::

        Z_i = sqrt(correlation) * S + sqrt(1 - correlation) * E_i

    Every ``Z_i`` is standard normal and any two are correlated by exactly
    ``correlation``. Layer ``i`` fails in a trial when ``Z_i < Phi^-1(p_i)``,
    where ``Phi^-1`` is the standard normal quantile function
    (``statistics.NormalDist().inv_cdf``; use -inf for p = 0 and +inf for
    p = 1). So each layer on its own still fails with probability ``p_i``,
    whatever the correlation; only how failures line up changes.

    The estimate is the fraction of trials in which *all* layers fail. With
    ``correlation = 0`` the layers are independent and the estimate
    approaches ``prod(p_i)``; with ``correlation = 1`` they fail together and
    it approaches ``min(p_i)``; in between it rises with the correlation.

    Args:
        failure_probs: ``(L,)`` each layer's failure probability, in [0, 1],
            ``L >= 1``.
        correlation: in [0, 1], the correlation between any two layers' ``Z``.
        trials: number of Monte Carlo trials, ``>= 1``.
        rng: the ``numpy.random.Generator`` every draw comes from. The same
            seed gives the same estimate.

    Returns:
        The fraction of trials in which every layer failed: a Python float,
        a multiple of ``1 / trials``, in [0, 1].

    Raises:
        ValueError: a probability (nan included) or correlation outside
            [0, 1], no layers, or ``trials < 1``.
    """
    raise NotImplementedError(
        "TODO: implement layered_defence_failure as the docstring describes, then run `make test-week2`"
    )
