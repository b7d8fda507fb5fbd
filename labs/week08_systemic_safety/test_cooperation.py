"""Specs for cooperation.py: strategies of the iterated prisoner's dilemma,
matches with noise, round-robin tournaments, replicator dynamics, Nash
equilibria and Pareto optimality.

Run them with `make test-week8` (add IMPL=solution to see the reference pass).
Every failure message starts with the graded function it is about.
"""

import itertools

import numpy as np
import pytest

from mlsafety.grading import graded
from mlsafety.specs import array, same_global_draw

GRADED = {
    "always_cooperate": "core",
    "always_defect": "core",
    "tit_for_tat": "core",
    "grim_trigger": "core",
    "generous_tit_for_tat": "core",
    "win_stay_lose_shift": "core",
    "play_match": "core",
    "round_robin": "core",
    "replicator_step": "stretch",
    "is_nash": "stretch",
    "pareto_front": "stretch",
}
pytestmark = pytest.mark.timeout(20)

C, D = 0, 1
PD = np.array([[3.0, 0.0], [5.0, 1.0]])
NAMES = {C: "C", D: "D"}


def show(moves) -> str:
    return "".join(NAMES.get(int(m), "?") for m in moves) or "(none)"


# --------------------------------------------------------------------------- #
# Reference strategies and match, written plainly: the specs of play_match and
# round_robin use these, so they do not depend on the strategies you wrote.
# --------------------------------------------------------------------------- #


def ref_all_c(mine, theirs, rng):
    return C


def ref_all_d(mine, theirs, rng):
    return D


def ref_tft(mine, theirs, rng):
    return C if not theirs else theirs[-1]


def ref_grim(mine, theirs, rng):
    return D if D in theirs else C


def ref_gtft(mine, theirs, rng, generosity=1 / 3):
    if not theirs or theirs[-1] == C:
        return C
    return C if rng.random() < generosity else D


def ref_wsls(mine, theirs, rng):
    if not mine:
        return C
    return mine[-1] if theirs[-1] == C else 1 - mine[-1]


def ref_alternate(mine, theirs, rng):
    """C, D, C, D, ... whatever the opponent does."""
    return len(mine) % 2


def ref_match(a, b, rounds, rng, payoff=PD, noise=0.0):
    moves_a, moves_b, pay = [], [], []
    for _ in range(rounds):
        x = a(list(moves_a), list(moves_b), rng)
        y = b(list(moves_b), list(moves_a), rng)
        u = rng.random(2)
        x = 1 - x if u[0] < noise else x
        y = 1 - y if u[1] < noise else y
        moves_a.append(x)
        moves_b.append(y)
        pay.append((payoff[x][y], payoff[y][x]))
    return np.array([moves_a, moves_b]).T, np.array(pay, dtype=float)


def ref_round_robin(strategies, rounds, rng, payoff=PD, noise=0.0):
    k = len(strategies)
    table = np.zeros((k, k))
    for i in range(k):
        for j in range(i, k):
            _, pay = ref_match(strategies[i], strategies[j], rounds, rng, payoff, noise)
            if i == j:
                table[i, i] = pay.mean()
            else:
                table[i, j], table[j, i] = pay[:, 0].mean(), pay[:, 1].mean()
    return table


# --------------------------------------------------------------------------- #
# The six strategies
# --------------------------------------------------------------------------- #


def move_of(name, strategy, mine, theirs, rng=None):
    """Call a strategy on copies of the histories; check the move and that
    nothing was modified or drawn from rng (deterministic strategies)."""
    rng = rng if rng is not None else np.random.default_rng(0)
    my_list, their_list = list(mine), list(theirs)
    move = strategy(my_list, their_list, rng)
    if isinstance(move, bool) or not isinstance(move, (int, np.integer)) or move not in (C, D):
        pytest.fail(
            f"{name}: returned {move!r} ({type(move).__name__}); a move is the int C = 0 or D = 1",
            pytrace=False,
        )
    assert my_list == list(mine) and their_list == list(theirs), (
        f"{name}: modified the move histories it was given"
    )
    return int(move)


DETERMINISTIC_CASES = {
    # (my moves, their moves) -> move of each strategy
    "always_cooperate": [((), (), C), ((D,), (D,), C), ((C, D, D), (D, D, D), C)],
    "always_defect": [((), (), D), ((C,), (C,), D), ((C, C, C), (C, C, C), D)],
    "tit_for_tat": [
        ((), (), C),
        ((C,), (D,), D),
        ((D,), (C,), C),
        ((C, C, D), (D, D, C), C),
        ((C, D), (C, D), D),
        ((D, D, D, C), (D, C, C, D), D),
    ],
    "grim_trigger": [
        ((), (), C),
        ((C, C), (C, C), C),
        ((C, D), (D, C), D),
        ((D,), (C,), C),
        ((D, D, C), (C, C, C), C),
        ((C, C, C, C), (C, D, C, C), D),
        ((C, C), (C, D), D),
    ],
    "win_stay_lose_shift": [
        ((), (), C),
        ((C,), (C,), C),
        ((C,), (D,), D),
        ((D,), (C,), D),
        ((D,), (D,), C),
        ((C, D, D), (D, D, C), D),
        ((D, C, D), (C, D, D), C),
    ],
}
WHY = {
    "always_cooperate": "always C",
    "always_defect": "always D",
    "tit_for_tat": "C first, then the opponent's previous move",
    "grim_trigger": "C until the opponent has defected once, then D for ever",
    "win_stay_lose_shift": "C first; then repeat my move if the opponent cooperated, else switch",
}


