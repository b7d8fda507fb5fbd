"""Specs for accountant.py: the RDP of the sampled Gaussian mechanism and its
conversion to (epsilon, delta).

Run them with `make test-security1` (add IMPL=solution to see the reference pass).
Every failure message starts with the graded function it is about.
"""

import functools
import math

import numpy as np
import pytest

from mlsafety.grading import graded
from mlsafety.specs import python_float

GRADED = {"rdp_subsampled_gaussian": "stretch", "epsilon_from_rdp": "core"}
pytestmark = pytest.mark.timeout(30)

# Values from an independent accountant: Opacus 1.6.0's RDP accountant
# (opacus.accountants.analysis.rdp.compute_rdp, then get_privacy_spent) over the
# orders OPACUS_ORDERS. (q, sigma, steps, delta) -> (epsilon, best order)
OPACUS_ORDERS = [1.5, 1.75, 2, 2.5, 3, 3.5, 4, 4.5, 5, 6, 7, 7.8, 8, 8.1, 9, 10, 12, 16, 24, 32, 64]
OPACUS = {
    (256 / 60000, 1.1, 14062, 1e-5): (2.5965558689607486, 8.1),  # Abadi et al.'s MNIST setting
    (0.01, 1.0, 1000, 1e-5): (2.1013652716430564, 7.8),
    (0.05, 0.8, 200, 1e-6): (9.905257248336731, 3.0),
    (0.25, 2.0, 60, 1e-5): (5.363181908155593, 4.5),  # the smoke privacy_target_dp
}


# --------------------------------------------------------------------------- #
# Independent references.
# --------------------------------------------------------------------------- #


@functools.cache
def rdp_by_integration(q, sigma, alpha):
    """log(A_alpha) / (alpha - 1), with A_alpha = E_{z ~ N(0, sigma^2)}[((1 - q) + q
    exp((2z - 1) / (2 sigma^2)))^alpha] integrated numerically (trapezoid rule on a
    fine grid that covers both the N(0, sigma^2) bulk and the peak near z = alpha)."""
    z = np.linspace(-20 * sigma, alpha + 20 * sigma, 40_001)
    log_ratio = np.logaddexp(math.log1p(-q), math.log(q) + (2 * z - 1) / (2 * sigma**2))
    log_f = -(z**2) / (2 * sigma**2) - math.log(sigma * math.sqrt(2 * math.pi)) + alpha * log_ratio
    top = log_f.max()
    area = np.trapezoid(np.exp(log_f - top), z)
    return (top + math.log(area)) / (alpha - 1)


def rdp_by_exact_sum(q, sigma, alpha: int):
    """The integer-order binomial sum in 60-digit arithmetic (mpmath)."""
    import mpmath

    mpmath.mp.dps = 60
    q, sigma = mpmath.mpf(q), mpmath.mpf(sigma)
    total = mpmath.fsum(
        mpmath.binomial(alpha, k)
        * (1 - q) ** (alpha - k)
        * q**k
        * mpmath.exp(mpmath.mpf(k * k - k) / (2 * sigma**2))
        for k in range(alpha + 1)
    )
    return float(mpmath.log(total) / (alpha - 1))


def ref_epsilon(rdp, orders, delta):
    best, where = math.inf, None
    for r, a in zip(rdp, orders, strict=True):
        e = r + math.log(1 / delta) / (a - 1) + math.log((a - 1) / a) - math.log(a) / (a - 1)
        if e < best:
            best, where = e, a
    return max(0.0, best), where


def rdp_array(function, value, n) -> np.ndarray:
    assert isinstance(value, np.ndarray), (
        f"{function}: returned {type(value).__name__}, expected a numpy array"
    )
    assert value.dtype == np.float64 and value.shape == (n,), (
        f"{function}: expected float64 of shape ({n},), got {value.dtype} of shape {value.shape}"
    )
    return value


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-300)


# --------------------------------------------------------------------------- #
# rdp_subsampled_gaussian
# --------------------------------------------------------------------------- #


@graded("rdp_subsampled_gaussian")
@pytest.mark.parametrize("q,sigma", [(0.01, 0.8), (0.1, 1.5), (0.5, 1.0), (0.03, 4.0)])
def test_rdp_matches_numerical_integration(accountant, q, sigma):
    orders = [1.5, 2.0, 3.25, 4.0, 7.5, 12.0]
    got = rdp_array(
        "rdp_subsampled_gaussian", accountant.rdp_subsampled_gaussian(q, sigma, 1, orders), 6
    )
    for alpha, value in zip(orders, got, strict=True):
        want = rdp_by_integration(q, sigma, alpha)
        kind = "integer" if float(alpha).is_integer() else "fractional"
        assert rel(value, want) < 1e-6, (
            f"rdp_subsampled_gaussian: q={q}, sigma={sigma}, one step, {kind} order "
            f"alpha={alpha}: expected {want:.8g} (numerical integration of A_alpha), got "
            f"{value:.8g}"
            + ("; fractional orders need the two-series formula" if kind == "fractional" else "")
        )


