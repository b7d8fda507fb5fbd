"""Specs for ccs.py: the CCS loss, training a CCS probe with normalisation and
restarts, and the sign-free accuracy of a probe.

Run them with `make test-week7` (add IMPL=solution to see the reference pass).
Every failure message starts with the graded function it is about.
"""

import math

import pytest
import torch
from torch import nn

from mlsafety.grading import graded
from mlsafety.specs import number

GRADED = {"ccs_loss": "core", "train_ccs_probe": "stretch", "probe_accuracy": "core"}
pytestmark = pytest.mark.timeout(20)


def normalise(x):
    """Each side on its own: centre and scale every feature (unbiased std)."""
    return (x - x.mean(0)) / x.std(0)


def reference_ccs(p_pos, p_neg):
    consistency = ((p_pos - (1 - p_neg)) ** 2).mean()
    confidence = (torch.where(p_pos < p_neg, p_pos, p_neg) ** 2).mean()
    return consistency + confidence


def reference_accuracy(w, b, x_pos, x_neg, labels, normalize=True):
    """Sign-free accuracy of the probe sigmoid(x . w + b), computed plainly."""
    if normalize:
        x_pos, x_neg = normalise(x_pos), normalise(x_neg)
    p_pos, p_neg = torch.sigmoid(x_pos @ w + b), torch.sigmoid(x_neg @ w + b)
    acc = (((p_pos + 1 - p_neg) / 2 > 0.5) == labels.bool()).double().mean().item()
    return max(acc, 1 - acc)


def linear(w, b=0.0) -> nn.Linear:
    probe = nn.Linear(len(w), 1).to(w.dtype)
    with torch.no_grad():
        probe.weight.copy_(w[None, :])
        probe.bias.fill_(b)
    return probe


# --------------------------------------------------------------------------- #
# ccs_loss
# --------------------------------------------------------------------------- #


def scalar_tensor(value):
    if not isinstance(value, torch.Tensor) or value.dim() != 0:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        pytest.fail(f"ccs_loss: expected a scalar tensor, got {shape}", pytrace=False)
    return value


@graded("ccs_loss")
def test_ccs_loss_closed_form(ccs):
    p_pos = torch.tensor([0.9, 0.2, 0.5])
    p_neg = torch.tensor([0.1, 0.6, 0.5])
    # consistency: (0.9-0.9)^2, (0.2-0.4)^2, (0.5-0.5)^2 -> 0.04/3; confidence: 0.01, 0.04, 0.25 -> 0.3/3
    want = 0.04 / 3 + 0.3 / 3
    got = number("ccs_loss", scalar_tensor(ccs.ccs_loss(p_pos, p_neg)))
    hints = {
        0.3 / 3 + (0.64 + 0.16) / 3: "consistency compares p_pos with 1 - p_neg, not with p_neg",
        0.04 / 3 + (0.81 + 0.36 + 0.25) / 3: "confidence uses the smaller probability, min",
        0.04 / 3 + 0.8 / 3: "square the smaller probability in the confidence term",
        0.04 + 0.3: "that is a sum over statements; take means",
        0.04 / 3: "the confidence term is missing",
        0.1: "the consistency term is missing",
    }
    hint = next((h for v, h in hints.items() if math.isclose(got, v, rel_tol=1e-4)), "")
    assert math.isclose(got, want, rel_tol=1e-5), (
        f"ccs_loss: p_pos = [0.9, 0.2, 0.5], p_neg = [0.1, 0.6, 0.5] should give "
        f"mean((p_pos - (1 - p_neg))^2) + mean(min(p_pos, p_neg)^2) = 0.04/3 + 0.3/3 = "
        f"{want:.5f}, got {got:.5f}" + (f"; {hint}" if hint else "")
    )


