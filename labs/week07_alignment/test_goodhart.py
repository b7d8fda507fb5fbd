"""Specs for goodhart.py: best-of-n selection under a proxy reward and the
over-optimization curve.

Run them with `make test-week7` (add IMPL=solution to see the reference pass).
Every failure message starts with the graded function it is about.
"""

import numpy as np
import pytest

from mlsafety.grading import graded
from mlsafety.specs import array, same_global_draw

GRADED = {"best_of_n": "core", "overoptimization_curve": "core"}
pytestmark = pytest.mark.timeout(20)


# --------------------------------------------------------------------------- #
# best_of_n
# --------------------------------------------------------------------------- #


def reference_best_of_n(proxy, true, n):
    out = []
    for start in range(0, len(proxy), n):
        group = list(range(start, start + n))
        best = group[0]
        for i in group[1:]:
            if proxy[i] > proxy[best]:  # strict: the first of tied candidates stays
                best = i
        out.append(true[best])
    return np.array(out, dtype=float)


PROXY = [1.0, 5.0, 2.0, 9.0, 0.0, 3.0]
TRUE = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0]


@graded("best_of_n")
@pytest.mark.parametrize(
    "n,want",
    [(3, [20.0, 40.0]), (2, [20.0, 40.0, 60.0]), (1, TRUE), (6, [40.0])],
    ids=["n=3", "n=2", "n=1", "n=6"],
)
def test_best_of_n_hand_made_groups(goodhart, n, want):
    got = array("best_of_n", goodhart.best_of_n(PROXY, TRUE, n), (len(want),))
    hints = {
        (30.0, 60.0): "that is the best TRUE reward of each group; select by the proxy",
        (5.0, 9.0): "that is the proxy reward of the selected candidate; report its true reward",
        (10.0, 50.0): "that selects the lowest proxy reward; use argmax",
    }
    hint = hints.get(tuple(got.tolist()), "") if n == 3 else ""
    assert np.allclose(got, want), (
        f"best_of_n: proxy {PROXY}, true {TRUE}, n={n}: groups of {n} consecutive candidates, "
        f"keep the highest proxy reward of each and report its true reward: expected {want}, "
        f"got {got.tolist()}" + (f"; {hint}" if hint else "")
    )


@graded("best_of_n")
def test_best_of_n_breaks_ties_by_the_first_candidate(goodhart):
    got = array(
        "best_of_n", goodhart.best_of_n([2.0, 2.0, 1.0, 0.0, 4.0, 4.0], [7, 8, 9, 1, 2, 3], 3), (2,)
    )
    assert got.tolist() == [7.0, 2.0], (
        f"best_of_n: proxy ties within a group go to the first tied candidate (as argmax): "
        f"expected [7.0, 2.0], got {got.tolist()}"
    )


@graded("best_of_n")
def test_best_of_n_matches_a_reference(goodhart, rng):
    g = rng(0)
    for n, groups in [(1, 5), (4, 25), (16, 10), (50, 3)]:
        proxy = g.normal(size=n * groups)
        true = proxy + g.normal(size=n * groups)
        want = reference_best_of_n(proxy, true, n)
        got = array("best_of_n", goodhart.best_of_n(proxy, true, n), want.shape)
        assert np.allclose(got, want), (
            f"best_of_n: {groups} random groups of {n}: the true rewards of the selected "
            f"candidates differ from a loop over consecutive groups (first group: expected "
            f"{want[0]:.4f}, got {got[0]:.4f}); group g holds candidates g*n .. g*n + n - 1"
        )


