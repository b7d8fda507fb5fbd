"""Week 8: cooperation between self-interested agents, in the iterated prisoner's dilemma.

Two players meet for several rounds. In each round both choose at once to
**cooperate** (``C = 0``) or **defect** (``D = 1``). With the payoffs of
``PD_PAYOFF`` (the row player's payoff; the game is symmetric), defecting is
better for each player whatever the other does, yet both are better off if
both cooperate: that gap between individual and collective rationality is
what cooperative AI is about.

Conventions for every function here:

- A **move** is the Python int ``C = 0`` or ``D = 1`` (not a bool, not a
  string).
- A **strategy** is a plain function
  ``strategy(my_moves, their_moves, rng) -> move``: ``my_moves`` and
  ``their_moves`` are sequences (lists or tuples) of the moves actually
  played so far in this match, oldest first, the same length (0 in the first
  round); ``rng`` is a ``numpy.random.Generator``, the only allowed source of
  randomness. A strategy never modifies the histories, and a deterministic
  strategy never draws from ``rng`` (so it does not shift the random numbers
  that the match uses for noise).
- A **symmetric payoff matrix** ``payoff`` is ``(2, 2)``: ``payoff[a, b]``
  is the payoff of a player who plays ``a`` against one who plays ``b``; the
  other player gets ``payoff[b, a]``.
- A **bimatrix game** is two ``(K, L)`` arrays ``(payoff_row, payoff_col)``:
  when the row player plays ``i`` and the column player ``j``, they get
  ``payoff_row[i, j]`` and ``payoff_col[i, j]``.
- Arrays are returned as new numpy arrays; inputs are never modified. Bad
  shapes or arguments raise ``ValueError``.
"""

# The imports below are for the functions you will write.
# ruff: noqa: F401

from __future__ import annotations

import numpy as np

C, D = 0, 1  # cooperate, defect
# Row player's payoff: R = 3 (both cooperate), S = 0 (sucker), T = 5 (temptation), P = 1 (both defect).
PD_PAYOFF = np.array([[3.0, 0.0], [5.0, 1.0]])
# Generous tit-for-tat's forgiveness for these payoffs (Nowak and Sigmund, 1992):
# min(1 - (T - R) / (R - S), (R - P) / (T - P)) = min(1/3, 1/2).
GENEROSITY = 1 / 3


# --------------------------------------------------------------------------- #
# Strategies
# --------------------------------------------------------------------------- #


def always_cooperate(my_moves, their_moves, rng) -> int:
    """Cooperate in every round, whatever happened.

    Args:
        my_moves, their_moves: the moves played so far (see the module docstring).
        rng: a ``numpy.random.Generator``; not used.

    Returns:
        ``C`` (the int 0).
    """
    raise NotImplementedError(
        "TODO: implement always_cooperate as the docstring describes, then run `make test-week8`"
    )


def always_defect(my_moves, their_moves, rng) -> int:
    """Defect in every round, whatever happened.

    Args:
        my_moves, their_moves: the moves played so far (see the module docstring).
        rng: a ``numpy.random.Generator``; not used.

    Returns:
        ``D`` (the int 1).
    """
    raise NotImplementedError(
        "TODO: implement always_defect as the docstring describes, then run `make test-week8`"
    )


def tit_for_tat(my_moves, their_moves, rng) -> int:
    """Tit-for-tat (Rapoport; the winner of Axelrod's tournaments): cooperate in
    the first round, then play whatever the opponent played in the previous
    round.

    Nice (never defects first), retaliating (answers a defection at once) and
    forgiving (returns to cooperation as soon as the opponent does).

    Args:
        my_moves, their_moves: the moves played so far (see the module docstring).
        rng: a ``numpy.random.Generator``; not used.

    Returns:
        ``C`` in the first round, else ``their_moves[-1]``.
    """
    raise NotImplementedError(
        "TODO: implement tit_for_tat as the docstring describes, then run `make test-week8`"
    )


def grim_trigger(my_moves, their_moves, rng) -> int:
    """Grim trigger: cooperate until the opponent defects once, then defect for
    the rest of the match.

    Only the opponent's moves count: a defection of this player's own (under
    noise, an intended cooperation that was flipped) does not trigger it.

    Args:
        my_moves, their_moves: the moves played so far (see the module docstring).
        rng: a ``numpy.random.Generator``; not used.

    Returns:
        ``D`` if ``their_moves`` contains a ``D``, else ``C``.
    """
    raise NotImplementedError(
        "TODO: implement grim_trigger as the docstring describes, then run `make test-week8`"
    )