def strategy_hint(name, mine, theirs, want, got):
    if not mine and want == C:
        return "; start by cooperating"
    if name == "tit_for_tat" and mine and got == mine[-1]:
        return "; copy the opponent's previous move, not your own"
    if name == "tit_for_tat" and theirs and got == theirs[0]:
        return "; copy the opponent's *previous* move (their_moves[-1])"
    if name == "grim_trigger" and D in mine and D not in theirs:
        return "; only the opponent's defections trigger it, not your own"
    if name == "grim_trigger" and theirs and theirs[-1] == D and got == C:
        return "; the opponent's latest move counts too"
    if name == "grim_trigger" and D in theirs and theirs[-1] == C:
        return "; once triggered it never forgives, even if the opponent cooperates again"
    if name == "win_stay_lose_shift" and mine and mine[-1] == D and theirs[-1] == D:
        return "; after mutual defection both lost: shift to the other move (C)"
    if name == "win_stay_lose_shift" and mine:
        return "; the previous round went well exactly when the opponent cooperated"
    return ""


def deterministic_params():
    for name, cases in DETERMINISTIC_CASES.items():
        yield pytest.param(name, cases, marks=graded(name), id=name)


@pytest.mark.parametrize("name,cases", list(deterministic_params()))
def test_deterministic_strategy_on_hand_made_histories(cooperation, name, cases):
    strategy = getattr(cooperation, name)
    for mine, theirs, want in cases:
        got = move_of(name, strategy, mine, theirs)
        assert got == want, (
            f"{name}: after my moves {show(mine)} and the opponent's {show(theirs)} it should "
            f"play {NAMES[want]} ({WHY[name]}), got {NAMES[got]}"
            + strategy_hint(name, mine, theirs, want, got)
        )


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=graded(name), id=name) for name in DETERMINISTIC_CASES]
)
def test_deterministic_strategy_draws_no_random_numbers(cooperation, name):
    strategy = getattr(cooperation, name)
    histories = [((), ()), ((C, D), (D, D)), ((D, D, C), (C, D, C))]
    for mine, theirs in histories:
        rng, untouched = np.random.default_rng(5), np.random.default_rng(5)
        move_of(name, strategy, mine, theirs, rng)
        assert rng.random() == untouched.random(), (
            f"{name}: drew from rng; a deterministic strategy must not use it (it would shift "
            f"the noise of the match)"
        )
        assert same_global_draw(lambda m=mine, t=theirs, r=rng: strategy(list(m), list(t), r)), (
            f"{name}: used the global numpy random state"
        )
    # tuples work as well as lists (play_match may pass either)
    move_of(name, strategy, (C, D), (D, C))
    got = strategy((C, D), (D, C), np.random.default_rng(0))
    assert got in (C, D), f"{name}: histories given as tuples gave {got!r}"


def gtft_move(cooperation, mine, theirs, rng, **kw):
    return move_of(
        "generous_tit_for_tat",
        lambda m, t, r: cooperation.generous_tit_for_tat(m, t, r, **kw),
        mine,
        theirs,
        rng,
    )


@graded("generous_tit_for_tat")
def test_generous_tit_for_tat_after_cooperation_is_tit_for_tat(cooperation):
    for mine, theirs in [((), ()), ((C,), (C,)), ((D, D), (D, C)), ((C, D, C), (D, D, C))]:
        rng, untouched = np.random.default_rng(1), np.random.default_rng(1)
        got = gtft_move(cooperation, mine, theirs, rng)
        assert got == C, (
            f"generous_tit_for_tat: after my moves {show(mine)} and the opponent's {show(theirs)} "
            f"it should cooperate (first round, or the opponent cooperated), got D"
        )
        assert rng.random() == untouched.random(), (
            f"generous_tit_for_tat: drew from rng after the opponent's {show(theirs)}; draw only "
            f"when the opponent defected in the previous round"
        )


@graded("generous_tit_for_tat")
def test_generous_tit_for_tat_forgives_with_one_draw(cooperation):
    for seed in range(20):
        rng, ref = np.random.default_rng(seed), np.random.default_rng(seed)
        got = gtft_move(cooperation, (C, C), (C, D), rng)
        u = ref.random()
        want = C if u < 1 / 3 else D
        assert got == want, (
            f"generous_tit_for_tat: after a defection it draws u = rng.random() = {u:.3f} and "
            f"cooperates when u < generosity = 1/3, so it should play {NAMES[want]}, got "
            f"{NAMES[got]}" + ("; did you compare u > generosity?" if got != want else "")
        )
        assert rng.random() == ref.random(), (
            "generous_tit_for_tat: after a defection draw exactly one number, u = rng.random()"
        )
    rng = np.random.default_rng(0)
    assert same_global_draw(lambda: cooperation.generous_tit_for_tat([C], [D], rng)), (
        "generous_tit_for_tat: used the global numpy random state; draw from rng"
    )