@graded("best_of_n")
def test_best_of_n_returns_a_new_float_array_and_leaves_inputs_alone(goodhart):
    proxy, true = np.array([3, 1, 2, 5]), np.array([1.5, 2.5, 3.5, 4.5])
    before = (proxy.copy(), true.copy())
    got = goodhart.best_of_n(proxy, true, 2)
    assert isinstance(got, np.ndarray) and got.dtype == np.float64, (
        f"best_of_n: expected a float64 numpy array, got {type(got).__name__} "
        f"{getattr(got, 'dtype', '')}"
    )
    assert np.array_equal(proxy, before[0]) and np.array_equal(true, before[1]), (
        "best_of_n: modified its inputs in place"
    )
    got[:] = -1
    assert np.array_equal(true, before[1]), "best_of_n: the result shares memory with the input"


@graded("best_of_n")
@pytest.mark.parametrize(
    "proxy,true,n,why",
    [
        ([1, 2, 3, 4, 5], [1, 2, 3, 4, 5], 2, "n=2 for 5 candidates (does not divide)"),
        ([1, 2], [1, 2], 0, "n=0"),
        ([1, 2, 3, 4], [1, 2, 3], 2, "4 proxy rewards and 3 true rewards"),
    ],
    ids=["n-does-not-divide", "n=0", "lengths-differ"],
)
def test_best_of_n_rejects_bad_arguments(goodhart, proxy, true, n, why):
    with pytest.raises(ValueError):
        goodhart.best_of_n(proxy, true, n)
        pytest.fail(f"best_of_n: {why} must raise ValueError", pytrace=False)


# --------------------------------------------------------------------------- #
# overoptimization_curve
# --------------------------------------------------------------------------- #

D = 4
DIRECTION = np.ones(D) / 2.0  # unit vector


def sample(rng, m):
    return rng.standard_normal((m, D))


def true_reward(x):
    """Good along DIRECTION, but extreme candidates are bad: concave, peaks at x.d = 1.67."""
    return x @ DIRECTION - 0.3 * (x**2).sum(axis=1)


def misfit_proxy(x):
    """A linear proxy that agrees with the true reward near the centre, not at the extremes."""
    return x @ DIRECTION


def reference_curve(sample, proxy, true, ns, trials, seed):
    largest = max(ns)
    pool = sample(np.random.default_rng(seed), trials * largest)
    p, r = np.asarray(proxy(pool)), np.asarray(true(pool))
    curve = []
    for n in ns:
        rewards = []
        for t in range(trials):
            base = t * largest
            best = base + int(np.argmax(p[base : base + n]))
            rewards.append(r[best])
        curve.append(sum(rewards) / trials)
    return np.array(curve)


@graded("overoptimization_curve")
def test_overoptimization_curve_with_a_perfect_proxy_never_goes_down(goodhart, rng):
    ns = [1, 2, 4, 8, 16, 32, 64, 128, 256]
    curve = array(
        "overoptimization_curve",
        goodhart.overoptimization_curve(sample, true_reward, true_reward, ns, 20, rng(0)),
        (len(ns),),
    )
    drops = [(ns[k], ns[k + 1]) for k in range(len(ns) - 1) if curve[k + 1] < curve[k] - 1e-12]
    assert not drops, (
        f"overoptimization_curve: with proxy = true reward, best-of-n over nested pools can "
        f"only improve with n, but the curve goes down from n={drops[0][0]} to n={drops[0][1]} "
        f"({np.round(curve, 3).tolist()}); best-of-n must choose among the FIRST n candidates "
        f"of one pool per trial, not fresh candidates for every n"
    )
    assert curve[-1] > curve[0] + 1.0, (
        f"overoptimization_curve: with a perfect proxy, best-of-256 should beat best-of-1 by "
        f"far, got {curve[0]:.3f} -> {curve[-1]:.3f}"
    )


@graded("overoptimization_curve")
def test_overoptimization_curve_with_a_misfit_proxy_eventually_drops(goodhart, rng):
    ns = [1, 2, 4, 8, 16, 64, 256, 1024]
    curve = array(
        "overoptimization_curve",
        goodhart.overoptimization_curve(sample, misfit_proxy, true_reward, ns, 200, rng(1)),
        (len(ns),),
    )
    peak = int(np.argmax(curve))
    assert 0 < peak < len(ns) - 1 and curve[-1] < curve[peak] - 0.3, (
        f"overoptimization_curve: a linear proxy of a concave true reward should first help "
        f"and then hurt as n grows (Goodhart), got true rewards {np.round(curve, 3).tolist()} "
        f"for n = {ns}; did you average the TRUE reward of the candidate the PROXY selects?"
    )