@graded("ccs_loss")
@pytest.mark.parametrize(
    "p_pos,p_neg,want,why",
    [
        (1.0, 0.0, 0.0, "a consistent and confident pair costs nothing"),
        (0.0, 1.0, 0.0, "the same with the other answer true"),
        (0.5, 0.5, 0.25, "consistent but undecided: the confidence term is 0.25"),
        (1.0, 1.0, 2.0, "both true: inconsistent (1) and unconfident (1)"),
        (0.0, 0.0, 1.0, "both false: inconsistent (1), confident (0)"),
    ],
)
def test_ccs_loss_corner_cases(ccs, p_pos, p_neg, want, why):
    got = number("ccs_loss", ccs.ccs_loss(torch.tensor([p_pos]), torch.tensor([p_neg])))
    assert math.isclose(got, want, abs_tol=1e-6), (
        f"ccs_loss: p_pos = {p_pos}, p_neg = {p_neg} should give {want} ({why}), got {got}"
    )


@graded("ccs_loss")
def test_ccs_loss_matches_a_reference_with_gradients(ccs):
    g = torch.Generator().manual_seed(0)
    p_pos = torch.rand(64, generator=g, dtype=torch.float64).requires_grad_(True)
    p_neg = torch.rand(64, generator=g, dtype=torch.float64).requires_grad_(True)
    before = (p_pos.detach().clone(), p_neg.detach().clone())
    loss = scalar_tensor(ccs.ccs_loss(p_pos, p_neg))
    want = reference_ccs(p_pos, p_neg)
    assert math.isclose(loss.item(), want.item(), rel_tol=1e-9), (
        f"ccs_loss: on 64 random pairs expected {want.item():.6f}, got {loss.item():.6f}"
    )
    if not loss.requires_grad:
        pytest.fail("ccs_loss: the loss carries no gradient; use torch operations", pytrace=False)
    got_grads = torch.autograd.grad(loss, [p_pos, p_neg])
    want_grads = torch.autograd.grad(want, [p_pos, p_neg])
    for name, got, ref in zip(("p_pos", "p_neg"), got_grads, want_grads, strict=True):
        assert torch.allclose(got, ref, atol=1e-9), (
            f"ccs_loss: the gradient with respect to {name} differs from the reference "
            f"(max difference {(got - ref).abs().max().item():.3g})"
        )
    assert torch.equal(p_pos.detach(), before[0]) and torch.equal(p_neg.detach(), before[1]), (
        "ccs_loss: modified its inputs in place"
    )
    with pytest.raises(ValueError):
        ccs.ccs_loss(torch.rand(4, 1), torch.rand(4))
        pytest.fail("ccs_loss: shapes (4, 1) and (4,) must raise ValueError", pytrace=False)


# --------------------------------------------------------------------------- #
# train_ccs_probe
# --------------------------------------------------------------------------- #


def probe_params(probe):
    if not isinstance(probe, nn.Module) or getattr(probe, "bias", None) is None:
        pytest.fail(
            f"train_ccs_probe: expected an nn.Linear(D, 1) with a bias, got {type(probe).__name__}",
            pytrace=False,
        )
    return probe.weight.detach().reshape(-1), probe.bias.detach().reshape(())


def reference_restarts(x_pos, x_neg, restarts, steps, lr, weight_decay, seed):
    """Every restart of the docstring's recipe: [(final loss, w, b), ...] in order."""
    xp, xn = normalise(x_pos), normalise(x_neg)
    d = xp.shape[1]
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(restarts):
        w = (torch.randn(d, generator=g) / math.sqrt(d)).to(xp.dtype).requires_grad_(True)
        b = torch.zeros((), dtype=xp.dtype, requires_grad=True)
        opt = torch.optim.Adam([w, b], lr=lr, weight_decay=weight_decay)
        for _ in range(steps):
            loss = reference_ccs(torch.sigmoid(xp @ w + b), torch.sigmoid(xn @ w + b))
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            final = reference_ccs(torch.sigmoid(xp @ w + b), torch.sigmoid(xn @ w + b)).item()
        out.append((final, w.detach(), b.detach()))
    return out


def loss_of(probe, x_pos, x_neg):
    w, b = probe_params(probe)
    xp, xn = normalise(x_pos), normalise(x_neg)
    return reference_ccs(torch.sigmoid(xp @ w + b), torch.sigmoid(xn @ w + b)).item()