@graded("generous_tit_for_tat")
@pytest.mark.parametrize("generosity", [0.0, 0.1, 1 / 3, 0.8, 1.0])
def test_generous_tit_for_tat_forgiveness_rate(cooperation, generosity):
    rng = np.random.default_rng(2)
    n = 3000
    kw = {} if generosity == 1 / 3 else {"generosity": generosity}
    rate = np.mean([gtft_move(cooperation, (D,), (D,), rng, **kw) == C for _ in range(n)])
    sd = max(np.sqrt(generosity * (1 - generosity) / n), 1e-9)
    assert abs(rate - generosity) <= 4 * sd + 1e-12, (
        f"generous_tit_for_tat: with generosity={generosity:.3f}"
        f"{' (the default)' if not kw else ''} it should forgive a defection that often; it "
        f"cooperated after {rate:.1%} of {n} defections"
    )


class FixedDraw:
    """Stands in for a numpy Generator whose next number is ``value``."""

    def __init__(self, value):
        self.value, self.draws = value, 0

    def random(self, size=None):
        self.draws += 1
        return self.value if size is None else np.full(size, self.value)

    def uniform(self, low=0.0, high=1.0, size=None):
        return low + (high - low) * self.random(size)


@graded("generous_tit_for_tat")
def test_generous_tit_for_tat_forgives_only_strictly_below_the_generosity(cooperation):
    for u, want in ((0.25, D), (0.2499, C), (0.0, C)):
        rng = FixedDraw(u)
        got = cooperation.generous_tit_for_tat([C], [D], rng, generosity=0.25)
        assert got == want and rng.draws == 1, (
            f"generous_tit_for_tat: with generosity=0.25 and a draw u = {u} after a defection it "
            f"should play {NAMES[want]} (cooperate exactly when u < generosity, strictly), got "
            f"{NAMES.get(got, got)} after {rng.draws} draw(s)"
        )
    never = cooperation.generous_tit_for_tat([C], [D], FixedDraw(0.0), generosity=0.0)
    assert never == D, (
        "generous_tit_for_tat: generosity=0 is tit-for-tat and never forgives, not even when the "
        "draw is exactly 0.0 (0.0 < 0 is false)"
    )


# --------------------------------------------------------------------------- #
# play_match
# --------------------------------------------------------------------------- #


def match(cooperation, a, b, rounds, rng, **kw):
    out = cooperation.play_match(a, b, rounds, rng, **kw)
    if not (isinstance(out, tuple) and len(out) == 2):
        pytest.fail(
            f"play_match: expected a tuple (moves, payoffs), got {type(out).__name__}",
            pytrace=False,
        )
    moves, payoffs = out
    return array("play_match", moves, (rounds, 2)), array("play_match", payoffs, (rounds, 2))


KNOWN_MATCHES = [
    # (A, B, A's moves, B's moves, A's mean payoff, B's mean payoff) over 6 rounds
    (ref_tft, ref_all_d, "CDDDDD", "DDDDDD", 5 / 6, 10 / 6),
    (ref_all_c, ref_all_d, "CCCCCC", "DDDDDD", 0.0, 5.0),
    (ref_all_d, ref_all_c, "DDDDDD", "CCCCCC", 5.0, 0.0),
    (ref_tft, ref_tft, "CCCCCC", "CCCCCC", 3.0, 3.0),
    (ref_wsls, ref_all_d, "CDCDCD", "DDDDDD", 0.5, 3.0),
    (ref_alternate, ref_tft, "CDCDCD", "CCDCDC", 18 / 6, 13 / 6),
    (ref_grim, ref_alternate, "CCDDDD", "CDCDCD", 15 / 6, 10 / 6),
]


@graded("play_match")
@pytest.mark.parametrize(
    "a,b,want_a,want_b,pay_a,pay_b",
    KNOWN_MATCHES,
    ids=["tft-alld", "allc-alld", "alld-allc", "tft-tft", "wsls-alld", "alt-tft", "grim-alt"],
)
def test_play_match_known_pairs_without_noise(cooperation, a, b, want_a, want_b, pay_a, pay_b):
    moves, payoffs = match(cooperation, a, b, 6, np.random.default_rng(0))
    got_a, got_b = show(moves[:, 0]), show(moves[:, 1])
    hint = ""
    if got_a == want_a and got_b == "C" * 6 != want_b:
        hint = "; B must see its own moves first: strategy_b(moves_b, moves_a, rng)"
    assert (got_a, got_b) == (want_a, want_b), (
        f"play_match: {a.__name__[4:]} (A) vs {b.__name__[4:]} (B) for 6 rounds should play "
        f"A {want_a}, B {want_b}; got A {got_a}, B {got_b}{hint}"
    )
    means = payoffs.mean(axis=0)
    hint = ""
    if np.allclose(means, [pay_a, pay_a]) and pay_a != pay_b:
        hint = "; B's payoff is payoff[b, a], not payoff[a, b]"
    assert np.allclose(means, [pay_a, pay_b]), (
        f"play_match: mean payoffs per round should be A {pay_a:.4f}, B {pay_b:.4f}, got "
        f"A {means[0]:.4f}, B {means[1]:.4f}{hint}"
    )