@graded("overoptimization_curve")
def test_overoptimization_curve_matches_a_reference(goodhart, rng):
    ns = [8, 1, 3, 5]  # any order; the result follows it
    want = reference_curve(sample, misfit_proxy, true_reward, ns, 30, seed=4)
    got = array(
        "overoptimization_curve",
        goodhart.overoptimization_curve(sample, misfit_proxy, true_reward, ns, 30, rng(4)),
        (len(ns),),
    )
    assert np.allclose(got, want, atol=1e-12), (
        f"overoptimization_curve: for n = {ns} and 30 trials expected "
        f"{np.round(want, 4).tolist()}, got {np.round(got, 4).tolist()}; draw all candidates "
        f"with one call sample(rng, trials * max(ns)), give trial t the t-th block of max(ns), "
        f"select among the first n of each block and average the true rewards over trials, in "
        f"the order of ns"
    )


@graded("overoptimization_curve")
def test_overoptimization_curve_draws_once_from_its_generator(goodhart, rng):
    calls = []

    def recording_sample(g, m):
        calls.append(m)
        return sample(g, m)

    ns, trials = [1, 4, 16], 7
    goodhart.overoptimization_curve(recording_sample, misfit_proxy, true_reward, ns, trials, rng(0))
    assert calls == [trials * max(ns)], (
        f"overoptimization_curve: sample should be called once, for trials * max(ns) = "
        f"{trials * max(ns)} candidates; it was called with {calls}"
    )
    first = goodhart.overoptimization_curve(sample, misfit_proxy, true_reward, ns, trials, rng(3))
    again = goodhart.overoptimization_curve(sample, misfit_proxy, true_reward, ns, trials, rng(3))
    assert np.array_equal(first, again), (
        "overoptimization_curve: the same seeded generator gave different curves"
    )
    assert same_global_draw(
        lambda: goodhart.overoptimization_curve(
            sample, misfit_proxy, true_reward, ns, trials, rng(3)
        )
    ), "overoptimization_curve: used the global numpy random state; draw only from rng"
    assert isinstance(first, np.ndarray) and first.dtype == np.float64, (
        f"overoptimization_curve: expected a float64 numpy array, got {type(first).__name__}"
    )


@graded("overoptimization_curve")
@pytest.mark.parametrize(
    "ns,trials,why", [([1, 0, 4], 5, "n=0"), ([], 5, "no n"), ([1, 2], 0, "trials=0")]
)
def test_overoptimization_curve_rejects_bad_arguments(goodhart, rng, ns, trials, why):
    with pytest.raises(ValueError):
        goodhart.overoptimization_curve(sample, misfit_proxy, true_reward, ns, trials, rng(0))
        pytest.fail(f"overoptimization_curve: {why} must raise ValueError", pytrace=False)


@graded("best_of_n")
@pytest.mark.parametrize(
    "proxy,true,why",
    [
        (np.arange(4.0).reshape(4, 1), np.arange(4.0).reshape(4, 1), "rewards of shape (4, 1)"),
        (np.arange(4.0), np.arange(4.0).reshape(2, 2), "true rewards of shape (2, 2)"),
    ],
    ids=["column-vectors", "true-2d"],
)
def test_best_of_n_rejects_rewards_that_are_not_1d(goodhart, proxy, true, why):
    with pytest.raises(ValueError):
        goodhart.best_of_n(proxy, true, 2)
        pytest.fail(
            f"best_of_n: {why} must raise ValueError (both must be 1-D: reshaping would hide it)",
            pytrace=False,
        )
