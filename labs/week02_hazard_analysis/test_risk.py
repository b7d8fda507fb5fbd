"""Specs for risk.py: risk decomposition, FMEA, fault trees and layered defences.

Run them with `make test-week2` (add IMPL=solution to see the reference pass).
Every failure message starts with the graded function it is about.
"""

import copy
import itertools
import math
from statistics import NormalDist

import numpy as np
import pytest

from mlsafety.grading import graded
from mlsafety.specs import number, same_global_draw

GRADED = {
    "expected_risk": "core",
    "fmea_rank": "core",
    "fault_tree_probability": "core",
    "layered_defence_failure": "stretch",
}
pytestmark = pytest.mark.timeout(20)


# --------------------------------------------------------------------------- #
# expected_risk
# --------------------------------------------------------------------------- #


def reference_risk(p, s, e, v):
    return sum(pi * si * ei * vi for pi, si, ei, vi in zip(p, s, e, v, strict=True))


@graded("expected_risk")
def test_expected_risk_closed_form(risk):
    p, s = [0.1, 0.5, 0.02], [10.0, 2.0, 300.0]
    got = number("expected_risk", risk.expected_risk(p, s))
    hints = {
        sum(p) * sum(s): "that is sum(p) * sum(severity); multiply per hazard, then sum",
        8.0 / 3: "that is the mean over hazards; the risk is the sum",
    }
    hint = next((h for value, h in hints.items() if math.isclose(got, value)), "")
    assert math.isclose(got, 8.0, rel_tol=1e-9), (
        f"expected_risk: probability {p}, severity {s} should give "
        f"0.1*10 + 0.5*2 + 0.02*300 = 8.0, got {got:.6g}" + (f"; {hint}" if hint else "")
    )


@graded("expected_risk")
def test_expected_risk_decomposes_into_hazard_exposure_vulnerability(risk, rng):
    gen = rng(0)
    for n in (1, 4, 50):
        p, e, v = gen.random(n), gen.random(n), gen.random(n)
        s = gen.exponential(100.0, n)
        want = reference_risk(p, s, e, v)
        got = number("expected_risk", risk.expected_risk(p, s, exposure=e, vulnerability=v))
        assert math.isclose(got, want, rel_tol=1e-9), (
            f"expected_risk: with {n} hazards and exposure/vulnerability given, expected "
            f"sum_h p*severity*exposure*vulnerability = {want:.6g}, got {got:.6g}"
        )
    plain = risk.expected_risk(p, s)
    ones = risk.expected_risk(p, s, exposure=np.ones(n), vulnerability=np.ones(n))
    assert math.isclose(plain, ones, rel_tol=1e-12), (
        f"expected_risk: exposure = vulnerability = 1 must equal the default ({ones:.6g} vs {plain:.6g})"
    )
    want = reference_risk(p, s, [0.3] * n, [0.5] * n)
    got = risk.expected_risk(p, s, exposure=0.3, vulnerability=0.5)
    assert math.isclose(got, want, rel_tol=1e-9), (
        f"expected_risk: a scalar exposure 0.3 and vulnerability 0.5 apply to every hazard: "
        f"expected {want:.6g}, got {got:.6g}"
    )


@graded("expected_risk")
def test_expected_risk_each_factor_scales_its_hazard(risk):
    p, s = [0.2, 0.4], [50.0, 10.0]  # contributions 10 and 4
    cases = [
        ({"exposure": [0.0, 1.0]}, 4.0, "exposure 0 must remove the first hazard's contribution"),
        ({"vulnerability": [1.0, 0.5]}, 12.0, "halving vulnerability must halve a contribution"),
        ({"exposure": [0.5, 1.0], "vulnerability": [0.5, 1.0]}, 6.5, "the factors multiply"),
    ]
    for kwargs, want, why in cases:
        got = risk.expected_risk(p, s, **kwargs)
        assert math.isclose(got, want, rel_tol=1e-9), (
            f"expected_risk: probability {p}, severity {s}, {kwargs}: expected {want}, "
            f"got {got:.6g} ({why})"
        )