@graded("play_match")
def test_play_match_uses_the_given_payoff_matrix_and_types(cooperation):
    chicken = np.array([[3.0, 1.0], [4.0, 0.0]])
    moves, payoffs = cooperation.play_match(
        ref_all_c, ref_all_d, 4, np.random.default_rng(0), payoff=chicken
    )
    assert isinstance(moves, np.ndarray) and moves.dtype == np.int64, (
        f"play_match: moves should be an int64 numpy array, got {type(moves).__name__} "
        f"{getattr(moves, 'dtype', '')}"
    )
    assert isinstance(payoffs, np.ndarray) and payoffs.dtype == np.float64, (
        f"play_match: payoffs should be a float64 numpy array, got {type(payoffs).__name__} "
        f"{getattr(payoffs, 'dtype', '')}"
    )
    assert np.allclose(payoffs, [[1.0, 4.0]] * 4), (
        f"play_match: with payoff=chicken [[3, 1], [4, 0]], C against D pays 1 and 4 every "
        f"round, got {payoffs[0].tolist()}; did you use PD_PAYOFF instead of payoff?"
    )
    one, _ = match(cooperation, ref_tft, ref_all_d, 1, np.random.default_rng(0))
    assert one.tolist() == [[C, D]], f"play_match: one round of TFT vs AllD is [[0, 1]], got {one}"
    for why, kw in [
        ("rounds=0", {"rounds": 0}),
        ("noise=1.5", {"noise": 1.5}),
        ("a (3, 3) payoff matrix", {"payoff": np.ones((3, 3))}),
    ]:
        args = {"rounds": 3, **kw}
        rounds = args.pop("rounds")
        with pytest.raises(ValueError):
            cooperation.play_match(ref_all_c, ref_all_c, rounds, np.random.default_rng(0), **args)
            pytest.fail(f"play_match: {why} must raise ValueError", pytrace=False)


@graded("play_match")
@pytest.mark.parametrize("noise", [0.0, 0.05, 0.2, 0.5])
def test_play_match_with_noise_matches_a_reference(cooperation, noise):
    pairs = [
        (ref_gtft, ref_wsls),
        (ref_tft, ref_tft),
        (ref_grim, ref_alternate),
        (ref_wsls, ref_gtft),
        (ref_gtft, ref_gtft),
    ]
    for seed, (a, b) in enumerate(pairs):
        rng, ref_rng = np.random.default_rng(seed), np.random.default_rng(seed)
        moves, payoffs = match(cooperation, a, b, 40, rng, noise=noise)
        want_moves, want_payoffs = ref_match(a, b, 40, ref_rng, noise=noise)
        if not np.array_equal(moves, want_moves):
            first = int(np.argmax((moves != want_moves).any(axis=1)))
            pytest.fail(
                f"play_match: {a.__name__[4:]} vs {b.__name__[4:]}, noise={noise}, seed {seed}: "
                f"the moves first differ from a reference in round {first} (got "
                f"{moves[first].astype(int).tolist()}, expected {want_moves[first].tolist()}); each round: "
                f"A's move, B's move, then u = rng.random(2) (always, even for noise 0), flip "
                f"where u < noise, and the histories hold the moves actually played",
                pytrace=False,
            )
        assert np.allclose(payoffs, want_payoffs), (
            f"play_match: {a.__name__[4:]} vs {b.__name__[4:]}, noise={noise}: the moves are "
            f"right but the payoffs are not; pay the moves actually played"
        )
        assert rng.random() == ref_rng.random(), (
            f"play_match: after {40} rounds the generator should have made exactly the draws of "
            f"the reference (rng.random(2) every round, plus the strategies' own)"
        )


@graded("play_match")
def test_play_match_noise_flips_at_the_right_rate(cooperation):
    n, noise = 4000, 0.1
    moves, payoffs = match(
        cooperation, ref_all_c, ref_all_d, n, np.random.default_rng(3), noise=noise
    )
    flipped = np.array([moves[:, 0].mean(), 1 - moves[:, 1].mean()])
    sd = np.sqrt(noise * (1 - noise) / n)
    assert np.all(np.abs(flipped - noise) < 4 * sd), (
        f"play_match: with noise={noise} about {noise:.0%} of the moves should be flipped, got "
        f"{flipped[0]:.1%} of A's and {flipped[1]:.1%} of B's"
    )
    all_flipped, _ = match(
        cooperation, ref_all_c, ref_all_c, 5, np.random.default_rng(0), noise=1.0
    )
    assert (all_flipped == D).all(), "play_match: with noise=1 every move is flipped"


