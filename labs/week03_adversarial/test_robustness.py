"""Specs for robustness.py: robust accuracy, adversarial training, transfer.

Run them with `make test-week3` (add IMPL=solution to see the reference pass).
"""

import copy

import pytest
import torch
import torch.nn.functional as F

from mlsafety.grading import graded

GRADED = {
    "robust_accuracy": "core",
    "adversarial_training_epoch": "stretch",
    "transfer_success": "stretch",
}
pytestmark = pytest.mark.timeout(20)


def reference_fgsm(model, x, y, eps=0.1):
    """An attack written in the spec: one signed step, clamped to [0, 1]."""
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(x), y), x)
    return (x + eps * g.sign()).clamp(0, 1).detach()


class PlainSGD:
    """SGD with momentum, written in the spec (torch.optim's first use costs a
    second of imports). Anything with zero_grad() and step() is an optimizer."""

    def __init__(self, params, lr, momentum=0.0):
        self.params, self.lr, self.momentum = list(params), lr, momentum
        self.velocity = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self, set_to_none=True):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        for p, v in zip(self.params, self.velocity, strict=True):
            if p.grad is not None:
                v.mul_(self.momentum).add_(p.grad)
                p.sub_(self.lr * v)


class Recording:
    """Wraps an attack and remembers how it was called."""

    def __init__(self, attack=reference_fgsm):
        self.attack, self.calls = attack, []

    def __call__(self, model, x, y):
        self.calls.append({"model": model, "training": model.training, "n": len(y)})
        return self.attack(model, x, y)


def uneven_batches(x, y, sizes=(40, 3, 21)):
    out, start = [], 0
    for n in sizes:
        out.append((x[start : start + n], y[start : start + n]))
        start += n
    return out


def correct(model, x, y):
    with torch.no_grad():
        return (model(x).argmax(1) == y).sum().item()


# --------------------------------------------------------------------------- #
# robust_accuracy
# --------------------------------------------------------------------------- #


@graded("robust_accuracy")
def test_robust_accuracy_counts_every_example_once(robustness, model, digits64):
    x, y = digits64
    y = y.clone()
    y[40:43] = (
        y[40:43] + 1
    ) % 10  # the small batch is all wrong: batch means and example means differ
    batches = uneven_batches(x, y)
    expected = correct(model, x, y) / len(y)
    got = robustness.robust_accuracy(model, batches)
    assert isinstance(got, float), (
        f"robust_accuracy: returned {type(got).__name__}, expected a Python float"
    )
    assert abs(got - expected) < 1e-6, (
        f"robust_accuracy: clean accuracy over batches of 40, 3 and 21 examples is {expected:.4f}, got "
        f"{got:.4f}; count correct examples over all batches and divide once (not a mean of batch means)"
    )


@graded("robust_accuracy")
def test_robust_accuracy_uses_the_attack(robustness, model, digits64):
    x, y = digits64
    attack = Recording()
    batches = uneven_batches(x, y)
    got = robustness.robust_accuracy(model, batches, attack)
    expected = sum(correct(model, reference_fgsm(model, bx, by), by) for bx, by in batches) / len(y)
    assert [c["n"] for c in attack.calls] == [40, 3, 21], (
        f"robust_accuracy: the attack should run once per batch (sizes 40, 3, 21), got calls with "
        f"{[c['n'] for c in attack.calls]}"
    )
    assert all(c["model"] is model for c in attack.calls), (
        "robust_accuracy: attack the model being evaluated"
    )
    assert abs(got - expected) < 1e-6, (
        f"robust_accuracy: accuracy on the attacked examples is {expected:.4f}, got {got:.4f}; classify "
        f"x_adv = attack(model, x, y) and count how often the prediction equals y"
    )


@graded("robust_accuracy")
def test_robust_accuracy_leaves_the_mode_as_found(robustness, model, digits64):
    x, y = digits64
    attack = Recording()
    for mode in (True, False):
        model.train(mode)
        robustness.robust_accuracy(model, [(x, y)], attack)
        assert model.training == mode, (
            f"robust_accuracy: the model was in {'train' if mode else 'eval'} mode and came back in "
            f"{'train' if model.training else 'eval'} mode; restore the mode it had"
        )
    assert not any(c["training"] for c in attack.calls), (
        "robust_accuracy: evaluate (and attack) in eval mode"
    )


@graded("robust_accuracy")
def test_robust_accuracy_of_a_perfect_attack_is_zero(robustness, model, digits64):
    x, y = digits64
    other = x.roll(1, dims=0)  # each image replaced by its neighbour's

    def swap(m, bx, by):
        return other[: len(by)]

    labels = model(other).argmax(1).detach()
    y_wrong = torch.where(labels == y, (y + 1) % 10, y)
    acc = robustness.robust_accuracy(model, [(x, y_wrong)], swap)
    assert acc == 0.0, (
        f"robust_accuracy: every attacked example is misclassified, expected 0.0, got {acc}"
    )