@graded("expected_risk")
def test_expected_risk_returns_a_float_and_leaves_inputs_alone(risk):
    p, s = np.array([0.1, 0.2]), np.array([3.0, 4.0])
    e, v = np.array([0.5, 0.5]), np.array([0.9, 0.1])
    before = [a.copy() for a in (p, s, e, v)]
    got = risk.expected_risk(p, s, e, v)
    assert type(got) is float, (
        f"expected_risk: returned {type(got).__name__}; return a Python float (wrap it in float(...))"
    )
    for name, a, b in zip(
        ("probability", "severity", "exposure", "vulnerability"), (p, s, e, v), before, strict=True
    ):
        assert np.array_equal(a, b), f"expected_risk: modified the {name} array in place"
    assert math.isclose(risk.expected_risk([0.5], [4]), 2.0), (
        "expected_risk: should accept plain lists (use np.asarray)"
    )
    empty = risk.expected_risk([], [])
    assert empty == 0.0, f"expected_risk: no hazards should give 0.0, got {empty}"


@graded("expected_risk")
@pytest.mark.parametrize(
    "kwargs,what",
    [
        ({"probability": [0.5, 1.2], "severity": [1, 1]}, "a probability of 1.2"),
        ({"probability": [0.5, -0.1], "severity": [1, 1]}, "a probability of -0.1"),
        ({"probability": [0.5, 0.5], "severity": [1, -3]}, "a negative severity"),
        ({"probability": [0.5], "severity": [1], "exposure": 1.5}, "an exposure of 1.5"),
        ({"probability": [0.5], "severity": [1], "vulnerability": -0.2}, "a vulnerability of -0.2"),
        (
            {"probability": [0.5, 0.5, 0.5], "severity": [1, 1]},
            "3 probabilities for 2 severities (lengths that do not broadcast)",
        ),
        (
            {"probability": [0.5, 0.5], "severity": [1, 1], "exposure": [1, 1, 1]},
            "3 exposures for 2 hazards (lengths that do not broadcast)",
        ),
    ],
    ids=["p>1", "p<0", "severity<0", "exposure>1", "vulnerability<0", "3-vs-2", "exposure-3-vs-2"],
)
def test_expected_risk_rejects_impossible_inputs(risk, kwargs, what):
    with pytest.raises(ValueError):
        risk.expected_risk(**kwargs)
        pytest.fail(f"expected_risk: {what} must raise ValueError", pytrace=False)


# --------------------------------------------------------------------------- #
# fmea_rank
# --------------------------------------------------------------------------- #


def mode(name, s, o, d, **extra):
    return {"name": name, "severity": s, "occurrence": o, "detection": d, **extra}


def ranking(got) -> list[tuple]:
    """fmea_rank's result as a list of tuples, or a failure saying what shape it should have."""
    if not isinstance(got, (list, tuple)) or not all(isinstance(r, (list, tuple)) for r in got):
        pytest.fail(f"fmea_rank: expected a list of (name, rpn) pairs, got {got!r}", pytrace=False)
    return [tuple(row) for row in got]


def reference_fmea(modes):
    keyed = [
        (-(m["severity"] * m["occurrence"] * m["detection"]), -m["severity"], i, m["name"])
        for i, m in enumerate(modes)
    ]
    return [(name, -neg_rpn) for neg_rpn, _, _, name in sorted(keyed)]


@graded("fmea_rank")
def test_fmea_rank_orders_by_the_product_of_ratings(risk):
    # Chosen so that sum, S*O and ascending orders all differ from the product order.
    sheet = [
        mode("stale features", 4, 5, 6),  # 120, sum 15
        mode("label noise", 9, 9, 1),  # 81, sum 19, S*O 81 (largest)
        mode("silent data drift", 5, 4, 9),  # 180, sum 18
        mode("cosmetic typo", 1, 2, 2),  # 4
    ]
    want = [
        ("silent data drift", 180),
        ("stale features", 120),
        ("label noise", 81),
        ("cosmetic typo", 4),
    ]
    got = ranking(risk.fmea_rank(sheet))
    assert got == want, (
        f"fmea_rank: expected {want}, got {got}; RPN = severity * occurrence * detection, "
        f"highest first"
    )


