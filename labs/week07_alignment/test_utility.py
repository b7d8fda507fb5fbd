"""Specs for utility.py: the Bradley-Terry loss, training a linear utility
head on fixed embeddings, and pairwise accuracy.

Run them with `make test-week7` (add IMPL=solution to see the reference pass).
Every failure message starts with the graded function it is about.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mlsafety.grading import graded
from mlsafety.specs import number

GRADED = {
    "pairwise_utility_loss": "core",
    "train_utility_head": "core",
    "pairwise_accuracy": "core",
}
pytestmark = pytest.mark.timeout(20)


def scalar_tensor(function, value):
    if not isinstance(value, torch.Tensor) or value.dim() != 0:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        pytest.fail(
            f"{function}: expected a scalar tensor (the mean over pairs), got {shape}",
            pytrace=False,
        )
    return value


# --------------------------------------------------------------------------- #
# pairwise_utility_loss
# --------------------------------------------------------------------------- #


def reference_loss(d) -> float:
    """mean of log(1 + exp(-d)), written in float64 with the usual stable split."""
    total = 0.0
    for x in d:
        total += math.log1p(math.exp(-x)) if x > 0 else -x + math.log1p(math.exp(x))
    return total / len(d)


@graded("pairwise_utility_loss")
def test_pairwise_utility_loss_closed_form(utility):
    u_better = torch.tensor([1.0, 0.5, 2.0, -1.0, 0.0])
    u_worse = torch.tensor([-2.0, 1.0, 2.0, 1.0, -1.5])
    d = (u_better - u_worse).tolist()  # 3, -0.5, 0, -2, 1.5: not symmetric, so a sign error shows
    want = reference_loss(d)
    got = number(
        "pairwise_utility_loss",
        scalar_tensor("pairwise_utility_loss", utility.pairwise_utility_loss(u_better, u_worse)),
    )
    hints = {
        reference_loss([-x for x in d]): "that is the loss with better and worse swapped",
        want * len(d): "that is the sum over pairs; take the mean",
    }
    hint = next((h for v, h in hints.items() if math.isclose(got, v, rel_tol=1e-4)), "")
    assert math.isclose(got, want, rel_tol=1e-5), (
        f"pairwise_utility_loss: differences u_better - u_worse = {d} should give "
        f"mean(-log sigmoid(d)) = {want:.6f}, got {got:.6f}" + (f"; {hint}" if hint else "")
    )
    same = utility.pairwise_utility_loss(torch.zeros(4), torch.zeros(4)).item()
    assert math.isclose(same, math.log(2), rel_tol=1e-5), (
        f"pairwise_utility_loss: equal utilities should give log 2 = {math.log(2):.6f}, got {same:.6f}"
    )


@graded("pairwise_utility_loss")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_pairwise_utility_loss_is_stable_for_large_differences(utility, dtype):
    u_better = torch.tensor([-150.0, 200.0, 0.0], dtype=dtype)
    u_worse = torch.tensor([150.0, -200.0, 0.0], dtype=dtype)
    want = (300.0 + 0.0 + math.log(2)) / 3
    loss = scalar_tensor("pairwise_utility_loss", utility.pairwise_utility_loss(u_better, u_worse))
    got = loss.item()
    assert math.isfinite(got) and math.isclose(got, want, rel_tol=1e-5), (
        f"pairwise_utility_loss: differences -300, 400, 0 ({dtype}) should give a loss of "
        f"(300 + 0 + log 2) / 3 = {want:.4f}, got {got:.4f}; log(sigmoid(-300)) is log(0) = -inf "
        f"in floating point: use F.softplus(u_worse - u_better) or -F.logsigmoid(...)"
    )
    assert loss.dtype == dtype, f"pairwise_utility_loss: {dtype} inputs gave a {loss.dtype} loss"


@graded("pairwise_utility_loss")
def test_pairwise_utility_loss_gradients(utility):
    u_better = torch.tensor([2.0, -1.0, 40.0, -60.0], requires_grad=True)
    u_worse = torch.tensor([0.5, 1.0, -40.0, 60.0], requires_grad=True)
    loss = utility.pairwise_utility_loss(u_better, u_worse)
    if not (isinstance(loss, torch.Tensor) and loss.requires_grad):
        pytest.fail(
            "pairwise_utility_loss: the loss carries no gradient; compute it with torch "
            "operations on the inputs (no .item(), .detach() or numpy)",
            pytrace=False,
        )
    g_better, g_worse = torch.autograd.grad(loss, [u_better, u_worse])
    d = (u_better - u_worse).detach()
    want = -torch.sigmoid(-d) / len(d)  # d/du_better of mean softplus(-d)
    assert torch.isfinite(g_better).all() and torch.allclose(g_better, want, atol=1e-6), (
        f"pairwise_utility_loss: gradient with respect to u_better should be "
        f"-sigmoid(-(u_better - u_worse)) / N = {want.tolist()}, got {g_better.tolist()}"
    )
    assert torch.allclose(g_worse, -want, atol=1e-6), (
        f"pairwise_utility_loss: gradient with respect to u_worse should be {(-want).tolist()}, "
        f"got {g_worse.tolist()}"
    )


@graded("pairwise_utility_loss")
def test_pairwise_utility_loss_only_sees_differences_and_leaves_inputs_alone(utility):
    g = torch.Generator().manual_seed(0)
    u_better, u_worse = torch.randn(50, generator=g), torch.randn(50, generator=g)
    before = (u_better.clone(), u_worse.clone())
    loss = utility.pairwise_utility_loss(u_better, u_worse).item()
    shifted = utility.pairwise_utility_loss(u_better + 7.0, u_worse + 7.0).item()
    assert math.isclose(loss, shifted, rel_tol=1e-5), (
        f"pairwise_utility_loss: adding 7 to every utility changed the loss ({loss:.6f} -> "
        f"{shifted:.6f}); only u_better - u_worse may matter"
    )
    assert torch.equal(u_better, before[0]) and torch.equal(u_worse, before[1]), (
        "pairwise_utility_loss: modified its inputs in place"
    )
    want = F.softplus(u_worse - u_better).mean().item()
    assert math.isclose(loss, want, rel_tol=1e-5), (
        f"pairwise_utility_loss: on 50 random pairs expected {want:.6f}, got {loss:.6f}"
    )


@graded("pairwise_utility_loss")
def test_pairwise_utility_loss_refuses_to_broadcast(utility):
    with pytest.raises(ValueError):
        utility.pairwise_utility_loss(torch.zeros(5, 1), torch.zeros(5))
        pytest.fail(
            "pairwise_utility_loss: shapes (5, 1) and (5,) must raise ValueError (broadcasting "
            "them compares every pair with every other: a (5, 5) matrix of differences)",
            pytrace=False,
        )


# --------------------------------------------------------------------------- #
# train_utility_head
# --------------------------------------------------------------------------- #


def reference_head(better, worse, epochs, batch_size, lr, weight_decay, seed):
    """The docstring's recipe, written out independently."""
    d = better.shape[1]
    weight = torch.zeros(1, d, dtype=better.dtype, requires_grad=True)
    optimizer = torch.optim.Adam([weight], lr=lr, weight_decay=weight_decay)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(better), generator=g)
        for idx in order.split(batch_size):
            diff = (better[idx] - worse[idx]) @ weight[0]
            loss = F.softplus(-diff).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return weight.detach()[0]


