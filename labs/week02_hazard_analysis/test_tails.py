"""Specs for tails.py: Pareto samples, the Hill estimator, max-to-sum ratios,
multiplicative vs additive processes and top shares.

Run them with `make test-week2` (add IMPL=solution to see the reference pass).
Every failure message starts with the graded function it is about.
"""

import math

import numpy as np
import pytest

from mlsafety.grading import graded
from mlsafety.specs import array, number, same_global_draw

GRADED = {
    "sample_pareto": "core",
    "hill_estimator": "stretch",
    "max_to_sum_ratio": "core",
    "multiplicative_process": "core",
    "additive_process": "core",
    "top_share": "core",
}
pytestmark = pytest.mark.timeout(20)


def reference_pareto(alpha, n, seed, x_min=1.0):
    """Pareto I by inverting the survival function, written independently of the docstring's recipe."""
    return x_min * (1 + np.random.default_rng(seed).pareto(alpha, n))


# --------------------------------------------------------------------------- #
# sample_pareto
# --------------------------------------------------------------------------- #


def ks_distance(x, alpha, x_min):
    """Largest gap between the empirical CDF of ``x`` and the Pareto CDF."""
    x = np.sort(x)
    cdf = 1 - (x_min / x) ** alpha
    n = len(x)
    upper = np.arange(1, n + 1) / n - cdf
    lower = cdf - np.arange(0, n) / n
    return float(max(upper.max(), lower.max()))


@graded("sample_pareto")
def test_sample_pareto_shape_dtype_and_support(tails, rng):
    for size in (5, (3, 4), 0):
        x = tails.sample_pareto(2.0, size, rng(0), x_min=2.5)
        want = (size,) if isinstance(size, int) else size
        assert isinstance(x, np.ndarray) and x.shape == want, (
            f"sample_pareto: size={size!r} should give an array of shape {want}, got "
            f"{getattr(x, 'shape', type(x).__name__)}"
        )
        assert x.dtype == np.float64, f"sample_pareto: dtype should be float64, got {x.dtype}"
    x = array("sample_pareto", tails.sample_pareto(1.2, 20_000, rng(1), x_min=2.5), (20_000,))
    assert x.min() >= 2.5, (
        f"sample_pareto: Pareto I never goes below x_min = 2.5, got a minimum of {x.min():.4f}; "
        f"rng.pareto is the Lomax distribution: x_min * (1 + rng.pareto(alpha)) is Pareto I"
    )
    assert np.isfinite(x).all(), "sample_pareto: got inf; draw U on (0, 1] as 1 - rng.random(size)"


@graded("sample_pareto")
@pytest.mark.parametrize("alpha,x_min", [(0.7, 1.0), (1.5, 2.5), (3.0, 0.5)])
def test_sample_pareto_follows_the_pareto_law(tails, rng, alpha, x_min):
    n = 40_000
    x = array("sample_pareto", tails.sample_pareto(alpha, n, rng(2), x_min=x_min), (n,))
    median, want = float(np.median(x)), x_min * 2 ** (1 / alpha)
    assert abs(median / want - 1) < 0.03, (
        f"sample_pareto: the median of Pareto(alpha={alpha}, x_min={x_min}) is "
        f"x_min * 2**(1/alpha) = {want:.4f}, got {median:.4f} from {n} samples; "
        f"use x_min * U**(-1/alpha)"
    )
    distance = ks_distance(x, alpha, x_min)
    assert distance < 1.95 / math.sqrt(n), (
        f"sample_pareto: the samples do not follow P(X > x) = (x_min/x)**alpha with "
        f"alpha={alpha}, x_min={x_min} (Kolmogorov-Smirnov distance {distance:.4f} > "
        f"{1.95 / math.sqrt(n):.4f})"
    )