@graded("fmea_rank")
def test_fmea_rank_breaks_ties_by_severity_then_input_order(risk):
    sheet = [
        mode("b: frequent nuisance", 2, 10, 3),  # 60, severity 2
        mode("z: rare disaster", 10, 2, 3),  # 60, severity 10
        mode("y: first of a pair", 5, 4, 3),  # 60, severity 5
        mode("a: second of a pair", 5, 3, 4),  # 60, severity 5
    ]
    want = [
        ("z: rare disaster", 60),
        ("y: first of a pair", 60),
        ("a: second of a pair", 60),
        ("b: frequent nuisance", 60),
    ]
    got = ranking(risk.fmea_rank(sheet))
    assert got == want, (
        f"fmea_rank: four modes share RPN 60; expected {[n for n, _ in want]}, got "
        f"{[n for n, _ in got]}; break ties by severity (higher first), then keep the input order"
    )


@graded("fmea_rank")
def test_fmea_rank_matches_a_brute_force_ranking(risk, rng):
    gen = rng(1)
    for size in (1, 7, 40):
        ratings = gen.integers(1, 11, size=(size, 3))
        sheet = [mode(f"mode {i}", *map(int, r)) for i, r in enumerate(ratings)]
        want = reference_fmea(sheet)
        got = ranking(risk.fmea_rank(sheet))
        assert got == want, (
            f"fmea_rank: on a random worksheet of {size} modes the ranking differs from "
            f"sorting by (RPN desc, severity desc, input order); first rows expected {want[:4]}, "
            f"got {got[:4]}"
        )


@graded("fmea_rank")
def test_fmea_rank_returns_new_rows_of_ints_and_leaves_the_sheet_alone(risk):
    sheet = [mode("a", 3, 3, 3, owner="data team"), mode("b", 7, 2, 5)]
    before = copy.deepcopy(sheet)
    got = ranking(risk.fmea_rank(sheet))
    assert sheet == before, (
        "fmea_rank: modified the worksheet (its list or dicts); build new rows instead"
    )
    assert len(got) == 2 and all(len(row) == 2 for row in got), (
        f"fmea_rank: expected one (name, rpn) pair per mode, got {got}"
    )
    assert all(type(row[1]) is int for row in got), (
        f"fmea_rank: RPNs must be Python ints, got {[type(row[1]).__name__ for row in got]}"
    )
    assert risk.fmea_rank([]) == [], "fmea_rank: an empty worksheet should give []"


@graded("fmea_rank")
@pytest.mark.parametrize(
    "bad", [mode("x", 0, 5, 5), mode("x", 5, 11, 5), mode("x", 5, 5, 2.5)], ids=["0", "11", "2.5"]
)
def test_fmea_rank_rejects_ratings_outside_1_to_10(risk, bad):
    with pytest.raises(ValueError):
        risk.fmea_rank([mode("ok", 5, 5, 5), bad])
        pytest.fail(
            f"fmea_rank: rating {[bad[k] for k in ('severity', 'occurrence', 'detection')]} "
            f"must raise ValueError (ratings are integers 1..10)",
            pytrace=False,
        )


@graded("fmea_rank")
def test_fmea_rank_accepts_the_ends_of_the_scale(risk):
    sheet = [mode("least", 1, 1, 1), mode("worst", 10, 10, 10)]
    got = ranking(risk.fmea_rank(sheet))
    assert got == [("worst", 1000), ("least", 1)], (
        f"fmea_rank: ratings 10, 10, 10 and 1, 1, 1 are valid (each rating is 1..10, both ends "
        f"included) and give RPN 1000 and 1; expected [('worst', 1000), ('least', 1)], got {got}"
    )


# --------------------------------------------------------------------------- #
# fault_tree_probability
# --------------------------------------------------------------------------- #


def evaluate(tree, happened):
    """Does the top event happen, given which basic events happened?"""
    if isinstance(tree, str):
        return happened[tree]
    results = [evaluate(child, happened) for child in tree[1:]]
    return all(results) if tree[0] == "AND" else any(results)


