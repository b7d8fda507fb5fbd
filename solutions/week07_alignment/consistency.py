"""Week 7: probes for the inconsistencies of a utility model.

A learned utility model can rank held-out pairs well and still break rules
that any utility function over *outcomes* must keep. Each function here
counts or measures one kind of break; none of them needs the model, only the
utilities or preferences it produced:

- **scope**: more of a good thing should be better ("I saved 10 people" >
  "I saved 5 people"), more of a bad thing worse;
- **framing**: two descriptions of the same outcome ("saved 200 of 600" /
  "let 400 of 600 die") should get the same utility, and so should a
  paraphrase, or the same sentence with an irrelevant detail added;
- **transitivity**: if a is preferred to b and b to c, then a is preferred
  to c; a cycle a > b > c > a cannot come from any utility function.

Conventions for every function here: inputs are anything ``numpy.asarray``
accepts (lists, numpy arrays, CPU torch tensors that do not require grad),
read as float (utilities) or bool (preferences); they are never modified.
Counts are returned as Python ints, measures as Python floats.
"""

from __future__ import annotations

import numpy as np


def monotonicity_violations(utilities, *, increasing: bool = True, pairs: str = "adjacent") -> int:
    """Count the order violations of a graded series (scope sensitivity).

    ``utilities[k]`` is the utility of the ``k``-th scenario of a series whose
    magnitude grows with ``k``, e.g. "I saved n people from a fire" for
    n = 1, 2, 5, 10, ... With ``increasing=True`` each later scenario should
    have a **strictly** higher utility than each earlier one; with
    ``increasing=False`` (a harmful act) strictly lower. A pair ``i < j``
    violates the order when ``u[j] <= u[i]`` (increasing) or ``u[j] >= u[i]``
    (decreasing): a tie is a violation, since it means the model is
    insensitive to scope there.

    Args:
        utilities: 1-D, the series' utilities in order of growing magnitude.
        increasing: the direction utility should go as the magnitude grows.
        pairs: ``"adjacent"`` compares each scenario with the next one
            (``len - 1`` comparisons); ``"all"`` compares every pair ``i < j``
            (``len * (len - 1) / 2`` comparisons; the number of discordant
            pairs behind Kendall's tau).

    Returns:
        The number of violating pairs, a Python int (0 for fewer than two
        scenarios).

    Raises:
        ValueError: ``utilities`` is not 1-D, or ``pairs`` is neither
            ``"adjacent"`` nor ``"all"``.
    """
    u = np.asarray(utilities, dtype=float)
    if u.ndim != 1:
        raise ValueError(f"monotonicity_violations: utilities must be 1-D, got shape {u.shape}")
    if pairs == "adjacent":
        later_minus_earlier = u[1:] - u[:-1]
    elif pairs == "all":
        i, j = np.triu_indices(len(u), k=1)
        later_minus_earlier = u[j] - u[i]
    else:
        raise ValueError(
            f"monotonicity_violations: pairs must be 'adjacent' or 'all', got {pairs!r}"
        )
    if not increasing:
        later_minus_earlier = -later_minus_earlier
    return int(np.count_nonzero(later_minus_earlier <= 0))


def framing_gap(u_a, u_b, *, signed: bool = False) -> float:
    """How much utility changes between two descriptions of the same scenario.

    ``u_a[i]`` and ``u_b[i]`` are the utilities of two framings of scenario
    ``i`` (gain vs loss framing, a sentence vs its paraphrase, a sentence
    without and with an irrelevant detail). For an ideal model every
    difference is 0.

    - ``signed=False``: the mean absolute gap ``mean_i |u_a[i] - u_b[i]|``,
      how far apart the framings are, whichever way;
    - ``signed=True``: the mean signed gap ``mean_i (u_a[i] - u_b[i])``,
      a systematic preference for framing ``a`` (positive) or ``b``
      (negative). Gaps of opposite signs cancel here, not in the absolute
      gap: the absolute gap is always at least the absolute signed gap.

    Args:
        u_a, u_b: 1-D utilities of the two framings, the same length (>= 1).
        signed: return the mean signed gap instead of the mean absolute one.

    Returns:
        A Python float, in the units of the utilities.

    Raises:
        ValueError: the shapes differ or there are no scenarios.
    """
    a, b = np.asarray(u_a, dtype=float), np.asarray(u_b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(
            f"framing_gap: u_a and u_b must be 1-D of the same non-zero length, got "
            f"shapes {a.shape} and {b.shape}"
        )
    gap = a - b
    return float(gap.mean() if signed else np.abs(gap).mean())


def transitivity_violations(prefers) -> int:
    """Count the cyclic triples of a preference relation.

    ``prefers[i, j]`` is True when item ``i`` is preferred to item ``j``.
    Three distinct items form a **cyclic triple** when the preferences among
    them go round in a circle: ``i > j``, ``j > k`` and ``k > i`` (in either
    direction). A utility function never produces one. Each cyclic triple is
    counted once, however its items are ordered. Triples with a missing
    preference (neither ``i > j`` nor ``j > i``, e.g. a tie) are not cycles.

    One way, vectorised: with ``A`` the 0/1 matrix of ``prefers``, the
    diagonal of ``A @ A @ A`` counts, for each item, the directed 3-cycles
    through it: each cyclic triple is counted three times in its trace.

    Args:
        prefers: a square ``(K, K)`` boolean matrix (0/1 values accepted). No
            item is preferred to itself, and ``i > j`` and ``j > i`` never
            hold together.

    Returns:
        The number of cyclic triples, a Python int between 0 and ``C(K, 3)``.

    Raises:
        ValueError: the matrix is not square, has a True on its diagonal, has
            ``prefers[i, j]`` and ``prefers[j, i]`` both True, or holds values
            other than 0/1.
    """
    p = np.asarray(prefers)
    if p.ndim != 2 or p.shape[0] != p.shape[1]:
        raise ValueError(f"transitivity_violations: prefers must be square, got shape {p.shape}")
    if not np.isin(p, (0, 1)).all():
        raise ValueError("transitivity_violations: prefers must hold booleans (or 0/1)")
    a = p.astype(np.int64)
    if np.trace(a) != 0:
        raise ValueError("transitivity_violations: an item cannot be preferred to itself")
    # off the diagonal only: an item preferred to itself is the check above
    if np.any(np.triu(a & a.T, k=1)):
        raise ValueError(
            "transitivity_violations: prefers[i, j] and prefers[j, i] are both True somewhere"
        )
    return int(np.trace(a @ a @ a)) // 3