def head_weight(head) -> torch.Tensor:
    if not isinstance(head, nn.Module) or not hasattr(head, "weight"):
        pytest.fail(
            f"train_utility_head: expected an nn.Linear(D, 1, bias=False), got "
            f"{type(head).__name__}",
            pytrace=False,
        )
    return head.weight.detach().reshape(-1)


@pytest.fixture(scope="session")
def trained_head(utility, preference_data):
    """trained_head() -> the head trained on the planted pairs, trained once, inside
    the first spec that asks (so a missing function fails that spec, not its setup)."""
    cache = {}

    def get():
        if "head" not in cache:
            better, worse = preference_data["train"]
            cache["head"] = utility.train_utility_head(
                better, worse, epochs=20, batch_size=64, lr=0.05,
                generator=torch.Generator().manual_seed(0),
            )  # fmt: skip
        return cache["head"]

    return get


@graded("train_utility_head")
def test_train_utility_head_learns_the_planted_preference(trained_head, preference_data):
    head = trained_head()
    w = head_weight(head)
    direction = preference_data["direction"]
    cos = (w @ direction / w.norm().clamp_min(1e-12)).item()
    assert cos > 0.95, (
        f"train_utility_head: pairs ranked by a planted direction in 12 dimensions; the "
        f"head's weight should point along it (cosine {cos:.3f}, expected > 0.95)"
        + (
            "; it points away: did you swap better and worse?"
            if cos < -0.5
            else "; is every batch of every epoch used for a step?"
        )
    )
    better, worse = preference_data["test"]
    with torch.no_grad():
        acc = (head(better) > head(worse)).float().mean().item()
    assert acc > 0.95, f"train_utility_head: held-out pairwise accuracy {acc:.1%}, expected > 95%"