@graded("play_match")
def test_play_match_is_reproducible_and_leaves_global_state(cooperation):
    first = match(cooperation, ref_gtft, ref_wsls, 30, np.random.default_rng(9), noise=0.2)
    again = match(cooperation, ref_gtft, ref_wsls, 30, np.random.default_rng(9), noise=0.2)
    assert all(np.array_equal(x, y) for x, y in zip(first, again, strict=True)), (
        "play_match: the same seed must give the same match"
    )
    assert same_global_draw(
        lambda: cooperation.play_match(ref_tft, ref_tft, 10, np.random.default_rng(0), noise=0.3)
    ), "play_match: used the global numpy random state; draw the noise from rng"


# --------------------------------------------------------------------------- #
# round_robin
# --------------------------------------------------------------------------- #


def tournament(cooperation, strategies, rounds, rng, **kw):
    out = cooperation.round_robin(strategies, rounds, rng, **kw)
    k = len(strategies)
    return array("round_robin", out, (k, k))


@graded("round_robin")
def test_round_robin_table_of_four_classics(cooperation):
    strategies = [ref_all_c, ref_all_d, ref_tft, ref_grim]
    got = tournament(cooperation, strategies, 10, np.random.default_rng(0))
    want = np.array(
        [
            [3.0, 0.0, 3.0, 3.0],
            [5.0, 1.0, 1.4, 1.4],
            [3.0, 0.9, 3.0, 3.0],
            [3.0, 0.9, 3.0, 3.0],
        ]
    )
    hint = ""
    if np.allclose(got, want.T):
        hint = "; the table is transposed: row i is what strategy i earns"
    elif np.allclose(got, 10 * want):
        hint = "; these are totals: give the mean payoff per round"
    elif np.allclose(got - np.diag(np.diag(got)), want - np.diag(np.diag(want))):
        hint = "; the diagonal is wrong: every strategy also plays itself"
    assert np.allclose(got, want), (
        f"round_robin: AllC, AllD, TFT, Grim for 10 rounds should give mean payoffs per round\n"
        f"{want}\ngot\n{np.round(got, 3)}{hint}"
    )


@graded("round_robin")
@pytest.mark.parametrize("noise", [0.0, 0.1])
def test_round_robin_matches_a_reference_with_noise(cooperation, noise):
    strategies = [ref_gtft, ref_tft, ref_wsls, ref_all_d, ref_alternate]
    rng, ref_rng = np.random.default_rng(4), np.random.default_rng(4)
    got = tournament(cooperation, strategies, 25, rng, noise=noise)
    want = ref_round_robin(strategies, 25, ref_rng, noise=noise)
    hint = ""
    off = ~np.eye(len(strategies), dtype=bool)
    if np.allclose(got[off], want[off]) and not np.allclose(np.diag(got), np.diag(want)):
        hint = "; check the diagonal: the mean of both players' payoffs in the self-play match"
    assert np.allclose(got, want), (
        f"round_robin: 5 strategies, 25 rounds, noise={noise}: the table differs from a "
        f"reference by up to {np.abs(got - want).max():.3f}{hint}; play one match per pair "
        f"i <= j in the order (0, 0), (0, 1), ..., (1, 1), ... with the same rng"
    )
    assert rng.random() == ref_rng.random(), (
        "round_robin: the generator was used differently from one match per pair i <= j"
    )


@graded("round_robin")
def test_round_robin_types_and_edges(cooperation):
    got = cooperation.round_robin([ref_tft], 5, np.random.default_rng(0))
    assert isinstance(got, np.ndarray) and got.dtype == np.float64 and got.shape == (1, 1), (
        f"round_robin: one strategy gives a (1, 1) float64 array, got {type(got).__name__} "
        f"{getattr(got, 'shape', '')}"
    )
    assert got[0, 0] == 3.0, f"round_robin: TFT against itself earns 3 per round, got {got[0, 0]}"
    chicken = np.array([[3.0, 1.0], [4.0, 0.0]])
    table = tournament(
        cooperation, (ref_all_c, ref_all_d), 3, np.random.default_rng(0), payoff=chicken
    )
    assert np.allclose(table, [[3.0, 1.0], [4.0, 0.0]]), (
        f"round_robin: pass payoff on to play_match: AllC and AllD under chicken give "
        f"[[3, 1], [4, 0]], got {table.tolist()}"
    )
    with pytest.raises(ValueError):
        cooperation.round_robin([], 5, np.random.default_rng(0))
        pytest.fail("round_robin: no strategies must raise ValueError", pytrace=False)


# --------------------------------------------------------------------------- #
# replicator_step
# --------------------------------------------------------------------------- #


def ref_replicator(x, a):
    k = len(x)
    fitness = [sum(a[i][j] * x[j] for j in range(k)) for i in range(k)]
    mean = sum(x[i] * fitness[i] for i in range(k))
    return np.array([x[i] * fitness[i] / mean for i in range(k)])