@pytest.fixture(scope="session")
def trained_probe(ccs, contrast_data):
    """trained_probe(normalize) -> a probe trained on the first 200 statements, trained
    once, inside the first spec that asks (a missing function fails that spec)."""
    cache = {}

    def get(normalize: bool):
        if normalize not in cache:
            cache[normalize] = ccs.train_ccs_probe(
                contrast_data[0][:200], contrast_data[1][:200], restarts=2, steps=100,
                lr=0.05, normalize=normalize, generator=torch.Generator().manual_seed(0),
            )  # fmt: skip
        return cache[normalize]

    return get


@graded("train_ccs_probe")
def test_train_ccs_probe_recovers_the_planted_truth_direction(trained_probe, contrast_data):
    x_pos, x_neg, labels, truth, answer = contrast_data
    w, b = probe_params(trained_probe(True))
    held_out = reference_accuracy(w, b, x_pos[200:], x_neg[200:], labels[200:])
    cos_truth = abs((w @ truth) / w.norm()).item()
    cos_answer = abs((w @ answer) / w.norm()).item()
    hint = (
        "; it follows the answer direction shared by every 'Yes' (and every 'No'): normalise "
        "x_pos and x_neg separately, each with its own mean and std"
        if cos_answer > 0.5
        else ""
    )
    assert held_out > 0.9, (
        f"train_ccs_probe: synthetic activations with a planted truth direction; held-out "
        f"accuracy (max(acc, 1 - acc)) is {held_out:.1%}, expected > 90% "
        f"(|cosine| with the truth direction {cos_truth:.2f}, with the answer direction "
        f"{cos_answer:.2f}){hint}"
    )


@graded("train_ccs_probe")
def test_train_ccs_probe_without_normalisation_latches_onto_the_answer(
    trained_probe, contrast_data
):
    x_pos, x_neg, labels, truth, answer = contrast_data
    w, b = probe_params(trained_probe(False))
    cos_answer = abs((w @ answer) / w.norm()).item()
    acc = reference_accuracy(w, b, x_pos, x_neg, labels, normalize=False)
    assert cos_answer > 0.8 and acc < 0.7, (
        f"train_ccs_probe: with normalize=False the raw activations carry a large 'Yes'/'No' "
        f"offset that gives a near-perfect CCS loss; the probe should find it (|cosine| with "
        f"the answer direction {cos_answer:.2f}, expected > 0.8; accuracy {acc:.1%}, expected "
        f"near chance); did normalize=False still normalise?"
    )


@graded("train_ccs_probe")
def test_train_ccs_probe_follows_the_recipe(ccs, make_contrast):
    x_pos, x_neg, *_ = make_contrast(60, 5, seed=11)
    ((_, w_ref, b_ref),) = reference_restarts(x_pos, x_neg, 1, 40, 0.05, 0.01, seed=8)
    probe = ccs.train_ccs_probe(
        x_pos, x_neg, restarts=1, steps=40, lr=0.05, weight_decay=0.01,
        generator=torch.Generator().manual_seed(8),
    )  # fmt: skip
    w, b = probe_params(probe)
    assert w.shape == w_ref.shape and torch.allclose(w, w_ref, atol=1e-4), (
        f"train_ccs_probe: one restart of 40 Adam steps (lr=0.05, weight_decay=0.01) should "
        f"end at w = {[round(x, 4) for x in w_ref.tolist()]}, got "
        f"{[round(x, 4) for x in w.tolist()]}; did you normalise each side with x.std(dim=0) "
        f"(unbiased), start from torch.randn(D, generator=generator) / sqrt(D) and b = 0, and "
        f"take full-batch steps?"
    )
    assert abs(b.item() - b_ref.item()) < 1e-4, (
        f"train_ccs_probe: the bias should end at {b_ref.item():.5f}, got {b.item():.5f}"
    )