def generous_tit_for_tat(my_moves, their_moves, rng, *, generosity: float = GENEROSITY) -> int:
    """Generous tit-for-tat: tit-for-tat that forgives a defection with
    probability ``generosity``.

    - First round: cooperate.
    - The opponent cooperated in the previous round: cooperate.
    - The opponent defected in the previous round: draw **one** number
      ``u = rng.random()`` and cooperate if ``u < generosity``, else defect.

    ``rng`` is used only in the last case, exactly once, so a match between
    deterministic opponents that never defect draws nothing. Forgiveness lets
    two generous players recover from a defection that noise introduced,
    where two plain tit-for-tat players would echo it back and forth.

    Args:
        my_moves, their_moves: the moves played so far (see the module docstring).
        rng: a ``numpy.random.Generator``, the only source of randomness.
        generosity: probability of forgiving a defection, in [0, 1]
            (default 1/3, the largest that still deters always-defect
            under ``PD_PAYOFF``). With 0 this is tit-for-tat.

    Returns:
        ``C`` or ``D`` (an int).
    """
    raise NotImplementedError(
        "TODO: implement generous_tit_for_tat as the docstring describes, then run `make test-week8`"
    )


def win_stay_lose_shift(my_moves, their_moves, rng) -> int:
    """Win-stay, lose-shift ("Pavlov", Nowak and Sigmund, 1993).

    Cooperate in the first round. Then look at the previous round: if it went
    well for this player, that is, the **opponent cooperated** (payoff R or
    T), repeat the previous move ("win-stay"); if the opponent defected
    (payoff S or P), switch to the other move ("lose-shift"). Equivalently:
    cooperate exactly when both players made the same move in the previous
    round.

    After a mutual defection (both lost) it cooperates again, so two such
    players recover from a noise-induced defection in two rounds; and it
    exploits an unconditional cooperator once it has defected by mistake.

    Args:
        my_moves, their_moves: the moves played so far (see the module docstring).
        rng: a ``numpy.random.Generator``; not used.

    Returns:
        ``C`` or ``D`` (an int).
    """
    raise NotImplementedError(
        "TODO: implement win_stay_lose_shift as the docstring describes, then run `make test-week8`"
    )


# --------------------------------------------------------------------------- #
# Matches, tournaments and evolution
# --------------------------------------------------------------------------- #