@graded("train_utility_head")
def test_train_utility_head_follows_the_recipe(utility, make_pairs):
    better, worse, _ = make_pairs(100, 5, seed=1)
    kwargs = dict(epochs=3, batch_size=32, lr=0.05, weight_decay=0.01)
    want = reference_head(better, worse, seed=4, **kwargs)
    head = utility.train_utility_head(
        better, worse, generator=torch.Generator().manual_seed(4), **kwargs
    )
    got = head_weight(head)
    assert got.shape == want.shape and torch.allclose(got, want, atol=1e-5), (
        f"train_utility_head: after 3 epochs (100 pairs, batches of 32, Adam lr=0.05, "
        f"weight_decay=0.01) the weight should be {[round(x, 4) for x in want.tolist()]}, got "
        f"{[round(x, 4) for x in got.tolist()]}; did you start from zeros, draw one "
        f"torch.randperm(N, generator=generator) per epoch, zero the gradients before every "
        f"step and use the last, smaller batch too?"
    )


@graded("train_utility_head")
def test_train_utility_head_returns_a_linear_head_like_its_inputs(utility, make_pairs):
    better, worse, _ = make_pairs(40, 6, seed=2)
    better64, worse64 = better.double(), worse.double()
    head = utility.train_utility_head(
        better64, worse64, epochs=2, generator=torch.Generator().manual_seed(0)
    )
    w = head_weight(head)
    assert tuple(head.weight.shape) == (1, 6), (
        f"train_utility_head: the head maps D=6 features to one utility; its weight should "
        f"have shape (1, 6), got {tuple(head.weight.shape)}"
    )
    assert not head.training, "train_utility_head: return the head in eval mode (head.eval())"
    assert getattr(head, "bias", None) is None, (
        "train_utility_head: the head has a bias; only utility differences are trained, so "
        "use nn.Linear(D, 1, bias=False)"
    )
    assert w.dtype == torch.float64, (
        f"train_utility_head: float64 embeddings should give a float64 head, got {w.dtype}"
    )
    out = head(better64)
    assert tuple(out.shape) == (40, 1), (
        f"train_utility_head: head(x) for 40 embeddings should be (40, 1), got {tuple(out.shape)}"
    )
    zero = utility.train_utility_head(better, worse, epochs=0)
    assert torch.equal(head_weight(zero), torch.zeros(6)), (
        "train_utility_head: with epochs=0 the head must be the zero head (weights start at zero)"
    )


@graded("train_utility_head")
def test_train_utility_head_is_reproducible_and_uses_only_its_generator(utility, make_pairs):
    better, worse, _ = make_pairs(80, 4, seed=3)
    before = (better.clone(), worse.clone())
    runs = []
    for global_seed, seed in [(0, 5), (123, 5), (0, 6)]:
        torch.manual_seed(global_seed)
        head = utility.train_utility_head(
            better, worse, epochs=2, batch_size=16, generator=torch.Generator().manual_seed(seed)
        )
        runs.append(head_weight(head))
    assert torch.equal(runs[0], runs[1]), (
        "train_utility_head: the same seeded generator gave different heads after "
        "torch.manual_seed changed; draw the order with torch.randperm(N, generator=generator)"
    )
    assert not torch.equal(runs[0], runs[2]), (
        "train_utility_head: generators seeded 5 and 6 gave the same head; shuffle the pairs "
        "with a fresh torch.randperm(N, generator=generator) every epoch"
    )
    assert torch.equal(better, before[0]) and torch.equal(worse, before[1]), (
        "train_utility_head: modified the embeddings in place"
    )


@graded("train_utility_head")
def test_train_utility_head_rejects_mismatched_pairs(utility):
    with pytest.raises(ValueError):
        utility.train_utility_head(torch.zeros(10, 4), torch.zeros(9, 4), epochs=1)
        pytest.fail(
            "train_utility_head: 10 better and 9 worse embeddings must raise ValueError",
            pytrace=False,
        )


# --------------------------------------------------------------------------- #
# pairwise_accuracy
# --------------------------------------------------------------------------- #


def reference_accuracy(u_better, u_worse) -> float:
    score = 0.0
    for b, w in zip(np.asarray(u_better).tolist(), np.asarray(u_worse).tolist(), strict=True):
        score += 1.0 if b > w else 0.5 if b == w else 0.0
    return score / len(u_better)