@graded("sample_pareto")
def test_sample_pareto_is_reproducible_from_the_generator(tails, rng):
    first = tails.sample_pareto(1.5, 100, rng(3))
    again = tails.sample_pareto(1.5, 100, rng(3))
    other = tails.sample_pareto(1.5, 100, rng(4))
    assert np.array_equal(first, again), "sample_pareto: the same seed gave different samples"
    assert not np.array_equal(first, other), (
        "sample_pareto: different seeds gave the same samples; draw from `rng`"
    )
    assert same_global_draw(lambda: tails.sample_pareto(1.5, 100, rng(3))), (
        "sample_pareto: used the global numpy.random state; draw only from `rng`"
    )


@graded("sample_pareto")
@pytest.mark.parametrize("alpha,x_min", [(0.0, 1.0), (-1.0, 1.0), (2.0, 0.0)])
def test_sample_pareto_rejects_bad_parameters(tails, rng, alpha, x_min):
    with pytest.raises(ValueError):
        tails.sample_pareto(alpha, 10, rng(0), x_min=x_min)
        pytest.fail(
            f"sample_pareto: alpha={alpha}, x_min={x_min} must raise ValueError", pytrace=False
        )


# --------------------------------------------------------------------------- #
# hill_estimator
# --------------------------------------------------------------------------- #


def reference_hill(x, k):
    top = sorted(x, reverse=True)[: k + 1]
    threshold = math.log(top[k])
    return k / sum(math.log(v) - threshold for v in top[:k])


@graded("hill_estimator")
@pytest.mark.parametrize("k", [1, 2, 3])
def test_hill_estimator_closed_form(tails, k):
    x = [2.0, 8.0, 1.0, 4.0]  # shuffled; sorted down: 8, 4, 2, 1 = 2**3, 2**2, 2**1, 2**0
    # gamma = mean over the top k of log X_(i) - log X_(k+1): ln 2 * (1, 1.5, 2) for k = 1, 2, 3
    want = 1 / (math.log(2) * (1 + (k - 1) / 2))
    got = number("hill_estimator", tails.hill_estimator(x, k))
    off_by_one = {1: math.inf, 2: 2 / math.log(2), 3: 1 / math.log(2)}.get(k)
    hint = (
        "; that is the threshold X_(k): the tail's threshold is the (k+1)-th largest value"
        if off_by_one and math.isclose(got, off_by_one)
        else "; sort in decreasing order, average log X_(i) - log X_(k+1) over i = 1..k, invert"
    )
    assert math.isclose(got, want, rel_tol=1e-9), (
        f"hill_estimator: x = {x}, k = {k} should give {want:.6f}, got {got:.6f}{hint}"
    )


@graded("hill_estimator")
@pytest.mark.parametrize("alpha", [0.8, 1.5, 3.0])
def test_hill_recovers_the_tail_index_of_pareto_samples(tails, alpha):
    x = reference_pareto(alpha, 50_000, seed=5, x_min=3.0)
    got = number("hill_estimator", tails.hill_estimator(x, 2000))
    assert abs(got / alpha - 1) < 0.1, (
        f"hill_estimator: on 50000 Pareto samples with alpha = {alpha}, k = 2000 estimated "
        f"{got:.3f}; it should be within 10% of {alpha} (standard error ~ alpha/sqrt(k) = "
        f"{alpha / math.sqrt(2000):.3f}). Are you using the k largest values, and returning "
        f"alpha = 1/gamma rather than gamma?"
    )


@graded("hill_estimator")
def test_hill_matches_a_reference_at_every_k(tails, rng):
    x = np.exp(rng(6).normal(size=300)) * 5  # lognormal: a different answer at every k
    for k in (1, 2, 10, 50, 299):
        want, got = reference_hill(x, k), number("hill_estimator", tails.hill_estimator(x, k))
        assert math.isclose(got, want, rel_tol=1e-9), (
            f"hill_estimator: on 300 lognormal values with k = {k}, expected {want:.6f}, got "
            f"{got:.6f}; use the k largest values and the (k+1)-th largest as the threshold"
        )