def play_match(
    strategy_a, strategy_b, rounds: int, rng, *, payoff=PD_PAYOFF, noise: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Play an iterated game between two strategies, with noisy execution.

    Each round ``t = 0, ..., rounds - 1``, in this order:

    1. ``a = strategy_a(moves_a, moves_b, rng)``: A's intended move; A sees
       its own history first;
    2. ``b = strategy_b(moves_b, moves_a, rng)``: B's intended move; B also
       sees **its own** history first;
    3. the noise: draw ``u = rng.random(2)`` (every round, whatever
       ``noise`` is, even 0) and flip A's move if ``u[0] < noise``, B's if
       ``u[1] < noise`` (a "trembling hand": ``C`` becomes ``D`` and the
       other way round);
    4. record the moves **actually played** (after the flips): the payoffs
       are ``payoff[a, b]`` for A and ``payoff[b, a]`` for B, and the next
       round's histories hold these moves, so a strategy sees what was
       played, not what the other intended.

    The histories handed to the strategies are the moves before round ``t``
    (lists or tuples of ints).

    Args:
        strategy_a, strategy_b: strategies (see the module docstring).
        rounds: number of rounds, an int ``>= 1``.
        rng: a ``numpy.random.Generator``: the noise, and any randomness of
            the strategies, come from it alone.
        payoff: ``(2, 2)`` symmetric payoff matrix, default ``PD_PAYOFF``.
        noise: probability of flipping each intended move, in [0, 1].

    Returns:
        ``(moves, payoffs)``: ``moves`` an int64 array ``(rounds, 2)`` of the
        moves actually played (column 0 is A, column 1 is B); ``payoffs`` a
        float64 array ``(rounds, 2)`` of the payoffs of A and B in each round.
        ``payoffs.mean(axis=0)`` is the mean payoff per round of each.

    Raises:
        ValueError: ``rounds < 1``, ``noise`` outside [0, 1], a payoff matrix
            that is not ``(2, 2)``, or a strategy that returns something other
            than 0 or 1.
    """
    raise NotImplementedError(
        "TODO: implement play_match as the docstring describes, then run `make test-week8`"
    )


def round_robin(
    strategies, rounds: int, rng, *, payoff=PD_PAYOFF, noise: float = 0.0
) -> np.ndarray:
    """A round-robin tournament (as in Axelrod's): every strategy meets every
    strategy once, itself included.

    For ``K`` strategies, play one match with :func:`play_match` for each pair
    ``i <= j``, in the order ``(0, 0), (0, 1), ..., (0, K-1), (1, 1), (1, 2),
    ..., (K-1, K-1)``, with ``strategies[i]`` as player A and
    ``strategies[j]`` as player B, all matches drawing from the same ``rng``
    one after the other. The result holds mean payoffs **per round**:

    - ``table[i, j]`` (``i < j``) = A's mean payoff in match ``(i, j)``;
    - ``table[j, i]`` (``i < j``) = B's mean payoff in the same match;
    - ``table[i, i]`` = the mean of both players' mean payoffs in the
      self-play match ``(i, i)``.

    Row ``i`` is thus what strategy ``i`` earns against each opponent, and
    ``table.mean(axis=1)`` ranks the strategies as a tournament would.

    Args:
        strategies: a sequence of ``K >= 1`` strategies.
        rounds, rng, payoff, noise: as for :func:`play_match`.

    Returns:
        A new float64 array ``(K, K)``.

    Raises:
        ValueError: no strategies, or an argument :func:`play_match` refuses.
    """
    raise NotImplementedError(
        "TODO: implement round_robin as the docstring describes, then run `make test-week8`"
    )


def replicator_step(shares, payoff) -> np.ndarray:
    """One step of the discrete-time replicator dynamics.

    A large population plays strategies ``0..K-1`` in proportions ``shares``
    (a point of the simplex). Meeting opponents at random, strategy ``i``
    earns the fitness ``f_i = (payoff @ shares)_i`` (its payoff against the
    population), and the population's mean fitness is
    ``f_bar = shares @ payoff @ shares``. Each strategy then reproduces in
    proportion to its fitness:

    ``new_shares_i = shares_i * f_i / f_bar``.

    Strategies that earn more than average grow, those that earn less shrink,
    and the shares still sum to 1. A strategy with share 0 stays at 0 (the
    dynamics cannot invent a strategy), so every vertex of the simplex is a
    fixed point, and so is every mixture whose strategies all earn the same.

    Args:
        shares: ``(K,)`` non-negative, summing to 1 (within 1e-6).
        payoff: ``(K, K)`` with ``payoff[i, j]`` the payoff of strategy ``i``
            against strategy ``j`` (e.g. the table of :func:`round_robin`),
            non-negative.

    Returns:
        The new shares, a new float64 array ``(K,)``: non-negative, summing
        to 1.

    Raises:
        ValueError: the shapes do not match, ``shares`` is not on the simplex,
            ``payoff`` has a negative entry, or the mean fitness is 0.
    """
    raise NotImplementedError(
        "TODO: implement replicator_step as the docstring describes, then run `make test-week8`"
    )


# --------------------------------------------------------------------------- #
# Equilibria and efficiency
# --------------------------------------------------------------------------- #


def is_nash(payoff_row, payoff_col, profile) -> bool:
    """Whether a pure-strategy profile of a bimatrix game is a Nash equilibrium.

    The profile ``(i, j)`` (row plays ``i``, column plays ``j``) is a Nash
    equilibrium when neither player gains by deviating alone:

    - ``payoff_row[i, j] >= payoff_row[k, j]`` for every row ``k``
      (the row player's best reply to column ``j``), and
    - ``payoff_col[i, j] >= payoff_col[i, l]`` for every column ``l``
      (the column player's best reply to row ``i``).

    The inequalities are weak: a deviation that earns exactly as much does not
    break the equilibrium (ties are equilibria).

    Args:
        payoff_row, payoff_col: the two ``(K, L)`` payoff arrays.
        profile: ``(i, j)``, a row and a column index.

    Returns:
        A Python bool.

    Raises:
        ValueError: the arrays are not 2-D of the same shape, or the profile
            is out of range.
    """
    raise NotImplementedError(
        "TODO: implement is_nash as the docstring describes, then run `make test-week8`"
    )


def pareto_front(outcomes) -> np.ndarray:
    """Which outcomes are Pareto-optimal (higher is better for every player).

    ``outcomes[n]`` is the vector of payoffs that each of ``M`` players gets
    in outcome ``n``. Outcome ``m`` **dominates** outcome ``n`` when it is at
    least as good for every player and strictly better for at least one:
    ``all(outcomes[m] >= outcomes[n])`` and ``any(outcomes[m] > outcomes[n])``.
    An outcome is Pareto-optimal when no outcome dominates it: no one can be
    made better off without making someone worse off. Equal outcomes do not
    dominate each other, so duplicates of an optimal outcome are all optimal.

    Args:
        outcomes: ``(N, M)`` payoffs, ``N >= 1`` outcomes of ``M >= 1`` players.

    Returns:
        A boolean numpy array ``(N,)``, True for the Pareto-optimal outcomes
        (at least one is).

    Raises:
        ValueError: ``outcomes`` is not 2-D or is empty.
    """
    raise NotImplementedError(
        "TODO: implement pareto_front as the docstring describes, then run `make test-week8`"
    )
