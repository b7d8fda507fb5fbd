"""Specs for consistency.py: scope (monotonicity), framing gaps and
transitivity of preferences.

Run them with `make test-week7` (add IMPL=solution to see the reference pass).
Every failure message starts with the graded function it is about.
"""

import itertools
import math

import numpy as np
import pytest
import torch

from mlsafety.grading import graded
from mlsafety.specs import number

GRADED = {
    "monotonicity_violations": "core",
    "framing_gap": "core",
    "transitivity_violations": "stretch",
}
pytestmark = pytest.mark.timeout(20)


def count(function, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        pytest.fail(
            f"{function}: expected a Python int (a count), got {type(value).__name__} {value!r}",
            pytrace=False,
        )
    return int(value)


# --------------------------------------------------------------------------- #
# monotonicity_violations
# --------------------------------------------------------------------------- #


def reference_violations(u, increasing, pairs):
    """Loop over the compared pairs i < j and apply the docstring's rule."""
    u = list(np.asarray(u, dtype=float))
    compared = (
        [(i, i + 1) for i in range(len(u) - 1)]
        if pairs == "adjacent"
        else list(itertools.combinations(range(len(u)), 2))
    )
    bad = 0
    for i, j in compared:
        ok = u[j] > u[i] if increasing else u[j] < u[i]
        bad += not ok
    return bad


@graded("monotonicity_violations")
@pytest.mark.parametrize(
    "u,increasing,pairs,want,why",
    [
        ([1, 2, 3, 4], True, "adjacent", 0, "a strictly increasing series"),
        ([1, 2, 3, 4], True, "all", 0, "a strictly increasing series"),
        ([4, 3, 2, 1], True, "adjacent", 3, "every step goes down"),
        ([4, 3, 2, 1], True, "all", 6, "all 6 pairs are the wrong way round"),
        ([4, 3, 2, 1], False, "all", 0, "a harmful act whose utility falls"),
        ([1, 5, 2, 3], True, "adjacent", 1, "only the step 5 -> 2 goes down"),
        ([1, 5, 2, 3], True, "all", 2, "5 > 2 and 5 > 3 come too early"),
        ([1, 5, 2, 3], False, "adjacent", 2, "for a falling series 1 -> 5 and 2 -> 3 go up"),
        ([1, 5, 2, 3], False, "all", 4, "4 of the 6 pairs go up"),
        ([1, 1, 2], True, "adjacent", 1, "a tie (1 -> 1) is a violation: no scope sensitivity"),
        ([2, 2, 2], False, "all", 3, "ties violate a falling series too"),
    ],
)
def test_monotonicity_violations_hand_made_series(consistency, u, increasing, pairs, want, why):
    got = count(
        "monotonicity_violations",
        consistency.monotonicity_violations(u, increasing=increasing, pairs=pairs),
    )
    hint = ""
    if pairs == "all" and got == reference_violations(u, increasing, "adjacent"):
        hint = "; pairs='all' compares every i < j, not only neighbours"
    elif got == reference_violations(u, not increasing, pairs):
        hint = "; that is the count for the other direction"
    assert got == want, (
        f"monotonicity_violations: {u} (increasing={increasing}, pairs={pairs!r}) should "
        f"give {want} ({why}), got {got}{hint}"
    )


@graded("monotonicity_violations")
def test_monotonicity_violations_match_a_reference(consistency):
    g = np.random.default_rng(0)
    for n in (0, 1, 2, 9, 40):
        u = np.round(g.normal(size=n), 1)  # with ties
        for increasing, pairs in itertools.product((True, False), ("adjacent", "all")):
            want = reference_violations(u, increasing, pairs)
            got = count(
                "monotonicity_violations",
                consistency.monotonicity_violations(u, increasing=increasing, pairs=pairs),
            )
            assert got == want, (
                f"monotonicity_violations: a random series of {n} values (increasing="
                f"{increasing}, pairs={pairs!r}) has {want} violations, got {got}"
            )


@graded("monotonicity_violations")
def test_monotonicity_violations_defaults_and_inputs(consistency):
    u = torch.tensor([0.0, 2.0, 1.0, 3.0, 3.0])
    before = u.clone()
    got = count("monotonicity_violations", consistency.monotonicity_violations(u))
    assert got == 2, (
        f"monotonicity_violations: the defaults are increasing=True, pairs='adjacent': "
        f"[0, 2, 1, 3, 3] has 2 violations (2 -> 1 and the tie 3 -> 3), got {got}"
    )
    assert torch.equal(u, before), "monotonicity_violations: modified the utilities in place"
    with pytest.raises(ValueError):
        consistency.monotonicity_violations([1, 2, 3], pairs="neighbours")
        pytest.fail(
            "monotonicity_violations: pairs='neighbours' must raise ValueError", pytrace=False
        )
    with pytest.raises(ValueError):
        consistency.monotonicity_violations(np.zeros((3, 2)))
        pytest.fail("monotonicity_violations: a 2-D input must raise ValueError", pytrace=False)


# --------------------------------------------------------------------------- #
# framing_gap
# --------------------------------------------------------------------------- #


@graded("framing_gap")
def test_framing_gap_closed_form(consistency):
    u_a, u_b = [1.0, 2.0, 3.0], [2.0, 2.0, 0.0]  # gaps -1, 0, +3
    got = number("framing_gap", consistency.framing_gap(u_a, u_b))
    hints = {
        2 / 3: "gaps of opposite signs cancelled: take the mean of |u_a - u_b|",
        3.0: "that is the largest gap; take the mean",
        4.0: "that is the sum; take the mean",
    }
    hint = next((h for v, h in hints.items() if math.isclose(got, v)), "")
    assert math.isclose(got, 4 / 3), (
        f"framing_gap: u_a = {u_a}, u_b = {u_b} should give mean |u_a - u_b| = "
        f"(1 + 0 + 3) / 3 = 1.3333, got {got:.4f}" + (f"; {hint}" if hint else "")
    )
    signed = number("framing_gap", consistency.framing_gap(u_a, u_b, signed=True))
    assert math.isclose(signed, 2 / 3), (
        f"framing_gap: signed=True should give mean(u_a - u_b) = (-1 + 0 + 3) / 3 = 0.6667, "
        f"got {signed:.4f}" + ("; that is mean(u_b - u_a)" if math.isclose(signed, -2 / 3) else "")
    )


@graded("framing_gap")
def test_framing_gap_matches_a_reference_and_its_symmetries(consistency):
    g = np.random.default_rng(1)
    u_a, u_b = g.normal(size=200), g.normal(size=200) + 0.3
    before = (u_a.copy(), u_b.copy())
    want_abs = sum(abs(x - y) for x, y in zip(u_a, u_b, strict=True)) / 200
    want_signed = sum(x - y for x, y in zip(u_a, u_b, strict=True)) / 200
    got_abs = number("framing_gap", consistency.framing_gap(u_a, u_b))
    got_signed = number("framing_gap", consistency.framing_gap(u_a, u_b, signed=True))
    assert math.isclose(got_abs, want_abs, rel_tol=1e-9), (
        f"framing_gap: on 200 random pairs mean |u_a - u_b| = {want_abs:.6f}, got {got_abs:.6f}"
    )
    assert math.isclose(got_signed, want_signed, rel_tol=1e-9), (
        f"framing_gap: on 200 random pairs mean(u_a - u_b) = {want_signed:.6f}, got {got_signed:.6f}"
    )
    swapped = consistency.framing_gap(u_b, u_a, signed=True)
    assert math.isclose(swapped, -want_signed, rel_tol=1e-9), (
        f"framing_gap: swapping the framings must flip the sign of the signed gap "
        f"({want_signed:.4f} -> {swapped:.4f})"
    )
    shifted = consistency.framing_gap(u_a + 5, u_b + 5)
    assert math.isclose(shifted, want_abs, rel_tol=1e-9), (
        f"framing_gap: adding 5 to every utility changed the gap ({want_abs:.4f} -> {shifted:.4f})"
    )
    assert np.array_equal(u_a, before[0]) and np.array_equal(u_b, before[1]), (
        "framing_gap: modified its inputs in place"
    )


@graded("framing_gap")
def test_framing_gap_returns_a_float_and_is_zero_for_identical_framings(consistency):
    u = torch.tensor([0.5, -1.0, 2.0])
    got = consistency.framing_gap(u, u.clone())
    assert type(got) is float, (
        f"framing_gap: returned {type(got).__name__}; return a Python float (float(...))"
    )
    assert got == 0.0, f"framing_gap: identical utilities should give 0.0, got {got}"
    for a, b, why in [([1.0, 2.0], [1.0], "lengths 2 and 1"), ([], [], "no scenarios")]:
        with pytest.raises(ValueError):
            consistency.framing_gap(a, b)
            pytest.fail(f"framing_gap: {why} must raise ValueError", pytrace=False)


# --------------------------------------------------------------------------- #
# transitivity_violations
# --------------------------------------------------------------------------- #


def reference_cycles(prefers) -> int:
    """Brute force over unordered triples: a cycle in one direction or the other."""
    p = np.asarray(prefers, dtype=bool)
    cycles = 0
    for i, j, k in itertools.combinations(range(len(p)), 3):
        cycles += bool((p[i, j] and p[j, k] and p[k, i]) or (p[j, i] and p[k, j] and p[i, k]))
    return cycles


def from_edges(k, edges):
    p = np.zeros((k, k), dtype=bool)
    for i, j in edges:
        p[i, j] = True
    return p


def random_relation(g, k, missing):
    """A random antisymmetric preference relation; each pair left out with prob. ``missing``."""
    p = np.zeros((k, k), dtype=bool)
    for i, j in itertools.combinations(range(k), 2):
        if g.random() < missing:
            continue
        if g.random() < 0.5:
            p[i, j] = True
        else:
            p[j, i] = True
    return p


@graded("transitivity_violations")
@pytest.mark.parametrize(
    "k,edges,want,why",
    [
        (3, [(0, 1), (1, 2), (2, 0)], 1, "rock > scissors > paper > rock"),
        (3, [(0, 1), (1, 2), (0, 2)], 0, "a consistent order"),
        (4, [(0, 1), (1, 2), (2, 0), (0, 3), (1, 3), (2, 3)], 1, "one cycle, 3 loses to all"),
        (3, [(0, 1), (1, 2)], 0, "0 vs 2 is missing: no cycle, only an incomplete order"),
        (
            5,
            [(i, (i + s) % 5) for i in range(5) for s in (1, 2)],
            5,
            "everyone beats the next two: 10 triples, of which 5 are cycles",
        ),
    ],
    ids=["rock-paper-scissors", "order", "cycle+loser", "incomplete", "regular-5"],
)
def test_transitivity_violations_hand_made_relations(consistency, k, edges, want, why):
    got = count(
        "transitivity_violations", consistency.transitivity_violations(from_edges(k, edges))
    )
    hint = ""
    if want and got == 3 * want:
        hint = "; each cycle was counted 3 times (once per starting item): divide by 3"
    elif want and got * 2 == want:
        hint = "; did you divide by 6? a cycle goes round in one direction only"
    assert got == want, (
        f"transitivity_violations: {why}: expected {want} cyclic triple(s), got {got}{hint}"
    )


@graded("transitivity_violations")
def test_transitivity_violations_match_brute_force(consistency):
    g = np.random.default_rng(2)
    for trial in range(12):
        k = int(g.integers(3, 12))
        missing = (0.0, 0.3)[trial % 2]
        p = random_relation(g, k, missing)
        want = reference_cycles(p)
        got = count("transitivity_violations", consistency.transitivity_violations(p))
        assert got == want, (
            f"transitivity_violations: a random relation on {k} items"
            f"{' with some pairs missing' if missing else ''} has {want} cyclic triples, got {got}"
            + (
                "; a triple with a missing preference (i > j, j > k, no i-k judgement) is "
                "not a cycle"
                if missing and got > want
                else ""
            )
        )


@graded("transitivity_violations")
def test_transitivity_violations_of_a_utility_function_is_zero(consistency):
    u = np.random.default_rng(3).normal(size=15)
    prefers = u[:, None] > u[None, :]
    before = prefers.copy()
    got = count("transitivity_violations", consistency.transitivity_violations(prefers))
    assert got == 0, (
        f"transitivity_violations: preferences from utilities (i > j when u[i] > u[j]) never "
        f"cycle, got {got}"
    )
    assert np.array_equal(prefers, before), "transitivity_violations: modified its input in place"
    as_ints = consistency.transitivity_violations(
        from_edges(3, [(0, 1), (1, 2), (2, 0)]).astype(int)
    )
    assert as_ints == 1, (
        f"transitivity_violations: a 0/1 integer matrix of a 3-cycle should give 1, got {as_ints}"
    )


@graded("transitivity_violations")
@pytest.mark.parametrize(
    "prefers,why",
    [
        (np.zeros((3, 4), dtype=bool), "a 3 x 4 matrix"),
        (np.eye(3, dtype=bool), "an item preferred to itself"),
        (from_edges(3, [(0, 1), (1, 0)]), "0 > 1 and 1 > 0 together"),
        (np.full((3, 3), 2) * (1 - np.eye(3, dtype=int)), "values other than 0/1"),
    ],
    ids=["not-square", "diagonal", "both-ways", "not-boolean"],
)
def test_transitivity_violations_rejects_malformed_relations(consistency, prefers, why):
    with pytest.raises(ValueError):
        consistency.transitivity_violations(prefers)
        pytest.fail(f"transitivity_violations: {why} must raise ValueError", pytrace=False)


@graded("monotonicity_violations")
@pytest.mark.parametrize("pairs", ["adjacent", "all"])
def test_monotonicity_violations_of_fewer_than_two_scenarios(consistency, pairs):
    for u in ([], [4.0]):
        for increasing in (True, False):
            try:
                value = consistency.monotonicity_violations(u, increasing=increasing, pairs=pairs)
            except ValueError as err:
                pytest.fail(
                    f"monotonicity_violations: {len(u)} scenario(s) must give 0 violations, not "
                    f"raise ValueError ({str(err)[:60]})",
                    pytrace=False,
                )
            got = count("monotonicity_violations", value)
            assert got == 0, (
                f"monotonicity_violations: {len(u)} scenario(s) leave nothing to compare, so "
                f"pairs={pairs!r} gives 0 violations, got {got}"
            )


@graded("transitivity_violations")
@pytest.mark.parametrize(
    "prefers,why",
    [
        (np.zeros((1, 1, 1), dtype=bool), "a 3-D array of shape (1, 1, 1)"),
        (np.array([[0, 2, 0], [0, 0, 0], [0, 0, 0]]), "a 2 off the diagonal"),
        (np.array([[0.0, 0.5], [0.0, 0.0]]), "a 0.5"),
    ],
    ids=["3-d", "two", "half"],
)
def test_transitivity_violations_rejects_what_only_its_checks_catch(consistency, prefers, why):
    try:
        consistency.transitivity_violations(prefers)
    except ValueError:
        return
    except Exception as err:  # noqa: BLE001 - any other error is the wrong one
        pytest.fail(
            f"transitivity_violations: {why} must raise ValueError, got {type(err).__name__} "
            f"({str(err)[:60]}); check the input first",
            pytrace=False,
        )
    pytest.fail(f"transitivity_violations: {why} must raise ValueError", pytrace=False)
