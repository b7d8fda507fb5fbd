"""Specs for training.py: train_epoch, and a model built from all your pieces.

Run them with `make test-week1` (add IMPL=solution to see the reference pass).
Every failure message starts with the graded function it is about.
"""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mlsafety.grading import graded

GRADED = {"train_epoch": "core"}
pytestmark = pytest.mark.timeout(20)

BATCH_SIZES = (40, 3, 21)
# the model built from your pieces must reach this held-out accuracy on the smoke digits
TARGET_ACCURACY = 0.9
E2E_EPOCHS = 6


class PlainSGD:
    """SGD with momentum, written in the spec: anything with zero_grad() and
    step() is an optimizer. Records the gradients it sees at every step."""

    def __init__(self, params, lr, momentum=0.0):
        self.params, self.lr, self.momentum = list(params), lr, momentum
        self.velocity = [torch.zeros_like(p) for p in self.params]
        self.seen = []  # the gradients at every step()
        self.zeroed = 0

    def zero_grad(self, set_to_none=True):
        self.zeroed += 1
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        self.seen.append([None if p.grad is None else p.grad.clone() for p in self.params])
        for p, v in zip(self.params, self.velocity, strict=True):
            if p.grad is not None:
                v.mul_(self.momentum).add_(p.grad)
                p.sub_(self.lr * v)


class ModeRecorder(nn.Module):
    """Identity layer that remembers the mode of every forward pass."""

    def __init__(self):
        super().__init__()
        self.modes = []

    def forward(self, x):
        self.modes.append(self.training)
        return x


def small_model(seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(10, 16), nn.Tanh(), ModeRecorder(), nn.Linear(16, 4))