@graded("hill_estimator")
def test_hill_ignores_order_and_units_and_leaves_data_alone(tails, rng):
    x = reference_pareto(1.3, 500, seed=7)
    before = x.copy()
    base = tails.hill_estimator(x, 40)
    assert np.array_equal(x, before), (
        "hill_estimator: modified x in place (x.sort()?); sort a copy with np.sort(x)"
    )
    assert type(base) is float, f"hill_estimator: returned {type(base).__name__}, not a float"
    shuffled = tails.hill_estimator(rng(8).permutation(x), 40)
    scaled = tails.hill_estimator(1000 * x, 40)
    listed = tails.hill_estimator(x.tolist(), 40)
    for name, value in (("shuffling x", shuffled), ("x * 1000", scaled), ("a list", listed)):
        assert math.isclose(value, base, rel_tol=1e-9), (
            f"hill_estimator: {name} changed the estimate from {base:.6f} to {value:.6f}"
        )


@graded("hill_estimator")
def test_hill_is_infinite_when_the_tail_is_flat(tails):
    x = [5.0, 1.0, 5.0, 5.0, 2.0]  # the 3 largest are equal
    got = number("hill_estimator", tails.hill_estimator(x, 2))
    assert got == math.inf, (
        f"hill_estimator: x = {x}, k = 2: the k + 1 = 3 largest values are all 5, so gamma = 0 "
        f"and the estimate is inf (return float('inf') rather than dividing by 0), got {got}"
    )


@graded("hill_estimator")
@pytest.mark.parametrize(
    "x,k",
    [([3.0, 2.0, 1.0], 0), ([3.0, 2.0, 1.0], 3), ([3.0, -2.0, 1.0], 1), ([3.0, 0.0, 1.0], 1)],
    ids=["k=0", "k=n", "negative-value", "zero-value"],
)
def test_hill_rejects_bad_arguments(tails, x, k):
    with pytest.raises(ValueError):
        tails.hill_estimator(x, k)
        pytest.fail(
            f"hill_estimator: x = {x}, k = {k} must raise ValueError (need 1 <= k <= n - 1 and "
            f"positive data)",
            pytrace=False,
        )


# --------------------------------------------------------------------------- #
# max_to_sum_ratio
# --------------------------------------------------------------------------- #


def reference_max_to_sum(x, p):
    out, best, total = [], 0.0, 0.0
    for value in x:
        powered = abs(value) ** p
        best, total = max(best, powered), total + powered
        out.append(best / total)
    return np.array(out)


@graded("max_to_sum_ratio")
@pytest.mark.parametrize(
    "p,want", [(1, [1.0, 0.75, 0.5]), (2, [1.0, 0.9, 9 / 14]), (3, [1.0, 27 / 28, 27 / 36])]
)
def test_max_to_sum_closed_form(tails, p, want):
    x = [1.0, -3.0, 2.0]
    got = array("max_to_sum_ratio", tails.max_to_sum_ratio(x, p), (3,))
    assert np.allclose(got, want, rtol=1e-12), (
        f"max_to_sum_ratio: x = {x}, p = {p} should give {[round(w, 4) for w in want]}, got "
        f"{np.round(np.asarray(got, dtype=float), 4).tolist()}; R_n = running max of |x|**p over "
        f"running sum of |x|**p"
    )