@graded("train_ccs_probe")
def test_train_ccs_probe_keeps_the_restart_with_the_lowest_loss(ccs, make_contrast):
    x_pos, x_neg, *_ = make_contrast(80, 8, seed=12, truth=0.6, noise=1.0)
    runs = reference_restarts(x_pos, x_neg, 6, 15, 0.05, 0.01, seed=2)
    losses = [r[0] for r in runs]
    probe = ccs.train_ccs_probe(
        x_pos, x_neg, restarts=6, steps=15, lr=0.05, weight_decay=0.01,
        generator=torch.Generator().manual_seed(2),
    )  # fmt: skip
    got = loss_of(probe, x_pos, x_neg)
    which = min(range(6), key=lambda r: abs(losses[r] - got))
    assert math.isclose(got, min(losses), abs_tol=1e-5), (
        f"train_ccs_probe: the 6 restarts end with CCS losses "
        f"{[round(x, 5) for x in losses]}; the probe returned has loss {got:.5f} (closest to "
        f"restart {which + 1}), expected the lowest, {min(losses):.5f}; keep the restart with "
        f"the lowest final loss, not the last one"
    )


@graded("train_ccs_probe")
def test_train_ccs_probe_is_reproducible_and_leaves_inputs_alone(ccs, make_contrast):
    x_pos, x_neg, *_ = make_contrast(50, 4, seed=13)
    x_pos, x_neg = x_pos.double(), x_neg.double()
    before = (x_pos.clone(), x_neg.clone())
    probes = []
    for global_seed, seed in [(0, 1), (99, 1), (0, 2)]:
        torch.manual_seed(global_seed)
        probes.append(
            ccs.train_ccs_probe(
                x_pos, x_neg, restarts=2, steps=5, generator=torch.Generator().manual_seed(seed)
            )
        )
    (w0, b0), (w1, b1), (w2, _) = (probe_params(p) for p in probes)
    assert torch.equal(w0, w1) and torch.equal(b0, b1), (
        "train_ccs_probe: the same seeded generator gave different probes after torch.manual_seed "
        "changed; draw the initial weights with torch.randn(D, generator=generator)"
    )
    assert not torch.equal(w0, w2), (
        "train_ccs_probe: generators seeded 1 and 2 gave the same probe; draw each restart's "
        "initial weights from the generator"
    )
    assert w0.dtype == torch.float64 and tuple(probes[0].weight.shape) == (1, 4), (
        f"train_ccs_probe: for float64 activations of 4 features expected a float64 "
        f"nn.Linear(4, 1), got weight {tuple(probes[0].weight.shape)} {w0.dtype}"
    )
    assert torch.equal(x_pos, before[0]) and torch.equal(x_neg, before[1]), (
        "train_ccs_probe: modified the activations in place; normalise copies"
    )
    with pytest.raises(ValueError):
        ccs.train_ccs_probe(x_pos, x_neg[:-1], restarts=1, steps=1)
        pytest.fail("train_ccs_probe: 50 and 49 pairs must raise ValueError", pytrace=False)


# --------------------------------------------------------------------------- #
# probe_accuracy
# --------------------------------------------------------------------------- #


@graded("probe_accuracy")
def test_probe_accuracy_averages_both_sides_of_each_pair(ccs):
    # Probe: logit = first feature. Logits (yes side, no side) per statement:
    logits = torch.tensor([[1.0, -3.0], [2.0, 3.0], [-1.0, -2.0], [-2.0, 1.0], [3.0, 0.5]])
    x_pos = torch.stack([logits[:, 0], torch.zeros(5)], dim=1)
    x_neg = torch.stack([logits[:, 1], torch.zeros(5)], dim=1)
    # credences (p_pos + 1 - p_neg) / 2: .83, .47, .58, .10, .67 -> True, False, True, False, True
    labels = torch.tensor([True, False, True, False, True])
    probe = linear(torch.tensor([1.0, 0.0]))
    got = number("probe_accuracy", ccs.probe_accuracy(probe, x_pos, x_neg, labels, normalize=False))
    hint = {
        0.6: "that uses p_pos alone; average p_pos and 1 - p_neg",
        0.8: "that uses p_neg alone; average p_pos and 1 - p_neg",
    }.get(round(got, 6), "")
    assert math.isclose(got, 1.0), (
        f"probe_accuracy: the credence (p_pos + 1 - p_neg) / 2 predicts all 5 labels; expected "
        f"1.0, got {got}" + (f"; {hint}" if hint else "")
    )
    partly = torch.tensor([False, True, False, True, True])  # only the last one agrees
    got = number("probe_accuracy", ccs.probe_accuracy(probe, x_pos, x_neg, partly, normalize=False))
    assert math.isclose(got, 0.8), (
        f"probe_accuracy: predictions agree with 1 of 5 labels, so acc = 0.2 and the sign-free "
        f"accuracy is max(0.2, 0.8) = 0.8, got {got}; CCS cannot know which sign means true"
    )