def step(cooperation, x, a):
    return array("replicator_step", cooperation.replicator_step(x, a), (len(x),))


@graded("replicator_step")
def test_replicator_step_closed_form(cooperation):
    x = np.array([0.5, 0.3, 0.2])
    a = np.array([[1.0, 4.0, 0.0], [2.0, 1.0, 3.0], [0.5, 0.0, 5.0]])
    before = (x.copy(), a.copy())
    got = step(cooperation, x, a)
    want = ref_replicator(x, a)
    hint = ""
    if np.allclose(got, ref_replicator(x, a.T)):
        hint = "; strategy i's fitness is (payoff @ shares)[i], its payoff against the population"
    elif not np.isclose(got.sum(), 1):
        hint = f"; the shares sum to {got.sum():.4f}: divide by the mean fitness shares @ fitness"
    assert np.allclose(got, want, atol=1e-12), (
        f"replicator_step: shares {x.tolist()} with payoff {a.tolist()}: fitness "
        f"{(a @ x).round(3).tolist()}, mean {x @ a @ x:.3f}, new shares "
        f"{want.round(4).tolist()}; got {got.round(4).tolist()}{hint}"
    )
    assert np.array_equal(x, before[0]) and np.array_equal(a, before[1]), (
        "replicator_step: modified its inputs in place; return new shares"
    )
    assert isinstance(got, np.ndarray) and got.dtype == np.float64, (
        "replicator_step: return a float64 numpy array"
    )


@graded("replicator_step")
def test_replicator_step_conserves_the_simplex(cooperation, rng):
    g = rng(6)
    for k in (2, 3, 6):
        x = g.dirichlet(np.ones(k))
        a = g.uniform(0, 5, size=(k, k))
        for t in range(60):
            x = step(cooperation, x, a)
            assert abs(x.sum() - 1) < 1e-9 and (x >= 0).all(), (
                f"replicator_step: after {t + 1} steps with {k} strategies the shares "
                f"{x.round(4).tolist()} left the simplex (sum {x.sum():.6f})"
            )


@graded("replicator_step")
def test_replicator_step_fixed_points(cooperation):
    hawk_dove = np.array([[1.0, 4.0], [2.0, 3.0]])  # equal fitness at half hawks
    for x, why in [
        ([1.0, 0.0], "all hawks (a vertex)"),
        ([0.0, 1.0], "all doves (a vertex)"),
        ([0.5, 0.5], "half hawks, where both earn 2.5"),
    ]:
        got = step(cooperation, np.array(x), hawk_dove)
        assert np.allclose(got, x, atol=1e-12), (
            f"replicator_step: {why} is a fixed point of hawk-dove {hawk_dove.tolist()}, but "
            f"{x} moved to {got.round(4).tolist()}"
        )
    x = np.array([0.9, 0.1])
    for _ in range(200):
        x = step(cooperation, x, hawk_dove)
    assert abs(x[0] - 0.5) < 1e-3, (
        f"replicator_step: from 90% hawks hawk-dove should converge to 50% hawks, got "
        f"{x[0]:.1%} after 200 steps"
    )


@graded("replicator_step")
def test_replicator_step_dominated_strategy_shrinks(cooperation):
    x = np.array([0.95, 0.05])  # cooperators, defectors in the one-shot PD
    cooperators = [x[0]]
    for _ in range(12):
        x = step(cooperation, x, PD)
        cooperators.append(x[0])
    assert all(b < a for a, b in zip(cooperators, cooperators[1:], strict=False)), (
        f"replicator_step: in the prisoner's dilemma defection dominates, so the share of "
        f"cooperators must fall at every step; got {np.round(cooperators[:6], 4).tolist()}..."
    )
    assert cooperators[-1] < 0.05, (
        f"replicator_step: after 12 steps cooperators should be nearly gone, got {cooperators[-1]:.3f}"
    )
    for bad, why in [
        (np.array([0.5, 0.6]), "shares summing to 1.1"),
        (np.array([1.2, -0.2]), "a negative share"),
        (np.array([0.2, 0.3, 0.5]), "3 shares with a 2 x 2 payoff"),
    ]:
        with pytest.raises(ValueError):
            cooperation.replicator_step(bad, PD)
            pytest.fail(f"replicator_step: {why} must raise ValueError", pytrace=False)


# --------------------------------------------------------------------------- #
# is_nash
# --------------------------------------------------------------------------- #