@graded("max_to_sum_ratio")
def test_max_to_sum_matches_a_running_reference(tails, rng):
    x = rng(9).standard_t(2, size=500)  # signed, with occasional big values
    before = x.copy()
    for p in (0.5, 1, 2, 4):
        want = reference_max_to_sum(x, p)
        got = tails.max_to_sum_ratio(x, p)
        assert isinstance(got, np.ndarray) and got.shape == (500,), (
            f"max_to_sum_ratio: expected an array of shape (500,) (one ratio per prefix), got "
            f"{getattr(got, 'shape', type(got).__name__)}"
        )
        assert got.dtype == np.float64, f"max_to_sum_ratio: dtype {got.dtype}, expected float64"
        bad = int(np.argmax(~np.isclose(got, want, rtol=1e-9)))
        assert np.allclose(got, want, rtol=1e-9), (
            f"max_to_sum_ratio: p = {p}, first wrong at n = {bad + 1}: expected {want[bad]:.6f}, "
            f"got {got[bad]:.6f}; use the running (cumulative) max and sum of |x|**p"
        )
    assert np.array_equal(x, before), "max_to_sum_ratio: modified x in place"
    ones = array("max_to_sum_ratio", tails.max_to_sum_ratio(np.ones(4), 2.0), (4,))
    assert np.allclose(ones, [1, 1 / 2, 1 / 3, 1 / 4]), (
        f"max_to_sum_ratio: four equal values should give [1, 1/2, 1/3, 1/4], got {ones}"
    )


@graded("max_to_sum_ratio")
@pytest.mark.parametrize(
    "name,draw,p",
    [
        ("standard normal", lambda g, n: g.standard_normal(n), 4),
        ("exponential", lambda g, n: g.exponential(1.0, n), 2),
        ("Pareto alpha=3", lambda g, n: 1 + g.pareto(3.0, n), 1),
    ],
    ids=["normal-p4", "exponential-p2", "pareto3-p1"],
)
def test_max_to_sum_goes_to_zero_when_the_moment_is_finite(tails, rng, name, draw, p):
    finals = [
        array("max_to_sum_ratio", tails.max_to_sum_ratio(draw(rng(s), 20_000), p), (20_000,))[-1]
        for s in range(5)
    ]
    assert max(finals) < 0.05, (
        f"max_to_sum_ratio: for {name} data the {p}-th moment is finite, so the ratio should "
        f"be near 0 after 20000 values; got final ratios {np.round(finals, 4).tolist()}"
    )


@graded("max_to_sum_ratio")
@pytest.mark.parametrize("alpha,p", [(1.5, 4), (1.5, 3), (0.8, 1)])
def test_max_to_sum_stays_away_from_zero_when_alpha_is_below_p(tails, alpha, p):
    finals = [
        array(
            "max_to_sum_ratio",
            tails.max_to_sum_ratio(reference_pareto(alpha, 5_000, seed=s), p),
            (5_000,),
        )[-1]
        for s in range(30)
    ]
    # For Pareto data with alpha < p the mean ratio tends to 1 - alpha / p.
    mean, limit = float(np.mean(finals)), 1 - alpha / p
    assert mean > 0.6 * limit, (
        f"max_to_sum_ratio: for Pareto data with alpha = {alpha} < p = {p} the ratio should not "
        f"vanish (its mean tends to 1 - alpha/p = {limit:.3f}); got a mean final ratio of "
        f"{mean:.4f} over 30 samples"
    )


@graded("max_to_sum_ratio")
def test_max_to_sum_is_nan_while_every_value_is_zero(tails):
    x = [0.0, -0.0, 3.0, 0.0, -1.0]
    got = array("max_to_sum_ratio", tails.max_to_sum_ratio(x, 2.0), (5,))
    want = [math.nan, math.nan, 1.0, 1.0, 0.9]
    assert np.isnan(got[:2]).all() and np.allclose(got[2:], want[2:]), (
        f"max_to_sum_ratio: x = {x}, p = 2 should give {want} (0 / 0 is nan while every value "
        f"so far is 0), got {got.tolist()}"
    )


@graded("max_to_sum_ratio")
@pytest.mark.parametrize("p", [0.0, -1.0])
def test_max_to_sum_rejects_a_non_positive_moment(tails, p):
    with pytest.raises(ValueError):
        tails.max_to_sum_ratio([1.0, 2.0], p)
        pytest.fail(f"max_to_sum_ratio: p = {p} must raise ValueError", pytrace=False)


# --------------------------------------------------------------------------- #
# multiplicative_process and additive_process
# --------------------------------------------------------------------------- #


def reference_factors(n_paths, n_steps, sigma, seed):
    z = np.random.default_rng(seed).standard_normal((n_paths, n_steps))
    return np.exp(sigma * z - sigma**2 / 2)