def brute_force_probability(tree, probs):
    """Sum the probability of every joint outcome of the basic events where the top happens."""
    names = sorted(probs)
    total = 0.0
    for outcome in itertools.product([False, True], repeat=len(names)):
        weight = math.prod(
            probs[n] if o else 1 - probs[n] for n, o in zip(names, outcome, strict=True)
        )
        if evaluate(tree, dict(zip(names, outcome, strict=True))):
            total += weight
    return total


def random_tree(gen, events):
    """A random tree over the distinct basic events ``events``, each used once."""
    if len(events) == 1:
        return events[0] if gen.random() < 0.85 else ("OR", events[0])  # one-input gates too
    n_inputs = int(gen.integers(2, min(4, len(events)) + 1))
    cuts = sorted(
        int(c) for c in gen.choice(np.arange(1, len(events)), n_inputs - 1, replace=False)
    )
    groups = [events[a:b] for a, b in itertools.pairwise([0, *cuts, len(events)])]
    gate = "AND" if gen.random() < 0.5 else "OR"
    return (gate, *(random_tree(gen, group) for group in groups))


@graded("fault_tree_probability")
def test_fault_tree_closed_forms(risk):
    probs = {"a": 0.5, "b": 0.6, "c": 0.7, "d": 0.1}
    cases = [
        ("a", 0.5, "a basic event alone has its own probability"),
        (("AND", "a", "b", "c"), 0.21, "AND of independent events multiplies: 0.5*0.6*0.7"),
        (
            ("OR", "a", "b", "c"),
            0.94,
            "OR is 1 - (1-0.5)(1-0.6)(1-0.7), not the sum (1.8) nor the max",
        ),
        (("OR", "d"), 0.1, "a gate with one input passes its probability through"),
        (
            ("OR", "d", ("AND", "a", "b")),
            1 - 0.9 * 0.7,
            "nested: OR(d, AND(a, b)) = 1 - (1-0.1)(1-0.3)",
        ),
        (
            ("AND", ("OR", "a", "b"), ("OR", "c", "d")),
            0.8 * 0.73,
            "nested: AND(OR(a, b), OR(c, d)) = 0.8 * 0.73",
        ),
    ]
    for tree, want, why in cases:
        got = number("fault_tree_probability", risk.fault_tree_probability(tree, probs))
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12), (
            f"fault_tree_probability: {tree} with {probs} should be {want:.4f}, got {got:.4f} ({why})"
        )


@graded("fault_tree_probability")
def test_fault_tree_matches_enumerating_every_outcome(risk, rng):
    gen = rng(2)
    for trial in range(25):
        n = int(gen.integers(1, 9))
        names = [f"e{i}" for i in range(n)]
        tree = random_tree(gen, names)
        probs = {name: float(p) for name, p in zip(names, gen.uniform(0.05, 0.95, n), strict=True)}
        want = brute_force_probability(tree, probs)
        got = number("fault_tree_probability", risk.fault_tree_probability(tree, probs))
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12), (
            f"fault_tree_probability: random tree #{trial} {tree} gives {got:.6f}, but summing "
            f"over all 2^{n} outcomes of its basic events gives {want:.6f}; "
            f"AND = product, OR = 1 - product of (1 - p), recurse into every input"
        )


@graded("fault_tree_probability")
def test_fault_tree_stays_a_probability_and_leaves_inputs_alone(risk):
    probs = {"a": 0.9, "b": 0.8, "c": 0.95, "d": 0.99}
    tree = ["OR", "a", "b", ["OR", "c", "d"]]  # lists work like tuples
    before_tree, before_probs = copy.deepcopy(tree), dict(probs)
    got = number("fault_tree_probability", risk.fault_tree_probability(tree, probs))
    assert type(got) is float, (
        f"fault_tree_probability: returned {type(got).__name__}; return a Python float"
    )
    assert 0.0 <= got <= 1.0, (
        f"fault_tree_probability: an OR of events with p = 0.9, 0.8, 0.95, 0.99 gave {got:.4f}, "
        f"which is not a probability; OR is 1 - prod(1 - p), not the sum"
    )
    assert tree == before_tree and probs == before_probs, (
        "fault_tree_probability: modified the tree or the probabilities"
    )
    extra = risk.fault_tree_probability(("AND", "a", "b"), {**probs, "unused": 0.5})
    assert math.isclose(extra, 0.72), (
        f"fault_tree_probability: events not in the tree must be ignored (got {extra})"
    )