@graded("rdp_subsampled_gaussian")
def test_rdp_stays_finite_where_the_terms_overflow(accountant):
    orders = [32, 64, 128, 256]
    got = accountant.rdp_subsampled_gaussian(0.01, 0.5, 1, orders)
    for alpha, value in zip(orders, got, strict=True):
        want = rdp_by_exact_sum(0.01, 0.5, alpha)
        assert math.isfinite(value) and rel(value, want) < 1e-9, (
            f"rdp_subsampled_gaussian: q=0.01, sigma=0.5, alpha={alpha}: expected {want:.10g} "
            f"(exact sum in 60 digits), got {value}; exp((k^2 - k) / (2 sigma^2)) overflows a "
            f"float64, so add the terms in log space (scipy.special.logsumexp)"
        )


@graded("rdp_subsampled_gaussian")
def test_rdp_special_cases_and_composition(accountant):
    orders = [1.25, 2.0, 10.0, 33.5]
    full = accountant.rdp_subsampled_gaussian(1.0, 2.0, 1, orders)
    want = np.array(orders) / (2 * 2.0**2)
    assert np.allclose(full, want, rtol=1e-12), (
        f"rdp_subsampled_gaussian: q=1 is the Gaussian mechanism, alpha / (2 sigma^2) = "
        f"{want.tolist()}; got {full.tolist()}"
    )
    assert np.array_equal(accountant.rdp_subsampled_gaussian(0.0, 1.0, 100, orders), np.zeros(4)), (
        "rdp_subsampled_gaussian: q=0 never uses an example: RDP 0"
    )
    assert np.array_equal(accountant.rdp_subsampled_gaussian(0.1, 1.0, 0, orders), np.zeros(4)), (
        "rdp_subsampled_gaussian: 0 steps cost nothing: RDP 0"
    )
    one = accountant.rdp_subsampled_gaussian(0.02, 1.2, 1, orders)
    many = accountant.rdp_subsampled_gaussian(0.02, 1.2, 250, orders)
    assert np.allclose(many, 250 * one, rtol=1e-12), (
        f"rdp_subsampled_gaussian: RDP composes by addition: 250 steps must cost 250 times one "
        f"step ({(250 * one).tolist()}), got {many.tolist()}"
    )


@graded("rdp_subsampled_gaussian")
def test_rdp_grows_with_the_order_and_the_sampling_rate(accountant):
    orders = [1.1, 1.5, 2, 2.5, 3, 4, 6, 8, 12.5, 16, 24, 32]
    curve = accountant.rdp_subsampled_gaussian(0.05, 1.1, 10, orders)
    assert bool((np.diff(curve) >= 0).all()), (
        f"rdp_subsampled_gaussian: RDP is non-decreasing in alpha; got {curve.tolist()} at "
        f"orders {orders} (the orders must come back in the order given)"
    )
    rates = [accountant.rdp_subsampled_gaussian(q, 1.1, 10, [4.0])[0] for q in (0.01, 0.05, 0.2)]
    noises = [accountant.rdp_subsampled_gaussian(0.05, s, 10, [4.0])[0] for s in (0.8, 1.1, 2.0)]
    assert rates[0] < rates[1] < rates[2] and noises[0] > noises[1] > noises[2], (
        f"rdp_subsampled_gaussian: at alpha=4 the cost must grow with q ({rates}) and shrink "
        f"with sigma ({noises})"
    )
    shuffled = accountant.rdp_subsampled_gaussian(0.05, 1.1, 10, orders[::-1])
    assert np.allclose(shuffled, curve[::-1], rtol=1e-12), (
        "rdp_subsampled_gaussian: the result follows the order of `orders`"
    )


@graded("rdp_subsampled_gaussian")
def test_rdp_rejects_a_sampling_rate_outside_zero_one(accountant):
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError):
            accountant.rdp_subsampled_gaussian(bad, 1.0, 10, [2.0])
            pytest.fail(
                f"rdp_subsampled_gaussian: sample_rate={bad} is not in [0, 1]; raise ValueError",
                pytrace=False,
            )