# --------------------------------------------------------------------------- #
# adversarial_training_epoch
# --------------------------------------------------------------------------- #


def reference_epoch(model, batches, lr, attack=reference_fgsm):
    opt = PlainSGD(model.parameters(), lr=lr)
    losses, hits = [], 0
    for x, y in batches:
        x_adv = attack(model, x, y)
        opt.zero_grad()
        logits = model(x_adv)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        opt.step()
        losses.append(loss.item() * len(y))
        hits += (logits.argmax(1) == y).sum().item()
    n = sum(len(y) for _, y in batches)
    return sum(losses) / n, hits / n


@graded("adversarial_training_epoch")
def test_adversarial_training_matches_the_reference_update(robustness, model, digits64):
    x, y = digits64
    batches = uneven_batches(x, y)
    expected_model = copy.deepcopy(model)
    exp_loss, exp_acc = reference_epoch(expected_model, batches, lr=0.05)
    for p in model.parameters():  # stale gradients the epoch must not add to its first step
        p.grad = torch.ones_like(p)
    opt = PlainSGD(model.parameters(), lr=0.05)
    loss, acc = robustness.adversarial_training_epoch(model, batches, opt, Recording())
    gap = max(
        (a - b).abs().max().item()
        for a, b in zip(model.parameters(), expected_model.parameters(), strict=True)
    )
    assert gap < 1e-5, (
        f"adversarial_training_epoch: weights after one epoch differ from the reference by {gap:.2e}; per "
        f"batch: attack, zero the gradients, loss on x_adv, backward, optimizer.step()"
    )
    assert isinstance(loss, float) and isinstance(acc, float), (
        "adversarial_training_epoch: return (mean_loss, robust_accuracy) as Python floats"
    )
    assert abs(loss - exp_loss) < 1e-4, (
        f"adversarial_training_epoch: mean loss should be {exp_loss:.4f} (cross-entropy on the "
        f"adversarial examples, averaged over examples), got {loss:.4f}"
    )
    assert abs(acc - exp_acc) < 1e-6, (
        f"adversarial_training_epoch: robust accuracy should be {exp_acc:.4f} (accuracy on the "
        f"adversarial examples before each update, over all examples), got {acc:.4f}"
    )


@graded("adversarial_training_epoch")
def test_adversarial_training_modes(robustness, model, digits64):
    x, y = digits64
    attack = Recording()
    model.eval()
    robustness.adversarial_training_epoch(
        model, uneven_batches(x, y), PlainSGD(model.parameters(), lr=0.0), attack
    )
    assert attack.calls, "adversarial_training_epoch: never called the attack"
    assert not any(c["training"] for c in attack.calls), (
        "adversarial_training_epoch: craft the adversarial examples with the model in eval mode"
    )
    assert model.training, "adversarial_training_epoch: leave the model in train mode"


@graded("adversarial_training_epoch")
def test_adversarial_training_makes_a_fresh_model_robust(robustness, digits64):
    from mlsafety.models import SmallCNN

    torch.manual_seed(0)
    model = SmallCNN(1, 10, 16, 28)
    x, y = digits64
    batches = uneven_batches(x, y, (16, 16, 16, 16))
    opt = PlainSGD(model.parameters(), lr=0.05, momentum=0.9)
    attack = lambda m, bx, by: reference_fgsm(m, bx, by, eps=0.05)  # noqa: E731
    before = sum(correct(model, attack(model, bx, by), by) for bx, by in batches) / len(y)
    for _ in range(40):
        robustness.adversarial_training_epoch(model, batches, opt, attack)
    after = sum(correct(model, attack(model, bx, by), by) for bx, by in batches) / len(y)
    assert after > max(before + 0.5, 0.75), (
        f"adversarial_training_epoch: 40 epochs on 64 digits64 should raise accuracy under FGSM well above "
        f"the start ({before:.2f} -> {after:.2f}); is the optimizer stepping on the attacked batches?"
    )


# --------------------------------------------------------------------------- #
# transfer_success
# --------------------------------------------------------------------------- #


def expected_transfer(source, target, x, y):
    x_adv = reference_fgsm(source, x, y)
    with torch.no_grad():
        ok = target(x).argmax(1) == y
        fooled = target(x_adv).argmax(1) != y
    return (ok & fooled).sum().item() / ok.sum().item()