@graded("probe_accuracy")
def test_probe_accuracy_normalises_each_side(ccs, contrast_data):
    x_pos, x_neg, labels, truth, _ = contrast_data
    probe = linear(truth * 3, 0.0)
    want = reference_accuracy(truth * 3, 0.0, x_pos, x_neg, labels)
    got = number("probe_accuracy", ccs.probe_accuracy(probe, x_pos, x_neg, labels))
    raw = reference_accuracy(truth * 3, 0.0, x_pos, x_neg, labels, normalize=False)
    assert math.isclose(got, want, abs_tol=1e-9), (
        f"probe_accuracy: the truth-direction probe on normalised pairs should score {want:.4f}, "
        f"got {got:.4f}"
        + (
            "; that equals the accuracy without normalisation: normalise each side on its "
            "own (subtract its mean, divide by its std, per feature)"
            if math.isclose(got, raw)
            else ""
        )
    )
    g = torch.Generator().manual_seed(5)
    for _ in range(5):
        w, b = torch.randn(10, generator=g), float(torch.randn(1, generator=g))
        want = reference_accuracy(w, b, x_pos, x_neg, labels)
        got = number("probe_accuracy", ccs.probe_accuracy(linear(w, b), x_pos, x_neg, labels))
        assert math.isclose(got, want, abs_tol=1e-9), (
            f"probe_accuracy: a random probe on the synthetic pairs should score {want:.4f}, "
            f"got {got:.4f}"
        )


@graded("probe_accuracy")
def test_probe_accuracy_returns_a_float_and_leaves_the_probe_alone(ccs, contrast_data):
    x_pos, x_neg, labels, truth, _ = contrast_data
    probe = linear(truth)
    probe.train()
    weight = probe.weight.detach().clone()
    before = (x_pos.clone(), x_neg.clone())
    got = ccs.probe_accuracy(probe, x_pos, x_neg, labels.long())
    assert type(got) is float, (
        f"probe_accuracy: returned {type(got).__name__}; return a Python float (.item())"
    )
    assert 0.5 <= got <= 1.0, f"probe_accuracy: {got} is not in [0.5, 1]"
    assert probe.training and probe.weight.grad is None and torch.equal(probe.weight, weight), (
        "probe_accuracy: changed the probe (its mode, weights or .grad); evaluate it under "
        "torch.no_grad() and leave it as found"
    )
    assert torch.equal(x_pos, before[0]) and torch.equal(x_neg, before[1]), (
        "probe_accuracy: modified the activations in place"
    )
    flipped = ccs.probe_accuracy(linear(-truth), x_pos, x_neg, labels)
    assert math.isclose(flipped, got), (
        f"probe_accuracy: flipping the probe's sign changed the accuracy ({got:.4f} -> "
        f"{flipped:.4f}); return max(acc, 1 - acc)"
    )


# --------------------------------------------------------------------------- #
# Documented defaults, ties, ends of ranges and bad arguments.
# --------------------------------------------------------------------------- #