@graded("fault_tree_probability")
def test_fault_tree_accepts_probabilities_0_and_1(risk):
    probs = {"a": 0.5, "never": 0.0, "always": 1.0}
    cases = [
        (("OR", "a", "never"), 0.5, "an event that never happens adds nothing to an OR"),
        (("AND", "a", "always"), 0.5, "an event that always happens changes nothing in an AND"),
        (("AND", "a", "never"), 0.0, "an AND with an impossible input never happens"),
        (("OR", "a", "always"), 1.0, "an OR with a certain input always happens"),
    ]
    for tree, want, why in cases:
        got = number("fault_tree_probability", risk.fault_tree_probability(tree, probs))
        assert math.isclose(got, want, abs_tol=1e-12), (
            f"fault_tree_probability: {tree} with {probs} should be {want}, got {got} ({why}; "
            f"probabilities 0 and 1 are valid: the range [0, 1] includes its ends)"
        )


@graded("fault_tree_probability")
@pytest.mark.parametrize(
    "tree,probs,why",
    [
        (("XOR", "a", "b"), {"a": 0.1, "b": 0.2}, "an unknown gate 'XOR'"),
        (("AND",), {}, "a gate without inputs"),
        (("OR", "a", "missing"), {"a": 0.1}, "a basic event missing from probabilities"),
        (("OR", "a", "b"), {"a": 0.1, "b": 1.5}, "a probability of 1.5"),
        (
            ("OR", ("AND", "a", "b"), ("AND", "a", "c")),
            {"a": 0.1, "b": 0.2, "c": 0.3},
            "basic event 'a' appearing twice (its gates are not independent)",
        ),
    ],
    ids=["unknown-gate", "empty-gate", "missing-event", "bad-probability", "repeated-event"],
)
def test_fault_tree_rejects_malformed_trees(risk, tree, probs, why):
    with pytest.raises(ValueError):
        risk.fault_tree_probability(tree, probs)
        pytest.fail(f"fault_tree_probability: {why} must raise ValueError", pytrace=False)


# --------------------------------------------------------------------------- #
# layered_defence_failure
# --------------------------------------------------------------------------- #

TRIALS = 200_000
NORMAL = NormalDist()


def one_factor_reference(p, rho):
    """P(all layers fail) under the one-factor Gaussian model, by Gauss-Hermite
    quadrature over the shared factor: E_S[ prod_i Phi((t_i - sqrt(rho) S) / sqrt(1 - rho)) ]."""
    if rho == 1:
        return min(p)
    nodes, weights = np.polynomial.hermite_e.hermegauss(120)
    weights = weights / weights.sum()
    thresholds = [NORMAL.inv_cdf(pi) for pi in p]
    conditional = [
        math.prod(NORMAL.cdf((t - math.sqrt(rho) * s) / math.sqrt(1 - rho)) for t in thresholds)
        for s in nodes
    ]
    return float(np.dot(weights, conditional))


def tolerance(prob, trials=TRIALS, sigmas=4.5):
    return sigmas * math.sqrt(max(prob * (1 - prob), 1e-6) / trials)


@graded("layered_defence_failure")
@pytest.mark.parametrize("p", [[0.1, 0.2, 0.3], [0.5, 0.5], [0.3, 0.05, 0.4, 0.6]])
def test_independent_layers_fail_together_with_the_product(risk, rng, p):
    got = number("layered_defence_failure", risk.layered_defence_failure(p, 0.0, TRIALS, rng(3)))
    want = math.prod(p)
    assert abs(got - want) <= tolerance(want), (
        f"layered_defence_failure: independent layers {p} (correlation 0) should all fail with "
        f"probability prod(p) = {want:.5f}, got {got:.5f} over {TRIALS} trials; a trial counts "
        f"only when every layer fails"
    )