@graded("rdp_subsampled_gaussian")
def test_rdp_rejects_a_noise_multiplier_that_is_not_positive(accountant):
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError):
            accountant.rdp_subsampled_gaussian(0.1, bad, 10, [2.0])
            pytest.fail(
                f"rdp_subsampled_gaussian: noise_multiplier={bad} is not positive; raise "
                f"ValueError",
                pytrace=False,
            )


@graded("rdp_subsampled_gaussian")
def test_rdp_rejects_negative_steps(accountant):
    with pytest.raises(ValueError):
        accountant.rdp_subsampled_gaussian(0.1, 1.0, -1, [2.0])
        pytest.fail("rdp_subsampled_gaussian: steps=-1 must raise ValueError", pytrace=False)


@graded("rdp_subsampled_gaussian")
def test_rdp_rejects_orders_not_above_one(accountant):
    for bad in ([0.5, 2.0], [1.0], [2.0, 1.0]):
        with pytest.raises(ValueError):
            accountant.rdp_subsampled_gaussian(0.1, 1.0, 10, bad)
            pytest.fail(
                f"rdp_subsampled_gaussian: orders {bad} include one <= 1; raise ValueError",
                pytrace=False,
            )


# --------------------------------------------------------------------------- #
# epsilon_from_rdp
# --------------------------------------------------------------------------- #


def epsilon(accountant, rdp, orders, delta):
    result = accountant.epsilon_from_rdp(rdp, orders, delta)
    assert isinstance(result, tuple) and len(result) == 2, (
        f"epsilon_from_rdp: expected a tuple (epsilon, order), got {result!r}"
    )
    eps = python_float("epsilon_from_rdp", result[0], "use float(...)")
    order = python_float("epsilon_from_rdp", result[1], "use float(...)")
    return eps, order


@graded("epsilon_from_rdp")
def test_epsilon_matches_the_conversion_at_the_best_order(accountant, rng):
    g = rng(0)
    for trial in range(20):
        orders = np.sort(1 + g.uniform(0.05, 60, size=15))
        rdp = np.sort(g.uniform(0, 3, size=15)) * (1 + trial / 4)
        delta = 10.0 ** -g.uniform(2, 8)
        got = epsilon(accountant, rdp, orders, delta)
        want = ref_epsilon(rdp, orders, delta)
        assert abs(got[0] - want[0]) < 1e-10 and got[1] == want[1], (
            f"epsilon_from_rdp: delta={delta:.2g}: expected epsilon {want[0]:.6f} at order "
            f"{want[1]:.3f}, got {got[0]:.6f} at {got[1]:.3f}; epsilon_alpha = rdp + log(1/delta)"
            f" / (alpha - 1) + log((alpha - 1) / alpha) - log(alpha) / (alpha - 1), minimised"
        )


@graded("epsilon_from_rdp")
def test_epsilon_of_a_hand_made_curve(accountant):
    # a single order: epsilon = r + log(1/delta)/(alpha-1) + log((alpha-1)/alpha) - log(alpha)/(alpha-1)
    got, order = epsilon(accountant, [0.5], [3.0], 1e-5)
    want = 0.5 + math.log(1e5) / 2 + math.log(2 / 3) - math.log(3) / 2
    assert abs(got - want) < 1e-12 and order == 3.0, (
        f"epsilon_from_rdp: rdp 0.5 at alpha=3 with delta=1e-5 gives 0.5 + log(1e5)/2 + log(2/3)"
        f" - log(3)/2 = {want:.6f}; got {got:.6f} (without the log(1/delta)/(alpha - 1) term "
        f"it would be {want - math.log(1e5) / 2:.6f})"
    )
    classic = 0.5 + math.log(1e5) / 2
    assert got <= classic, "epsilon_from_rdp: never above the classic r + log(1/delta)/(alpha-1)"


@graded("epsilon_from_rdp")
def test_epsilon_handles_infinite_and_tiny_rdp(accountant):
    got, order = epsilon(accountant, [np.inf, 1.0, np.inf], [1.5, 8.0, 64.0], 1e-5)
    want = ref_epsilon([1.0], [8.0], 1e-5)[0]
    assert abs(got - want) < 1e-12 and order == 8.0, (
        f"epsilon_from_rdp: infinite RDP at some orders must not hide the finite one: expected "
        f"{want:.6f} at order 8, got {got} at {order}"
    )
    assert epsilon(accountant, [np.inf], [2.0], 1e-5)[0] == math.inf, (
        "epsilon_from_rdp: an infinite RDP gives an infinite epsilon"
    )
    zero, _ = epsilon(accountant, [0.0, 0.0], [2.0, 1000.0], 0.9)
    assert zero == 0.0, f"epsilon_from_rdp: epsilon is never negative (max(0, ...)), got {zero}"