PROCESSES = [
    pytest.param("multiplicative_process", marks=graded("multiplicative_process"), id="mult"),
    pytest.param("additive_process", marks=graded("additive_process"), id="add"),
]


def reference_process(name, n_paths, n_steps, sigma, seed):
    factors = reference_factors(n_paths, n_steps, sigma, seed)
    if name == "multiplicative_process":
        return np.concatenate([np.ones((n_paths, 1)), np.cumprod(factors, axis=1)], axis=1)
    return np.concatenate([np.zeros((n_paths, 1)), np.cumsum(factors, axis=1)], axis=1)


@pytest.mark.parametrize("name", PROCESSES)
def test_process_shape_start_and_dtype(tails, rng, name):
    paths = getattr(tails, name)(7, 12, 0.3, rng(0))
    start = 1.0 if name == "multiplicative_process" else 0.0
    assert isinstance(paths, np.ndarray) and paths.shape == (7, 13), (
        f"{name}: 7 paths of 12 steps should give an array of shape (7, 13) (the start plus one "
        f"column per step), got {getattr(paths, 'shape', type(paths).__name__)}"
    )
    assert paths.dtype == np.float64, f"{name}: dtype {paths.dtype}, expected float64"
    assert np.all(paths[:, 0] == start), (
        f"{name}: column 0 is the start and must be all {start}, got {paths[:3, 0].tolist()}..."
    )
    empty = getattr(tails, name)(3, 0, 0.3, rng(0))
    assert empty.shape == (3, 1) and np.all(empty == start), (
        f"{name}: with n_steps = 0 expected shape (3, 1) filled with {start}, got {empty}"
    )
    single = getattr(tails, name)(1, 4, 0.3, rng(0))
    assert np.shape(single) == (1, 5), (
        f"{name}: n_paths = 1 is valid (n_paths >= 1) and should give shape (1, 5), got "
        f"{np.shape(single)}"
    )


@graded("multiplicative_process")
def test_multiplicative_process_is_lognormal_with_mean_one(tails, rng):
    n_paths, n_steps, sigma = 20_000, 25, 0.2
    paths = tails.multiplicative_process(n_paths, n_steps, sigma, rng(2))
    final = array("multiplicative_process", paths, (n_paths, n_steps + 1))[:, -1]
    logs = np.log(final)
    mean_log, sd_log = -n_steps * sigma**2 / 2, sigma * math.sqrt(n_steps)
    assert abs(logs.mean() - mean_log) < 0.03 and abs(logs.std() / sd_log - 1) < 0.03, (
        f"multiplicative_process: log X_T should be normal with mean -T*sigma**2/2 = {mean_log:.3f} "
        f"and sd sigma*sqrt(T) = {sd_log:.3f} (T = {n_steps}, sigma = {sigma}); got mean "
        f"{logs.mean():.3f}, sd {logs.std():.3f}. Each factor is exp(sigma*Z - sigma**2/2)"
    )
    assert abs(final.mean() - 1) < 0.05, (
        f"multiplicative_process: E[X_T] = 1 (the factors have mean 1), got a mean of "
        f"{final.mean():.3f} over {n_paths} paths"
    )
    assert np.all(final > 0), "multiplicative_process: paths must stay positive"


@graded("additive_process")
def test_additive_process_has_thin_tails_around_t(tails, rng):
    n_paths, n_steps, sigma = 20_000, 25, 0.5
    paths = array(
        "additive_process",
        tails.additive_process(n_paths, n_steps, sigma, rng(3)),
        (n_paths, n_steps + 1),
    )
    final, steps = paths[:, -1], np.diff(paths, axis=1)
    sd = math.sqrt(n_steps * math.expm1(sigma**2))
    assert np.all(steps > 0), (
        "additive_process: every increment is a positive factor exp(sigma*Z - sigma**2/2), but "
        "some steps went down"
    )
    assert abs(final.mean() - n_steps) < 0.05 and abs(final.std() / sd - 1) < 0.05, (
        f"additive_process: X_T should have mean T = {n_steps} and sd "
        f"sqrt(T*(exp(sigma**2) - 1)) = {sd:.3f}; got mean {final.mean():.3f}, sd {final.std():.3f}"
    )