GAMES = {
    # name: (payoff_row, payoff_col, pure Nash equilibria)
    "prisoner's dilemma": (PD, PD.T, {(1, 1)}),
    "stag hunt": (np.array([[4, 0], [3, 3]]), np.array([[4, 3], [0, 3]]), {(0, 0), (1, 1)}),
    "matching pennies": (np.array([[1, -1], [-1, 1]]), np.array([[-1, 1], [1, -1]]), set()),
    "chicken": (np.array([[3, 1], [4, 0]]), np.array([[3, 4], [1, 0]]), {(0, 1), (1, 0)}),
    "battle of the sexes": (
        np.array([[3, 0], [0, 2]]),
        np.array([[2, 0], [0, 3]]),
        {(0, 0), (1, 1)},
    ),
    "column indifferent": (np.array([[1, 1], [0, 0]]), np.ones((2, 2)), {(0, 0), (0, 1)}),
    "2 x 3": (
        np.array([[2, 0, 1], [1, 3, 0]]),
        np.array([[1, 2, 0], [0, 1, 3]]),
        set(),
    ),
    "3 x 2": (
        np.array([[3, 0], [1, 1], [0, 2]]),
        np.array([[2, 1], [0, 3], [1, 4]]),
        {(0, 0), (2, 1)},
    ),
}


def ref_is_nash(a, b, i, j):
    return all(a[i, j] >= a[k, j] for k in range(a.shape[0])) and all(
        b[i, j] >= b[i, m] for m in range(a.shape[1])
    )


def nash_call(cooperation, a, b, profile):
    got = cooperation.is_nash(a, b, profile)
    if not isinstance(got, (bool, np.bool_)):
        pytest.fail(
            f"is_nash: returned {type(got).__name__} {got!r}, expected a bool", pytrace=False
        )
    return bool(got)


@graded("is_nash")
@pytest.mark.parametrize("game", list(GAMES))
def test_is_nash_on_textbook_games(cooperation, game):
    a, b, want = GAMES[game]
    assert {p for p in itertools.product(*map(range, a.shape)) if ref_is_nash(a, b, *p)} == want
    before = (a.copy(), b.copy())
    got = {p for p in itertools.product(*map(range, a.shape)) if nash_call(cooperation, a, b, p)}
    hint = ""
    if got < want and game == "column indifferent":
        hint = "; a deviation that earns exactly as much does not break an equilibrium (>=)"
    elif got != want:
        swapped = {
            p
            for p in itertools.product(*map(range, a.shape))
            if all(a[p] >= a[k, p[1]] for k in range(a.shape[0]))
        }
        if got == swapped:
            hint = "; you only checked the row player: the column player must not gain either"
        else:
            hint = (
                "; row deviates along a column (payoff_row[:, j]), column along a row "
                "(payoff_col[i, :])"
            )
    assert got == want, (
        f"is_nash: the pure Nash equilibria of {game} (row {a.tolist()}, column {b.tolist()}) "
        f"are {sorted(want) or 'none'}, got {sorted(got) or 'none'}{hint}"
    )
    assert np.array_equal(a, before[0]) and np.array_equal(b, before[1]), (
        "is_nash: modified the payoff arrays in place"
    )


@graded("is_nash")
def test_is_nash_matches_brute_force_on_random_games(cooperation, rng):
    g = rng(7)
    for _ in range(25):
        k, m = int(g.integers(2, 5)), int(g.integers(2, 5))
        a, b = g.integers(0, 4, size=(k, m)), g.integers(0, 4, size=(k, m))
        for p in itertools.product(range(k), range(m)):
            want = ref_is_nash(a, b, *p)
            got = nash_call(cooperation, a, b, p)
            assert got == want, (
                f"is_nash: in the {k} x {m} game row {a.tolist()}, column {b.tolist()}, "
                f"profile {p} is {'' if want else 'not '}a Nash equilibrium, got {got}"
            )


@graded("is_nash")
def test_is_nash_returns_bool_and_rejects_bad_input(cooperation):
    got = cooperation.is_nash(PD, PD.T, (1, 1))
    kind = f"{type(got).__module__}.{type(got).__name__}"
    assert got is True, f"is_nash: return a Python bool (bool(...)); got {kind} {got!r}"
    for a, b, profile, why in [
        (PD, np.ones((2, 3)), (0, 0), "payoff arrays of different shapes"),
        (PD, PD.T, (2, 0), "a row index out of range"),
        (PD, PD.T, (0, -1), "a negative column index"),
    ]:
        with pytest.raises(ValueError):
            cooperation.is_nash(a, b, profile)
            pytest.fail(f"is_nash: {why} must raise ValueError", pytrace=False)


# --------------------------------------------------------------------------- #
# pareto_front
# --------------------------------------------------------------------------- #


def ref_pareto(u):
    u = np.asarray(u, dtype=float)
    out = []
    for n in range(len(u)):
        dominated = any(all(u[m] >= u[n]) and any(u[m] > u[n]) for m in range(len(u)) if m != n)
        out.append(not dominated)
    return np.array(out)


def front(cooperation, u):
    got = cooperation.pareto_front(u)
    out = array("pareto_front", got, (len(u),))
    if not (isinstance(got, np.ndarray) and got.dtype == bool):
        pytest.fail(
            f"pareto_front: return a boolean numpy array, got {type(got).__name__} "
            f"{getattr(got, 'dtype', '')}",
            pytrace=False,
        )
    return out.astype(bool)