@graded("epsilon_from_rdp")
@pytest.mark.parametrize("setting", list(OPACUS), ids=lambda s: f"q={s[0]:.3g},sigma={s[1]}")
def test_epsilon_agrees_with_opacus(accountant, setting):
    q, sigma, steps, delta = setting
    # the RDP from numerical integration, so that this spec checks the conversion alone
    rdp = [steps * rdp_by_integration(q, sigma, alpha) for alpha in OPACUS_ORDERS]
    got, order = epsilon(accountant, rdp, OPACUS_ORDERS, delta)
    want, want_order = OPACUS[setting]
    assert rel(got, want) < 1e-3 and order == want_order, (
        f"epsilon_from_rdp: q={q:.4g}, sigma={sigma}, {steps} steps, delta={delta}: Opacus's "
        f"accountant gives epsilon {want:.4f} at order {want_order}; you give {got:.4f} at "
        f"{order}"
    )


@graded("rdp_subsampled_gaussian")
@pytest.mark.parametrize("setting", list(OPACUS), ids=lambda s: f"q={s[0]:.3g},sigma={s[1]}")
def test_rdp_agrees_with_opacus_end_to_end(accountant, setting):
    q, sigma, steps, delta = setting
    rdp = rdp_array(
        "rdp_subsampled_gaussian",
        accountant.rdp_subsampled_gaussian(q, sigma, steps, OPACUS_ORDERS),
        len(OPACUS_ORDERS),
    )
    got, order = ref_epsilon(rdp, OPACUS_ORDERS, delta)
    want, want_order = OPACUS[setting]
    assert rel(got, want) < 1e-3, (
        f"rdp_subsampled_gaussian: q={q:.4g}, sigma={sigma}, {steps} steps: converted to "
        f"delta={delta} your RDP gives epsilon {got:.4f} (best order {order}); Opacus's "
        f"accountant gives {want:.4f} (order {want_order})"
    )


@graded("epsilon_from_rdp")
def test_epsilon_rejects_a_delta_outside_zero_one(accountant):
    for bad in (0.0, 1.0, -1e-5, 1.5):
        with pytest.raises(ValueError):
            accountant.epsilon_from_rdp([1.0], [2.0], bad)
            pytest.fail(
                f"epsilon_from_rdp: delta={bad} is not in (0, 1); raise ValueError", pytrace=False
            )


@graded("epsilon_from_rdp")
def test_epsilon_rejects_orders_not_above_one(accountant):
    for bad in ([1.0, 2.0], [0.5, 3.0]):
        with pytest.raises(ValueError):
            accountant.epsilon_from_rdp([0.1, 0.2], bad, 1e-5)
            pytest.fail(
                f"epsilon_from_rdp: orders {bad} include one <= 1; raise ValueError", pytrace=False
            )


@graded("epsilon_from_rdp")
def test_epsilon_rejects_rdp_and_orders_of_different_lengths(accountant):
    for rdp in ([0.1, 0.2, 0.3], [0.1]):
        with pytest.raises(ValueError):
            accountant.epsilon_from_rdp(rdp, [2.0, 4.0], 1e-5)
            pytest.fail(
                f"epsilon_from_rdp: {len(rdp)} RDP values for 2 orders must raise ValueError",
                pytrace=False,
            )


@graded("rdp_subsampled_gaussian")
def test_rdp_rejects_orders_that_are_not_a_sequence_of_numbers(accountant):
    for bad in ([], [[2.0, 3.0]]):
        with pytest.raises(ValueError):
            accountant.rdp_subsampled_gaussian(0.1, 1.0, 10, bad)
            pytest.fail(
                f"rdp_subsampled_gaussian: orders={bad} is not a non-empty 1-D sequence; raise "
                f"ValueError",
                pytrace=False,
            )


@graded("epsilon_from_rdp")
def test_epsilon_rejects_orders_that_are_not_a_sequence_of_numbers(accountant):
    for rdp, bad in (([], []), ([[0.1, 0.2]], [[2.0, 3.0]])):
        with pytest.raises(ValueError):
            accountant.epsilon_from_rdp(rdp, bad, 1e-5)
            pytest.fail(
                f"epsilon_from_rdp: orders={bad} is not a non-empty 1-D sequence; raise ValueError",
                pytrace=False,
            )
