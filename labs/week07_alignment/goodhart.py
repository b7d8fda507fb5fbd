"""Week 7: proxy gaming, measured with best-of-n sampling.

"When a measure becomes a target, it ceases to be a good measure"
(Goodhart's law, as put by Strathern). Best-of-n is the simplest optimizer of
a reward: draw ``n`` candidates and keep the one the **proxy** reward likes
best. Its strength grows with ``n`` (the kept candidate is about
``log n - (n - 1) / n`` nats of KL away from the sampling distribution), so
plotting the **true** reward of the kept candidate against ``n`` shows what
optimizing the proxy does to the thing we actually care about (Gao et al.,
2022, "Scaling Laws for Reward Model Overoptimization").

Conventions for every function here: rewards are anything ``numpy.asarray``
accepts, read as float arrays and never modified; results are new ``float64``
numpy arrays. Randomness comes only from the ``numpy.random.Generator``
passed as ``rng``.
"""

# The imports below are for the functions you will write.
# ruff: noqa: F401

from __future__ import annotations

import numpy as np


def best_of_n(proxy_rewards, true_rewards, n: int) -> np.ndarray:
    """Select, in each group of ``n`` candidates, the one the proxy likes best.

    Candidates come in consecutive groups: group ``g`` holds candidates
    ``g * n, ..., g * n + n - 1``. In each group take the candidate with the
    highest **proxy** reward (on a tie, the first of the tied ones, as
    ``argmax`` does) and report its **true** reward: what the selection
    actually achieved, not what the proxy promised.

    Args:
        proxy_rewards: ``(M,)`` proxy rewards of the candidates.
        true_rewards: ``(M,)`` true rewards of the same candidates.
        n: group size, ``>= 1``, dividing ``M``.

    Returns:
        A ``float64`` array of shape ``(M // n,)``: the true reward of the
        selected candidate of each group.

    Raises:
        ValueError: the shapes differ or are not 1-D, ``n < 1``, or ``n``
            does not divide ``M``.
    """
    raise NotImplementedError(
        "TODO: implement best_of_n as the docstring describes, then run `make test-week7`"
    )


def overoptimization_curve(
    sample, proxy, true, ns, trials: int, rng: np.random.Generator
) -> np.ndarray:
    """True reward of best-of-n under ``proxy``, averaged over trials, for each ``n``.

    1. Draw every candidate at once: ``pool = sample(rng, trials * max(ns))``;
       trial ``t`` owns candidates ``t * max(ns)`` to ``(t + 1) * max(ns) - 1``.
    2. Score them once: ``proxy(pool)`` and ``true(pool)``, each ``(trials * max(ns),)``.
    3. For each ``n`` in ``ns``, best-of-``n`` of trial ``t`` selects among
       the **first** ``n`` candidates of trial ``t`` (with :func:`best_of_n`);
       average its true reward over the trials.

    The pools are nested: best-of-``2n`` sees the same candidates as
    best-of-``n`` and ``n`` more. So with a perfect proxy (``proxy = true``)
    the curve can only go up with ``n``, trial by trial; any drop comes from
    the proxy being wrong where the selection pushes.

    Args:
        sample: ``sample(rng, m)`` returns ``m`` candidates (an array whose
            first dimension is ``m``, or anything ``proxy`` and ``true``
            accept), drawing only from ``rng``.
        proxy: maps candidates to an ``(m,)`` array of proxy rewards.
        true: maps candidates to an ``(m,)`` array of true rewards.
        ns: group sizes, each ``>= 1``, in any order (the result follows it).
        trials: number of independent trials, ``>= 1``.
        rng: the ``numpy.random.Generator`` handed to ``sample``.

    Returns:
        A ``float64`` array of shape ``(len(ns),)``: entry ``k`` is the mean
        over trials of the true reward of best-of-``ns[k]``.

    Raises:
        ValueError: an ``n < 1``, no ``ns`` or ``trials < 1``.
    """
    raise NotImplementedError(
        "TODO: implement overoptimization_curve as the docstring describes, then run `make test-week7`"
    )