@graded("transfer_success")
def test_transfer_success_crafts_on_the_source_and_counts_on_the_target(
    robustness, model, robust_model, digits64
):
    x, y = digits64
    attack = Recording()
    got = robustness.transfer_success(model, robust_model, x, y, attack)
    expected = expected_transfer(model, robust_model, x, y)
    assert attack.calls and all(c["model"] is model for c in attack.calls), (
        "transfer_success: craft the adversarial examples on source_model (a transfer attack never "
        "uses the target's gradients)"
    )
    assert isinstance(got, float), (
        f"transfer_success: returned {type(got).__name__}, expected a Python float"
    )
    assert abs(got - expected) < 1e-6, (
        f"transfer_success: expected {expected:.4f}, got {got:.4f}; among examples the target classifies "
        f"correctly on clean input, the fraction it misclassifies on x_adv"
    )
    reverse = robustness.transfer_success(robust_model, model, x, y, Recording())
    assert abs(reverse - expected_transfer(robust_model, model, x, y)) < 1e-6, (
        "transfer_success: wrong rate when source and target are swapped"
    )


@graded("transfer_success")
def test_transfer_success_edge_cases(robustness, model, robust_model, digits64):
    x, y = digits64
    never_right = (model(x).argmax(1).detach() + 1) % 10
    rate = robustness.transfer_success(robust_model, model, x, never_right, Recording())
    assert rate == 0.0, (
        f"transfer_success: the target gets no clean example right, expected 0.0, got {rate}"
    )
    model.train()
    robust_model.eval()
    robustness.transfer_success(model, robust_model, x, y, Recording())
    assert model.training and not robust_model.training, (
        "transfer_success: leave both models in the mode they were in"
    )


# --------------------------------------------------------------------------- #
# Any iterable of batches, on the model's device; the mode of every forward.
# --------------------------------------------------------------------------- #


class Modes(torch.nn.Module):
    """Wraps a model and records, for every forward, whether it ran in train
    mode and with gradients enabled."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, []

    def forward(self, x):
        self.calls.append((self.training, torch.is_grad_enabled()))
        return self.inner(x)


def one_pass(batches):
    """The batches as a generator: it can be iterated only once."""
    yield from batches


def nudge(model, x, y):
    """An attack that never queries the model."""
    return (x + 0.05).clamp(0, 1)


@graded("robust_accuracy")
def test_robust_accuracy_reads_the_data_once_on_the_models_device(robustness, model, digits64):
    from mlsafety.hardware import pick_device

    x, y = digits64
    device = pick_device()
    model = model.to(device)  # the batches stay on the CPU
    expected = correct(model, x.to(device), y.to(device)) / len(y)
    got = robustness.robust_accuracy(model, one_pass(uneven_batches(x, y)))
    assert abs(got - expected) < 1e-6, (
        f"robust_accuracy: on a generator of batches (iterable only once) expected {expected:.4f}, got "
        f"{got:.4f}; go through `data` once, counting correct and total as you go (no len(data), no "
        f"second pass)"
    )


@graded("adversarial_training_epoch")
def test_adversarial_training_reads_the_data_once_in_train_mode(robustness, model, digits64):
    from mlsafety.hardware import pick_device

    x, y = digits64
    batches = uneven_batches(x, y, (20, 3, 9))  # small: only the modes and the pass count
    device = pick_device()
    reference = copy.deepcopy(model).to(device)
    on_device = [(bx.to(device), by.to(device)) for bx, by in batches]
    exp_loss, _ = reference_epoch(reference, on_device, 0.05, attack=nudge)
    spy = Modes(model).to(device)  # the batches stay on the CPU
    spy.eval()
    loss, _ = robustness.adversarial_training_epoch(
        spy, one_pass(batches), PlainSGD(spy.parameters(), lr=0.05), nudge
    )
    trained = [train for train, grad in spy.calls if grad]
    assert trained and all(trained), (
        f"adversarial_training_epoch: {trained.count(False)} of the {len(trained)} forward passes with "
        f"gradients ran in eval mode; switch the model to train mode (model.train()) after crafting "
        f"x_adv and before the loss"
    )
    assert abs(loss - exp_loss) < 1e-4, (
        f"adversarial_training_epoch: on a generator of batches (iterable only once) the mean loss "
        f"should be {exp_loss:.4f}, got {loss:.4f}; go through `data` once"
    )


@graded("transfer_success")
def test_transfer_success_evaluates_both_models_in_eval_mode(
    robustness, model, robust_model, digits64
):
    x, y = digits64[0][:16], digits64[1][:16]
    source, target = Modes(robust_model).train(), Modes(model).train()
    attack = Recording()
    robustness.transfer_success(source, target, x, y, attack)
    assert attack.calls and not any(c["training"] for c in attack.calls), (
        "transfer_success: the source model was attacked in train mode; call source_model.eval() first"
    )
    assert target.calls and not any(train for train, _ in target.calls), (
        "transfer_success: the target model was evaluated in train mode; call target_model.eval() first"
    )
    assert source.training and target.training, (
        "transfer_success: leave both models in the mode they were in"
    )
    never_right = (model(x).argmax(1).detach() + 1) % 10
    rate = robustness.transfer_success(robust_model, model, x, never_right, Recording())
    assert isinstance(rate, float), (
        f"transfer_success: returned {type(rate).__name__} {rate!r} when the target gets nothing right; "
        f"return the Python float 0.0"
    )
