"""Specs for losses.py: log_softmax and cross_entropy.

Run them with `make test-week1` (add IMPL=solution to see the reference pass).
Every failure message starts with the graded function it is about.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from mlsafety.grading import graded

GRADED = {"log_softmax": "core", "cross_entropy": "core"}
pytestmark = pytest.mark.timeout(20)

# (shape, dim): the normalised dimension is first, middle and last, of different sizes
SOFTMAX_CASES = [((5,), -1), ((4, 10), -1), ((4, 10), 0), ((3, 4, 5), 1), ((2, 3, 4, 5), -2)]
# (batch, classes)
CE_CASES = [(1, 2), (8, 10), (64, 3), (5, 1000)]


def extreme_rows():
    """Logits of magnitude 1e4: rows far above and far below zero, a wide
    spread inside one row, ties at the top. Naive formulas overflow or
    underflow on every one of them."""
    return torch.tensor(
        [
            [1e4, 0.0, -1e4, 5.0],
            [-1e4, -1e4 + 1, -1e4 + 2, -1e4 + 3],
            [3e4, 3e4, 3e4, 3e4],
            [2e4, 2e4 - 1, -3e4, 0.0],
            [0.5, -0.5, 1.0, 0.0],
        ]
    )


def forbidden_softmax_family():
    return {
        "F.log_softmax": (F, "log_softmax"),
        "torch.log_softmax": (torch, "log_softmax"),
        "Tensor.log_softmax": (torch.Tensor, "log_softmax"),
        "F.softmax": (F, "softmax"),
        "torch.softmax": (torch, "softmax"),
        "Tensor.softmax": (torch.Tensor, "softmax"),
        "torch.logsumexp": (torch, "logsumexp"),
        "Tensor.logsumexp": (torch.Tensor, "logsumexp"),
        "torch.special.log_softmax": (torch.special, "log_softmax"),
        "torch.special.logsumexp": (torch.special, "logsumexp"),
    }


# --------------------------------------------------------------------------- #
# log_softmax
# --------------------------------------------------------------------------- #


@graded("log_softmax")
@pytest.mark.parametrize("shape,dim", SOFTMAX_CASES, ids=lambda c: str(c))
def test_log_softmax_matches_torch(losses, agree, gen, shape, dim):
    x = torch.randn(shape, generator=gen(len(shape))) * 3
    got = losses.log_softmax(x, dim=dim)
    agree("log_softmax", got, F.log_softmax(x, dim=dim), f"shape {shape}, dim={dim}")


@graded("log_softmax")
def test_log_softmax_default_dim_is_the_last(losses, agree, gen):
    x = torch.randn(3, 4, 6, generator=gen(1))
    agree("log_softmax", losses.log_softmax(x), F.log_softmax(x, dim=-1), "default dim")


@graded("log_softmax")
@pytest.mark.parametrize("dim", [1, 0])
def test_log_softmax_is_stable_at_extreme_logits(losses, agree, dim):
    x = extreme_rows() if dim == 1 else extreme_rows().T.contiguous()
    got = losses.log_softmax(x, dim=dim)
    bad = (~torch.isfinite(got)).sum().item() if isinstance(got, torch.Tensor) else "all"
    assert bad == 0, (
        f"log_softmax: {bad} inf/nan values for logits of magnitude 1e4 (dim={dim}); subtract "
        f"the maximum along dim before exp (and do not take the log of a softmax)"
    )
    # values are of size 1e4, so a relative tolerance of 1e-5 is the float32 resolution
    agree("log_softmax", got, F.log_softmax(x, dim=dim), f"logits of magnitude 1e4, dim={dim}")


@graded("log_softmax")
def test_log_softmax_is_stable_at_random_large_scales(losses, agree, gen):
    for scale in (1e2, 1e3, 1e4):
        x = torch.randn(16, 10, generator=gen(7)) * scale
        agree("log_softmax", losses.log_softmax(x), F.log_softmax(x, -1), f"randn * {scale:g}")


@graded("log_softmax")
def test_log_softmax_is_a_log_distribution(losses, gen):
    x = torch.randn(6, 7, 5, generator=gen(2)) * 4
    got = losses.log_softmax(x, dim=1)
    total = got.exp().sum(dim=1)
    assert (total - 1).abs().max().item() < 1e-5, (
        f"log_softmax: exp of the result sums to {total.min().item():.4f}..{total.max().item():.4f} "
        f"along dim=1, expected 1; normalise along the dim you were given"
    )
    assert got.max().item() <= 1e-6, (
        f"log_softmax: largest value {got.max().item():.4f} > 0; a log-probability is never positive"
    )


@graded("log_softmax")
def test_log_softmax_gradient_matches_torch(losses, agree, gen):
    for scale in (1.0, 1e4):
        x = (torch.randn(5, 8, generator=gen(3)) * scale).requires_grad_(True)
        weights = torch.randn(5, 8, generator=gen(4))
        (got_grad,) = torch.autograd.grad((losses.log_softmax(x) * weights).sum(), x)
        (ref_grad,) = torch.autograd.grad((F.log_softmax(x, -1) * weights).sum(), x)
        agree(
            "log_softmax",
            got_grad,
            ref_grad,
            f"gradient at logits of scale {scale:g}; keep the graph (no .detach() of the input, "
            f"no torch.no_grad())",
        )


@graded("log_softmax")
def test_log_softmax_keeps_dtype_and_leaves_the_input_alone(losses, agree, gen):
    x = torch.randn(4, 9, generator=gen(5), dtype=torch.float64) * 10
    before = x.clone()
    got = losses.log_softmax(x)
    assert torch.equal(x, before), "log_softmax: modified its input in place; work on new tensors"
    agree("log_softmax", got, F.log_softmax(x, -1), "float64 input", atol=1e-10, rtol=1e-10)


@graded("log_softmax")
def test_log_softmax_computes_it_itself(losses, forbid, gen):
    forbid(
        "log_softmax",
        forbidden_softmax_family(),
        "write it with the max-subtraction trick, torch.exp and torch.log",
    )
    losses.log_softmax(torch.randn(3, 4, generator=gen(6)))


# --------------------------------------------------------------------------- #
# cross_entropy
# --------------------------------------------------------------------------- #


def labels(n, c, seed):
    return torch.randint(0, c, (n,), generator=torch.Generator().manual_seed(seed))


@graded("cross_entropy")
@pytest.mark.parametrize("n,c", CE_CASES, ids=lambda v: str(v))
def test_cross_entropy_matches_torch(losses, agree, gen, n, c):
    x = torch.randn(n, c, generator=gen(n + c)) * 3
    y = labels(n, c, seed=n * c)
    got = losses.cross_entropy(x, y)
    expected = F.cross_entropy(x, y)
    if isinstance(got, torch.Tensor) and got.numel() == 1 and n > 1:
        ratio = got.item() / expected.item()
        assert abs(ratio - n) > 1e-3, (
            f"cross_entropy: {n} examples give {got.item():.4f}, {n} times torch's "
            f"{expected.item():.4f}; take the mean over the batch, not the sum"
        )
    agree("cross_entropy", got, expected, f"{n} examples, {c} classes")


@graded("cross_entropy")
def test_cross_entropy_closed_forms(losses):
    for c in (2, 10, 1000):
        uniform = losses.cross_entropy(torch.zeros(4, c), labels(4, c, seed=c))
        assert abs(float(uniform) - math.log(c)) < 1e-5, (
            f"cross_entropy: equal logits over {c} classes should give log({c}) = "
            f"{math.log(c):.4f}, got {float(uniform):.4f}"
        )
    y = torch.tensor([0, 3, 1])
    sure = torch.full((3, 4), -50.0).scatter(1, y[:, None], 50.0)
    assert abs(float(losses.cross_entropy(sure, y))) < 1e-6, (
        "cross_entropy: confident correct predictions (margin 100) should give a loss of 0, got "
        f"{float(losses.cross_entropy(sure, y)):.4f}"
    )
    wrong = losses.cross_entropy(sure, (y + 1) % 4)
    assert abs(float(wrong) - 100) < 1e-3, (
        f"cross_entropy: confident wrong predictions (margin 100) should give a loss of 100, got "
        f"{float(wrong):.4f}; the loss is minus the log-probability of the target class"
    )


@graded("cross_entropy")
def test_cross_entropy_is_a_scalar_like_the_logits(losses, gen):
    for dtype in (torch.float32, torch.float64):
        x = torch.randn(6, 5, generator=gen(8), dtype=dtype)
        got = losses.cross_entropy(x, labels(6, 5, seed=8))
        assert isinstance(got, torch.Tensor) and got.dim() == 0, (
            f"cross_entropy: expected a 0-dimensional tensor, got "
            f"{tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__}; "
            f"return the mean as a tensor (no .item())"
        )
        assert got.dtype == dtype, f"cross_entropy: {dtype} logits gave a {got.dtype} loss"
        assert abs(got.item() - F.cross_entropy(x, labels(6, 5, seed=8)).item()) < 1e-5, (
            f"cross_entropy: wrong value for {dtype} logits"
        )


@graded("cross_entropy")
def test_cross_entropy_is_stable_at_extreme_logits(losses, agree):
    x = extreme_rows()
    for y in (torch.tensor([0, 1, 2, 3, 0]), torch.tensor([2, 0, 1, 2, 3])):
        got = losses.cross_entropy(x, y)
        assert isinstance(got, torch.Tensor) and torch.isfinite(got).all(), (
            f"cross_entropy: loss is {got} for logits of magnitude 1e4 (targets {y.tolist()}); "
            f"use your stable log_softmax, not the log of exp(logits) / sum"
        )
        agree(
            "cross_entropy",
            got,
            F.cross_entropy(x, y),
            f"logits of magnitude 1e4, targets {y.tolist()}",
        )


@graded("cross_entropy")
def test_cross_entropy_gradient_matches_torch(losses, agree, gen):
    for scale in (1.0, 1e4):
        x = (torch.randn(7, 6, generator=gen(9)) * scale).requires_grad_(True)
        y = labels(7, 6, seed=9)
        (got,) = torch.autograd.grad(losses.cross_entropy(x, y), x)
        (ref,) = torch.autograd.grad(F.cross_entropy(x, y), x)
        agree(
            "cross_entropy",
            got,
            ref,
            f"gradient w.r.t. the logits at scale {scale:g}, which is (softmax - one_hot) / N",
        )


@graded("cross_entropy")
def test_cross_entropy_leaves_its_inputs_alone(losses, gen):
    x = torch.randn(5, 4, generator=gen(10))
    y = labels(5, 4, seed=10)
    x0, y0 = x.clone(), y.clone()
    losses.cross_entropy(x, y)
    assert torch.equal(x, x0), "cross_entropy: modified the logits in place"
    assert torch.equal(y, y0), "cross_entropy: modified the targets in place"


@graded("cross_entropy")
def test_cross_entropy_computes_it_itself(losses, forbid, gen):
    forbid(
        "cross_entropy",
        {
            "F.cross_entropy": (F, "cross_entropy"),
            "F.nll_loss": (F, "nll_loss"),
            **forbidden_softmax_family(),
        },
        "use your own log_softmax and pick the target entries (gather or indexing)",
    )
    losses.cross_entropy(torch.randn(3, 4, generator=gen(11)), torch.tensor([0, 3, 1]))


# --------------------------------------------------------------------------- #
# The device of the logits.
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=graded(n), id=n) for n in ("log_softmax", "cross_entropy")]
)
def test_runs_on_the_device_of_the_logits(losses, gen, name):
    from mlsafety.hardware import pick_device

    device = pick_device()  # the GPU where there is one, else the CPU
    x = (torch.randn(6, 5, generator=gen(12)) * 3).to(device)
    y = labels(6, 5, seed=12).to(device)
    out = losses.log_softmax(x, dim=1) if name == "log_softmax" else losses.cross_entropy(x, y)
    ref = F.log_softmax(x, 1) if name == "log_softmax" else F.cross_entropy(x, y)
    assert isinstance(out, torch.Tensor) and out.device.type == device.type, (
        f"{name}: logits on {device} gave a result on {getattr(out, 'device', type(out).__name__)}; "
        f"create any new tensor (one-hot targets, constants) on the logits' device"
    )
    gap = (out - ref).abs().max().item()
    assert gap < 1e-5, f"{name}: on {device} the result differs from torch's by {gap:.2e}"