@graded("train_ccs_probe")
def test_train_ccs_probe_first_restart_wins_a_tie(ccs):
    # all-zero activations, not normalised, no steps: every restart has logits 0 and loss 0.25
    x = torch.zeros(6, 3)
    probe = ccs.train_ccs_probe(
        x, x.clone(), restarts=3, steps=0, normalize=False,
        generator=torch.Generator().manual_seed(5),
    )  # fmt: skip
    w, b = probe_params(probe)
    g = torch.Generator().manual_seed(5)
    draws = [torch.randn(3, generator=g) / math.sqrt(3) for _ in range(3)]
    which = next((r for r in range(3) if torch.allclose(w, draws[r], atol=1e-6)), None)
    assert which == 0 and b.item() == 0.0, (
        "train_ccs_probe: with steps=0 the 3 restarts keep their initial weights "
        "torch.randn(D, generator=generator) / sqrt(D) and bias 0, and all tie at loss 0.25 on "
        "zero activations; the first restart wins a tie, but got "
        + (f"restart {which + 1}" if which is not None else "a weight none of them drew")
        + "; keep a restart only if its loss is strictly lower"
    )


@graded("train_ccs_probe")
def test_train_ccs_probe_defaults(ccs, make_contrast):
    x_pos, x_neg, *_ = make_contrast(12, 3, seed=21)
    g = torch.Generator().manual_seed(6)
    default_steps = ccs.train_ccs_probe(x_pos, x_neg, restarts=1, generator=g)
    explicit = ccs.train_ccs_probe(
        x_pos, x_neg, restarts=1, steps=300, lr=0.01, weight_decay=0.01, normalize=True,
        generator=torch.Generator().manual_seed(6),
    )  # fmt: skip
    (w, b), (w_ref, b_ref) = probe_params(default_steps), probe_params(explicit)
    assert torch.allclose(w, w_ref, atol=1e-6) and torch.allclose(b, b_ref, atol=1e-6), (
        "train_ccs_probe: the defaults should be steps=300, lr=0.01, weight_decay=0.01 and "
        "normalize=True; one restart with the defaults ended elsewhere than with them given"
    )
    g = torch.Generator().manual_seed(7)
    ccs.train_ccs_probe(x_pos, x_neg, steps=0, generator=g)
    ref = torch.Generator().manual_seed(7)
    for _ in range(10):
        torch.randn(3, generator=ref)
    assert torch.equal(g.get_state(), ref.get_state()), (
        "train_ccs_probe: the default is restarts=10, each drawing torch.randn(D) once from the "
        "generator and nothing else; the generator ended in another state"
    )


@graded("train_ccs_probe")
def test_train_ccs_probe_rejects_bad_shapes_and_restarts(ccs):
    x = torch.randn(20, 4, generator=torch.Generator().manual_seed(0))
    for a, b, kw, why in [
        (x, torch.zeros(20, 5), {}, "4 features on the yes side and 5 on the no side"),
        (x[:, 0], x[:, 1], {}, "1-D activations"),
        (x, x.clone(), {"restarts": 0}, "restarts=0"),
    ]:
        try:
            ccs.train_ccs_probe(a, b, steps=1, **{"restarts": 1, **kw})
        except ValueError:
            continue
        except Exception as err:  # noqa: BLE001 - any other error is the wrong one
            pytest.fail(
                f"train_ccs_probe: {why} must raise ValueError, got {type(err).__name__} "
                f"({str(err)[:60]}); check the arguments first",
                pytrace=False,
            )
        pytest.fail(f"train_ccs_probe: {why} must raise ValueError", pytrace=False)


@graded("probe_accuracy")
def test_probe_accuracy_predicts_true_only_above_one_half(ccs):
    # probe logit = first feature; statement 0 has the same logit on both sides: credence 0.5
    x_pos = torch.tensor([[0.7, 0.0], [2.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])
    x_neg = torch.tensor([[0.7, 0.0], [-2.0, 0.0], [-1.0, 0.0], [1.0, 0.0]])
    labels = torch.tensor([True, True, True, False])
    probe = linear(torch.tensor([1.0, 0.0]))
    got = number("probe_accuracy", ccs.probe_accuracy(probe, x_pos, x_neg, labels, normalize=False))
    assert math.isclose(got, 0.75), (
        f"probe_accuracy: the first statement has credence exactly 0.5, which predicts False "
        f"(True only when c > 0.5), so 3 of 4 predictions are right: expected 0.75, got {got}"
        + ("; c >= 0.5 predicts True there" if math.isclose(got, 1.0) else "")
    )