@graded("layered_defence_failure")
@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9, 1.0])
def test_one_layer_keeps_its_failure_probability(risk, rng, rho):
    got = number(
        "layered_defence_failure", risk.layered_defence_failure([0.1], rho, TRIALS, rng(4))
    )
    assert abs(got - 0.1) <= tolerance(0.1), (
        f"layered_defence_failure: a single layer with p = 0.1 must fail with probability 0.1 at "
        f"any correlation, got {got:.4f} at correlation {rho}; Z = sqrt(rho) S + sqrt(1 - rho) E "
        f"must stay standard normal and the layer fails when Z < Phi^-1(p)"
    )


@graded("layered_defence_failure")
@pytest.mark.parametrize("rho", [0.3, 0.7, 1.0])
def test_correlated_layers_match_the_one_factor_model(risk, rng, rho):
    p = [0.1, 0.2, 0.05]
    got = number("layered_defence_failure", risk.layered_defence_failure(p, rho, TRIALS, rng(5)))
    want = one_factor_reference(p, rho)
    assert abs(got - want) <= tolerance(want), (
        f"layered_defence_failure: layers {p} at correlation {rho} should all fail with "
        f"probability {want:.5f} (one-factor model, by quadrature), got {got:.5f}; use "
        f"Z_i = sqrt(rho) * S + sqrt(1 - rho) * E_i with one S per trial shared by all layers"
    )


@graded("layered_defence_failure")
def test_correlation_raises_the_joint_failure_above_the_product(risk, rng):
    p = [0.1, 0.1, 0.1]
    rhos = [0.0, 0.25, 0.5, 0.75, 1.0]
    got = [
        number("layered_defence_failure", risk.layered_defence_failure(p, rho, TRIALS, rng(6)))
        for rho in rhos
    ]
    product = math.prod(p)
    rising = all(a < b for a, b in itertools.pairwise(got))
    assert rising and got[2] > 5 * product, (
        f"layered_defence_failure: three layers with p = 0.1 at correlations {rhos} gave "
        f"{[round(g, 5) for g in got]}; a shared cause must raise the chance that all fail "
        f"together from prod(p) = {product:.4f} towards min(p) = 0.1"
    )


@graded("layered_defence_failure")
def test_layered_defence_is_reproducible_from_the_generator(risk, rng):
    p = [0.3, 0.4]
    first = risk.layered_defence_failure(p, 0.5, 2000, rng(7))
    again = risk.layered_defence_failure(p, 0.5, 2000, rng(7))
    other = [risk.layered_defence_failure(p, 0.5, 2000, rng(s)) for s in (8, 9, 10)]
    assert first == again, (
        f"layered_defence_failure: the same seed gave {first} and {again}; draw only from `rng`"
    )
    assert any(o != first for o in other), (
        "layered_defence_failure: different seeds gave identical estimates; draw from `rng`"
    )
    assert same_global_draw(lambda: risk.layered_defence_failure(p, 0.5, 2000, rng(7))), (
        "layered_defence_failure: used the global numpy.random state; draw only from `rng`"
    )
    assert type(first) is float and math.isclose(first * 2000, round(first * 2000)), (
        f"layered_defence_failure: expected a Python float count / trials, got {first!r}"
    )


@graded("layered_defence_failure")
def test_layered_defence_edge_cases(risk, rng):
    p = np.array([0.2, 0.0, 0.5])
    before = p.copy()
    never = risk.layered_defence_failure(p, 0.8, 5000, rng(11))
    assert never == 0.0, (
        f"layered_defence_failure: a layer that never fails (p = 0) means the defence never "
        f"fails, got {never}"
    )
    assert np.array_equal(p, before), "layered_defence_failure: modified failure_probs in place"
    always = risk.layered_defence_failure([1.0, 1.0], 0.3, 5000, rng(11))
    assert always == 1.0, f"layered_defence_failure: layers with p = 1 always fail, got {always}"
    for bad in (
        {"correlation": 1.5},
        {"correlation": -0.1},
        {"failure_probs": [0.5, -0.1]},
        {"failure_probs": [0.5, float("nan")]},
        {"failure_probs": []},
        {"trials": 0},
    ):
        kwargs = {"failure_probs": [0.5, 0.5], "correlation": 0.5, "trials": 100} | bad
        with pytest.raises(ValueError):
            risk.layered_defence_failure(rng=rng(0), **kwargs)
            pytest.fail(f"layered_defence_failure: {bad} must raise ValueError", pytrace=False)