@pytest.mark.parametrize("name", PROCESSES)
def test_process_without_volatility_is_deterministic(tails, rng, name):
    paths = array(name, getattr(tails, name)(4, 6, 0.0, rng(4)), (4, 7))
    want = np.ones((4, 7)) if name == "multiplicative_process" else np.tile(np.arange(7.0), (4, 1))
    assert np.allclose(paths, want), (
        f"{name}: with sigma = 0 every factor is exactly 1, so every path should be "
        f"{want[0].tolist()}, got {np.round(paths[0], 4).tolist()}"
    )


@pytest.mark.parametrize("name", PROCESSES)
def test_process_is_reproducible_from_the_generator(tails, rng, name):
    fn = getattr(tails, name)
    first, again, other = fn(5, 10, 0.5, rng(5)), fn(5, 10, 0.5, rng(5)), fn(5, 10, 0.5, rng(6))
    assert np.array_equal(first, again), f"{name}: the same seed gave different paths"
    assert not np.array_equal(first, other), (
        f"{name}: different seeds gave the same paths; draw from `rng`"
    )
    assert same_global_draw(lambda: fn(5, 10, 0.5, rng(5))), (
        f"{name}: used the global numpy.random state; draw only from `rng`"
    )


@pytest.mark.parametrize("name", PROCESSES)
def test_process_follows_the_documented_shocks(tails, rng, name):
    n_paths, n_steps, sigma = 50, 30, 0.4
    want = reference_process(name, n_paths, n_steps, sigma, seed=1)
    got = array(name, getattr(tails, name)(n_paths, n_steps, sigma, rng(1)))
    op = "multiplies" if name == "multiplicative_process" else "adds"
    gap = float(np.max(np.abs(got - want))) if got.shape == want.shape else float("nan")
    assert got.shape == want.shape and np.allclose(got, want, rtol=1e-10), (
        f"{name}: with the same seed, the paths differ from the documented recipe (largest gap "
        f"{gap:.4g}); draw Z = rng.standard_normal((n_paths, n_steps)) in one call, turn it into "
        f"G = exp(sigma*Z - sigma**2/2), and each path {op} its own row of G in order"
    )


@pytest.mark.parametrize("name", PROCESSES)
@pytest.mark.parametrize("args", [(0, 5, 0.1), (3, -1, 0.1), (3, 5, -0.1)], ids=str)
def test_process_rejects_bad_arguments(tails, rng, name, args):
    with pytest.raises(ValueError):
        getattr(tails, name)(*args, rng(0))
        pytest.fail(
            f"{name}: (n_paths, n_steps, sigma) = {args} must raise ValueError", pytrace=False
        )


# --------------------------------------------------------------------------- #
# top_share
# --------------------------------------------------------------------------- #


def reference_top_share(x, q):
    ranked = sorted(x, reverse=True)
    k = 1
    while k < q * len(ranked) - 1e-9:
        k += 1
    return sum(ranked[:k]) / sum(ranked)


@graded("top_share")
@pytest.mark.parametrize(
    "q,want",
    [(0.2, 0.5), (0.4, 0.7), (0.3, 0.7), (1.0, 1.0), (0.01, 0.5)],
    ids=["top-1-of-5", "top-2-of-5", "q*n=1.5-takes-2", "everything", "tiny-q-takes-1"],
)
def test_top_share_closed_form(tails, q, want):
    x = [3.0, 10.0, 1.0, 4.0, 2.0]  # total 20; sorted down: 10, 4, 3, 2, 1
    got = number("top_share", tails.top_share(x, q))
    k = math.ceil(round(q * len(x), 9))
    bottom = sum(sorted(x)[:k]) / sum(x)  # what sorting in increasing order gives
    hint = (
        "; those are the smallest values: sort in decreasing order"
        if math.isclose(got, bottom)
        else "; take the k = ceil(q * n) largest values over the total"
    )
    assert math.isclose(got, want, rel_tol=1e-12), (
        f"top_share: x = {x}, q = {q} should give {want}, got {got:.4f}{hint}"
    )