@graded("pairwise_accuracy")
def test_pairwise_accuracy_closed_form_with_a_tie(utility):
    u_better = torch.tensor([2.0, 1.0, 0.0, 5.0])
    u_worse = torch.tensor([1.0, 1.0, 3.0, 4.0])  # right, tie, wrong, right
    got = number("pairwise_accuracy", utility.pairwise_accuracy(u_better, u_worse))
    hints = {
        0.375: "that is the accuracy with better and worse swapped",
        0.75: "a tie counts one half, not a win",
        0.5: "a tie counts one half, not a loss",
        2.5: "that is the count; divide by the number of pairs",
    }
    hint = hints.get(round(got, 6), "")
    assert math.isclose(got, 0.625), (
        f"pairwise_accuracy: pairs (2 vs 1, 1 vs 1, 0 vs 3, 5 vs 4) should give "
        f"(1 + 0.5 + 0 + 1) / 4 = 0.625, got {got}" + (f"; {hint}" if hint else "")
    )


@graded("pairwise_accuracy")
def test_pairwise_accuracy_matches_a_reference(utility):
    g = np.random.default_rng(0)
    for n in (1, 7, 300):
        u_better = np.round(g.normal(size=n), 1)  # rounding makes ties
        u_worse = np.round(g.normal(size=n), 1)
        want = reference_accuracy(u_better, u_worse)
        got = number(
            "pairwise_accuracy",
            utility.pairwise_accuracy(torch.from_numpy(u_better), torch.from_numpy(u_worse)),
        )
        assert math.isclose(got, want, abs_tol=1e-6), (
            f"pairwise_accuracy: on {n} random pairs (with ties) expected {want:.4f}, got {got:.4f}"
        )


@graded("pairwise_accuracy")
def test_pairwise_accuracy_returns_a_float_and_leaves_inputs_alone(utility):
    u_better, u_worse = torch.tensor([3.0, 1.0, 2.0]), torch.tensor([1.0, 2.0, 0.0])
    before = (u_better.clone(), u_worse.clone())
    got = utility.pairwise_accuracy(u_better, u_worse)
    assert type(got) is float, (
        f"pairwise_accuracy: returned {type(got).__name__}; return a Python float (.item())"
    )
    assert torch.equal(u_better, before[0]) and torch.equal(u_worse, before[1]), (
        "pairwise_accuracy: modified its inputs in place"
    )
    same = utility.pairwise_accuracy(torch.ones(6), torch.ones(6))
    assert same == 0.5, f"pairwise_accuracy: all pairs tied should give 0.5 (chance), got {same}"
    listed = utility.pairwise_accuracy([1.0, 0.0], [0.0, 1.0])
    assert listed == 0.5, (
        f"pairwise_accuracy: lists [1, 0] vs [0, 1] should give 0.5, got {listed}; accept "
        f"anything torch.as_tensor accepts"
    )


@graded("pairwise_accuracy")
@pytest.mark.parametrize(
    "u_better,u_worse,why",
    [
        (torch.zeros(4, 1), torch.zeros(4), "shapes (4, 1) and (4,)"),
        (torch.zeros(0), torch.zeros(0), "no pairs"),
    ],
    ids=["broadcast", "empty"],
)
def test_pairwise_accuracy_rejects_bad_inputs(utility, u_better, u_worse, why):
    with pytest.raises(ValueError):
        utility.pairwise_accuracy(u_better, u_worse)
        pytest.fail(f"pairwise_accuracy: {why} must raise ValueError", pytrace=False)


@graded("train_utility_head")
def test_train_utility_head_defaults(utility, make_pairs):
    better, worse, _ = make_pairs(70, 3, seed=5)  # 70 pairs: a full batch of 64 and one of 6
    head = utility.train_utility_head(better, worse, generator=torch.Generator().manual_seed(2))
    want = reference_head(
        better, worse, seed=2, epochs=30, batch_size=64, lr=0.01, weight_decay=0.0
    )
    got = head_weight(head)
    assert got.shape == want.shape and torch.allclose(got, want, atol=1e-5), (
        f"train_utility_head: the defaults are epochs=30, batch_size=64, lr=0.01, "
        f"weight_decay=0.0; with them the weight should be {[round(x, 4) for x in want.tolist()]},"
        f" got {[round(x, 4) for x in got.tolist()]}"
    )