@graded("pareto_front")
@pytest.mark.parametrize(
    "outcomes,want,why",
    [
        (
            [[3, 3], [0, 5], [5, 0], [1, 1]],
            [True, True, True, False],
            "the PD's outcomes: mutual defection (1, 1) is dominated by mutual cooperation",
        ),
        (
            [[1, 1], [1, 0], [0, 1], [0, 0]],
            [True, False, False, False],
            "(1, 0) is dominated by (1, 1): as good for player 1, better for player 2",
        ),
        (
            [[2, 2], [2, 2], [1, 3], [0, 0]],
            [True, True, True, False],
            "equal outcomes do not dominate each other",
        ),
        ([[4, 1, 2]], [True], "a single outcome is optimal"),
        ([[1], [3], [3], [2]], [False, True, True, False], "one player: the maxima"),
    ],
    ids=["pd", "weak", "duplicates", "single", "one-player"],
)
def test_pareto_front_hand_made(cooperation, outcomes, want, why):
    got = front(cooperation, np.array(outcomes, dtype=float))
    hint = ""
    if got.tolist() == ref_pareto(-np.array(outcomes, dtype=float)).tolist():
        hint = "; higher payoffs are better (did you minimise?)"
    assert got.tolist() == want, (
        f"pareto_front: {outcomes} should give {want} ({why}), got {got.tolist()}{hint}"
    )


@graded("pareto_front")
def test_pareto_front_matches_brute_force(cooperation, rng):
    g = rng(8)
    for n, m in [(10, 2), (25, 3), (40, 2), (12, 4)]:
        u = g.integers(0, 4, size=(n, m)).astype(float)  # small integers: many ties
        before = u.copy()
        got = front(cooperation, u)
        want = ref_pareto(u)
        assert np.array_equal(got, want), (
            f"pareto_front: {n} random outcomes of {m} players (with ties): "
            f"{int((got != want).sum())} wrong, e.g. outcome {u[np.argmax(got != want)].tolist()} "
            f"should be {'optimal' if want[np.argmax(got != want)] else 'dominated'}"
        )
        assert np.array_equal(u, before), "pareto_front: modified the outcomes in place"
    with pytest.raises(ValueError):
        cooperation.pareto_front(np.array([1.0, 2.0]))
        pytest.fail("pareto_front: a 1-D input must raise ValueError", pytrace=False)


# --------------------------------------------------------------------------- #
# Bad inputs that only the documented checks catch.
# --------------------------------------------------------------------------- #


@graded("play_match")
def test_play_match_rejects_a_move_that_is_not_0_or_1(cooperation):
    for bad in (-1, 2, "C"):

        def strategy(mine, theirs, rng, bad=bad):
            return bad if len(mine) == 1 else C

        for a, b in ((strategy, ref_all_c), (ref_all_c, strategy)):
            try:
                cooperation.play_match(a, b, 3, np.random.default_rng(0))
            except ValueError:
                continue
            except Exception as err:  # noqa: BLE001 - any other error is the wrong one
                pytest.fail(
                    f"play_match: a strategy that returns {bad!r} in round 2 must raise "
                    f"ValueError, got {type(err).__name__} ({str(err)[:60]}); check each move",
                    pytrace=False,
                )
            pytest.fail(
                f"play_match: a strategy that returns {bad!r} in round 2 must raise ValueError "
                f"(a move is 0 or 1; -1 would silently index the payoff matrix from the end)",
                pytrace=False,
            )


@graded("round_robin")
def test_round_robin_passes_on_what_play_match_refuses(cooperation):
    for kw, why in [({"rounds": 0}, "rounds=0"), ({"noise": -0.1}, "noise=-0.1")]:
        args = {"rounds": 3, **kw}
        rounds = args.pop("rounds")
        with pytest.raises(ValueError):
            cooperation.round_robin([ref_tft, ref_all_d], rounds, np.random.default_rng(0), **args)
            pytest.fail(f"round_robin: {why} must raise ValueError", pytrace=False)


@graded("replicator_step")
def test_replicator_step_rejects_what_only_its_checks_catch(cooperation):
    for x, a, why in [
        (np.array([[1.0]]), np.array([[2.0]]), "shares of shape (1, 1), not (K,)"),
        (np.array([0.5, 0.5]), np.array([[1.0, -1.0], [2.0, 1.0]]), "a negative payoff"),
        (np.array([0.5, 0.5]), np.zeros((2, 2)), "a mean fitness of 0 (all payoffs 0)"),
        (np.array([1.0, 0.0]), np.array([[0.0, 3.0], [3.0, 3.0]]), "a mean fitness of 0"),
    ]:
        with pytest.raises(ValueError):
            cooperation.replicator_step(x, a)
            pytest.fail(f"replicator_step: {why} must raise ValueError", pytrace=False)


@graded("pareto_front")
def test_pareto_front_rejects_empty_outcomes(cooperation):
    for u, why in [
        (np.zeros((0, 2)), "no outcomes, shape (0, 2)"),
        (np.zeros((3, 0)), "no players, shape (3, 0)"),
    ]:
        with pytest.raises(ValueError):
            cooperation.pareto_front(u)
            pytest.fail(f"pareto_front: {why} must raise ValueError", pytrace=False)