@graded("top_share")
def test_top_share_matches_a_brute_force_reference(tails, rng):
    gen = rng(7)
    for n, q in [
        (25, 0.1),
        (10, 0.25),
        (30, 0.1),
        (7, 0.5),
        (1000, 0.01),
        (99, 0.333),
        (10, 0.31),
        (40, 0.205),
        (100, 0.07),
    ]:
        x = gen.lognormal(0, 1.5, n)
        want, got = reference_top_share(x, q), number("top_share", tails.top_share(x, q))
        k = math.ceil(round(q * n, 9))
        float_note = (
            f" (in floating point q * n = {q * n!r}: round it to 9 decimals before rounding up)"
            if q * n != round(q * n, 9)
            else ""
        )
        assert math.isclose(got, want, rel_tol=1e-9), (
            f"top_share: n = {n}, q = {q}: expected the top k = {k} values to hold {want:.6f} of "
            f"the total, got {got:.6f}; k is the smallest whole number >= q * n{float_note}"
        )


@graded("top_share")
def test_top_share_ignores_order_and_units_and_leaves_data_alone(tails, rng):
    x = rng(8).exponential(1.0, 200)
    before = x.copy()
    base = tails.top_share(x, 0.1)
    assert np.array_equal(x, before), (
        "top_share: modified x in place (x.sort()?); sort a copy with np.sort(x)"
    )
    assert type(base) is float, f"top_share: returned {type(base).__name__}, not a Python float"
    for name, value in (
        ("shuffling x", tails.top_share(rng(9).permutation(x), 0.1)),
        ("x * 1000", tails.top_share(1000 * x, 0.1)),
        ("a list", tails.top_share(x.tolist(), 0.1)),
    ):
        assert math.isclose(value, base, rel_tol=1e-9), (
            f"top_share: {name} changed the share from {base:.6f} to {value:.6f}"
        )


@graded("top_share")
@pytest.mark.parametrize(
    "name,draw,q,want",
    [
        ("exponential", lambda g, n: g.exponential(2.0, n), 0.1, 0.1 * (1 + math.log(10))),
        ("Pareto alpha=3", lambda g, n: 1 + g.pareto(3.0, n), 0.2, 0.2 ** (2 / 3)),
        ("Pareto alpha=1.5", lambda g, n: 1 + g.pareto(1.5, n), 0.01, None),
    ],
    ids=["exponential", "pareto3", "pareto1.5"],
)
def test_top_share_closed_forms_for_large_samples(tails, rng, name, draw, q, want):
    x = draw(rng(10), 200_000)
    got = number("top_share", tails.top_share(x, q))
    if want is None:  # the long tail: the top 1% hold far more than 1%
        want, tol = 0.01 ** (1 / 3), 0.08
    else:
        tol = 0.01
    assert abs(got - want) < tol, (
        f"top_share: for 200000 {name} values the top {q:.0%} should hold about {want:.3f} of "
        f"the total, got {got:.3f}"
    )


@graded("top_share")
@pytest.mark.parametrize(
    "x,q",
    [([1.0, 2.0], 0.0), ([1.0, 2.0], 1.5), ([1.0, -2.0], 0.5), ([0.0, 0.0], 0.5), ([], 0.5)],
    ids=["q=0", "q>1", "negative", "zero-total", "empty"],
)
def test_top_share_rejects_bad_arguments(tails, x, q):
    with pytest.raises(ValueError):
        tails.top_share(x, q)
        pytest.fail(f"top_share: x = {x}, q = {q} must raise ValueError", pytrace=False)