def blobs(n=64, seed=0):
    """Four Gaussian blobs in 10 dimensions: learnable, not trivially."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    centres = torch.randn(4, 10, generator=g)
    return centres[y] + 0.8 * torch.randn(n, 10, generator=g), y


def uneven_batches(x, y, sizes=BATCH_SIZES):
    out, start = [], 0
    for n in sizes:
        out.append((x[start : start + n], y[start : start + n]))
        start += n
    return out


def reference_epoch(model, batches, optimizer, loss_fn=F.cross_entropy):
    model.train()
    loss_sum = hits = 0.0
    for x, y in batches:
        optimizer.zero_grad()
        logits = model(x)
        loss = loss_fn(logits, y)
        loss.backward()
        optimizer.step()
        loss_sum += loss.item() * len(y)
        hits += (logits.argmax(1) == y).sum().item()
    n = sum(len(y) for _, y in batches)
    return loss_sum / n, hits / n


def stale_gradients(model):
    for p in model.parameters():  # left over from before: must not reach the first step
        p.grad = torch.ones_like(p)


def run_both(training, loss_fn=F.cross_entropy, lr=0.2):
    """Your train_epoch and the reference on identical copies of a model."""
    x, y = blobs()
    batches = uneven_batches(x, y)
    model, expected_model = small_model(), small_model()
    model.eval()
    stale_gradients(model)
    opt = PlainSGD(model.parameters(), lr=lr, momentum=0.9)
    result = training.train_epoch(model, batches, opt, loss_fn)
    expected = reference_epoch(
        expected_model, batches, PlainSGD(expected_model.parameters(), lr, 0.9), loss_fn
    )
    return model, expected_model, opt, result, expected


def weight_gap(a, b):
    return max(
        (p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters(), strict=True)
    )


@graded("train_epoch")
def test_train_epoch_switches_to_train_mode(training):
    model, _, _, _, _ = run_both(training)
    modes = model[2].modes
    assert modes and all(modes), (
        f"train_epoch: {modes.count(False)} of {len(modes)} forward passes ran in eval mode; call "
        f"model.train() before the loop (the model came in eval mode)"
    )
    assert model.training, "train_epoch: leave the model in train mode"
    assert len(modes) == len(BATCH_SIZES), (
        f"train_epoch: {len(modes)} forward passes for {len(BATCH_SIZES)} batches; use the "
        f"logits of the one forward pass per batch for both the loss and the accuracy"
    )


@graded("train_epoch")
def test_train_epoch_zeroes_the_gradients_before_every_step(training):
    x, y = blobs()
    batches = uneven_batches(x, y)
    model = small_model()
    stale_gradients(model)
    opt = PlainSGD(model.parameters(), lr=0.0)  # lr = 0: every batch sees the same model
    training.train_epoch(model, batches, opt, F.cross_entropy)
    assert len(opt.seen) == len(batches), (
        f"train_epoch: optimizer.step() ran {len(opt.seen)} times for {len(batches)} batches"
    )
    fresh_model = small_model()
    for step, ((bx, by), seen) in enumerate(zip(batches, opt.seen, strict=True), start=1):
        fresh_model.zero_grad(set_to_none=True)
        F.cross_entropy(fresh_model(bx), by).backward()
        fresh = [p.grad for p in fresh_model.parameters()]
        if any(g is None for g in seen) or all(g.abs().max() == 0 for g in seen):
            raise AssertionError(
                f"train_epoch: there were no gradients at optimizer.step() number {step}; "
                f"zero them before loss.backward(), not between backward() and step()"
            )
        gap = max((g - f).abs().max().item() for g, f in zip(seen, fresh, strict=True))
        where = (
            "stale gradients from before the call leaked into the first step"
            if step == 1
            else f"the gradients of earlier batches were added to batch {step}'s"
        )
        assert gap < 1e-5, (
            f"train_epoch: at optimizer.step() number {step} the gradients differ from that "
            f"batch's own by {gap:.2e}: {where}; call optimizer.zero_grad() before every "
            f"loss.backward()"
        )


@graded("train_epoch")
def test_train_epoch_matches_the_reference_update(training):
    model, expected_model, _, _, _ = run_both(training)
    gap = weight_gap(model, expected_model)
    assert gap < 1e-5, (
        f"train_epoch: weights after one epoch differ from the reference by {gap:.2e}; per batch: "
        f"optimizer.zero_grad(), logits = model(x), loss = loss_fn(logits, y), loss.backward(), "
        f"optimizer.step()"
    )


@graded("train_epoch")
def test_train_epoch_returns_the_mean_loss_and_accuracy_over_examples(training):
    _, _, _, result, (exp_loss, exp_acc) = run_both(training)
    assert isinstance(result, tuple) and len(result) == 2, (
        f"train_epoch: return (mean_loss, accuracy), got {result!r}"
    )
    loss, acc = result
    assert isinstance(loss, float) and isinstance(acc, float), (
        f"train_epoch: return Python floats (use .item()), got "
        f"({type(loss).__name__}, {type(acc).__name__})"
    )
    assert abs(loss - exp_loss) < 1e-4, (
        f"train_epoch: mean loss should be {exp_loss:.4f} (each batch's loss times its size, "
        f"summed, divided by the number of examples; batches of {BATCH_SIZES}), got {loss:.4f}"
    )
    assert abs(acc - exp_acc) < 1e-6, (
        f"train_epoch: accuracy should be {exp_acc:.4f} (correct predictions from the forward "
        f"pass before each update, over all examples), got {acc:.4f}"
    )


@graded("train_epoch")
def test_train_epoch_uses_the_loss_function_it_is_given(training):
    def smoothed(logits, y):  # a loss other than cross-entropy, with different gradients
        return F.cross_entropy(logits, y, label_smoothing=0.3) + 0.1 * logits.pow(2).mean()

    model, expected_model, _, (loss, _), (exp_loss, _) = run_both(training, loss_fn=smoothed)
    assert abs(loss - exp_loss) < 1e-4 and weight_gap(model, expected_model) < 1e-5, (
        f"train_epoch: with a custom loss_fn the mean loss should be {exp_loss:.4f}, got "
        f"{loss:.4f}; compute the loss with loss_fn(logits, y), not a fixed loss"
    )


@graded("train_epoch")
def test_train_epoch_moves_batches_to_the_models_device(training):
    from mlsafety.hardware import pick_device

    device = pick_device()  # the GPU where there is one, else the CPU
    model = small_model().to(device)
    x, y = blobs()  # the batches stay on the CPU
    loss, acc = training.train_epoch(
        model, uneven_batches(x, y), PlainSGD(model.parameters(), lr=0.1), F.cross_entropy
    )
    assert 0.0 <= acc <= 1.0 and loss > 0, f"train_epoch: odd results on {device}: {loss}, {acc}"


@graded("train_epoch")
def test_a_model_built_from_your_pieces_learns_the_digits(
    training, layers, losses, optimizers, digits
):
    x_train, y_train, x_test, y_test = digits
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = layers.MLP(x_train[0].numel(), 10, width=64, depth=1)
    opt = optimizers.SGD(model.parameters(), lr=0.02, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    history = []
    for _ in range(E2E_EPOCHS):
        order = torch.randperm(len(y_train), generator=g)
        batches = [(x_train[i], y_train[i]) for i in order.split(64)]
        history.append(training.train_epoch(model, batches, opt, losses.cross_entropy))
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    pieces = (
        "an MLP built from your gelu, layer_norm and residual_block, trained with your "
        "cross_entropy and sgd_step (momentum 0.9)"
    )
    assert history[-1][0] < history[0][0], (
        f"train_epoch: {pieces}: the mean training loss did not fall over {E2E_EPOCHS} epochs "
        f"({', '.join(f'{loss:.3f}' for loss, _ in history)})"
    )
    assert accuracy >= TARGET_ACCURACY, (
        f"train_epoch: {pieces}, reached {accuracy:.1%} held-out accuracy on the smoke digits "
        f"after {E2E_EPOCHS} epochs (needs {TARGET_ACCURACY:.0%}); if other functions fail their "
        f"own specs, fix those first"
    )


@graded("train_epoch")
def test_train_epoch_does_not_touch_the_data(training):
    x, y = blobs()
    batches = uneven_batches(x, y)
    saved = copy.deepcopy(batches)
    model = small_model()
    training.train_epoch(model, batches, PlainSGD(model.parameters(), lr=0.1), F.cross_entropy)
    for (bx, by), (sx, sy) in zip(batches, saved, strict=True):
        assert torch.equal(bx, sx) and torch.equal(by, sy), "train_epoch: modified a batch in place"


@graded("train_epoch")
def test_train_epoch_reads_the_data_once(training):
    x, y = blobs()
    batches = uneven_batches(x, y)
    model, expected_model = small_model(), small_model()
    opt = PlainSGD(model.parameters(), lr=0.2, momentum=0.9)
    loss, acc = training.train_epoch(model, (b for b in batches), opt, F.cross_entropy)
    exp_loss, exp_acc = reference_epoch(
        expected_model, batches, PlainSGD(expected_model.parameters(), 0.2, 0.9)
    )
    assert abs(loss - exp_loss) < 1e-4 and abs(acc - exp_acc) < 1e-6, (
        f"train_epoch: on a generator of batches (iterable only once) expected ({exp_loss:.4f}, "
        f"{exp_acc:.4f}), got ({loss:.4f}, {acc:.4f}); go through `data` once, counting examples "
        f"as you go (no len(data), no second pass)"
    )
    assert weight_gap(model, expected_model) < 1e-5, (
        "train_epoch: on a generator of batches the weights differ from the reference"
    )
