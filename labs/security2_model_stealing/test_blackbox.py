"""Specs for blackbox.py: the victim behind its API, its budget, its output
modes and the output-side defences.

Run them with `make test-security2` (add IMPL=solution to see the reference pass).
Every failure message starts with the graded function it is about.
"""

import pytest
import torch
from torch import nn

from mlsafety.grading import graded

GRADED = {"victim": "core", "query": "core", "round_outputs": "core", "label_only": "core"}
pytestmark = pytest.mark.timeout(20)

SHAPE = (1, 28, 28)


class Recorder(nn.Module):
    """Wraps a model: counts forward calls and records the mode of each."""

    def __init__(self, model):
        super().__init__()
        self.model, self.calls, self.modes = model, 0, []

    def forward(self, x):
        self.calls += 1
        self.modes.append(self.training)
        return self.model(x)


def images(n, seed=0):
    return torch.rand(n, *SHAPE, generator=torch.Generator().manual_seed(seed))


def probabilities(model, x):
    with torch.no_grad():
        return model(x).float().softmax(1)


# --------------------------------------------------------------------------- #
# victim
# --------------------------------------------------------------------------- #


@graded("victim")
def test_victim_starts_unused_and_queries_nothing(blackbox, victim_model):
    spy = Recorder(victim_model)
    box = blackbox.victim(spy, 50, SHAPE, "top_k", k=2, decimals=3)
    assert spy.calls == 0, "victim: building the black box must not run the model"
    got = (box.budget, box.used, box.mode, box.k, box.decimals, tuple(box.input_shape))
    assert got == (50, 0, "top_k", 2, 3, SHAPE), (
        f"victim: expected budget=50, used=0, mode='top_k', k=2, decimals=3, input_shape={SHAPE}; "
        f"got {got}"
    )
    assert box.remaining == 50, f"victim: remaining should be the whole budget, got {box.remaining}"
    default = blackbox.victim(victim_model, 5, SHAPE)
    assert (default.mode, default.k, default.decimals) == ("probs", 3, 1), (
        f"victim: defaults should be mode='probs', k=3, decimals=1, got "
        f"{(default.mode, default.k, default.decimals)}"
    )


@pytest.mark.parametrize("budget", [2.0, "10", True, None], ids=["float", "str", "bool", "None"])
@graded("victim")
def test_victim_rejects_a_budget_that_is_not_an_int(blackbox, victim_model, budget):
    with pytest.raises(TypeError):
        blackbox.victim(victim_model, budget, SHAPE)


@pytest.mark.parametrize("budget", [0, -5])
@graded("victim")
def test_victim_rejects_a_budget_that_is_not_positive(blackbox, victim_model, budget):
    with pytest.raises(ValueError):
        blackbox.victim(victim_model, budget, SHAPE)


@graded("victim")
def test_victim_rejects_an_unknown_output_mode(blackbox, victim_model):
    with pytest.raises(ValueError, match="mode|logits"):
        blackbox.victim(victim_model, 10, SHAPE, "logits")


@graded("victim")
def test_victim_rejects_k_below_one(blackbox, victim_model):
    with pytest.raises(ValueError):
        blackbox.victim(victim_model, 10, SHAPE, "top_k", k=0)


@graded("victim")
def test_victim_rejects_negative_decimals(blackbox, victim_model):
    with pytest.raises(ValueError):
        blackbox.victim(victim_model, 10, SHAPE, "rounded", decimals=-1)


# --------------------------------------------------------------------------- #
# query
# --------------------------------------------------------------------------- #


@graded("query")
def test_query_counts_every_image_not_every_call(blackbox, victim_model):
    box = blackbox.victim(victim_model, 100, SHAPE)
    box(images(60))
    box(images(40, 1))
    assert box.used == 100, (
        f"query: after batches of 60 and 40 images, used should be 100, got {box.used}; "
        f"every image is one query"
    )
    with pytest.raises(blackbox.BudgetExceeded):
        box(images(1, 2))
    assert box.used == 100, f"query: a refused query was counted (used = {box.used})"


@graded("query")
def test_query_refuses_a_batch_past_the_budget_whole(blackbox, victim_model):
    spy = Recorder(victim_model)
    box = blackbox.victim(spy, 10, SHAPE)
    box(images(7))
    calls = spy.calls
    with pytest.raises(blackbox.BudgetExceeded):
        box(images(5, 1))
    assert box.used == 7, (
        f"query: a batch of 5 with 3 left must be refused whole and not counted (used = {box.used})"
    )
    assert spy.calls == calls, "query: ran the model for a batch it refused"
    out = box(images(3, 2))
    assert len(out) == 3 and box.used == 10 and box.remaining == 0, (
        f"query: the last 3 queries of the budget should be answered (used = {box.used})"
    )


@pytest.mark.parametrize("mode", ["probs", "top_k", "rounded", "label"])
@graded("query")
def test_query_answers_in_its_output_mode(blackbox, victim_model, held_out, mode):
    x = held_out[:40]
    p = probabilities(victim_model, x)
    box = blackbox.victim(victim_model, 40, SHAPE, mode, k=2, decimals=1)
    out = box(x)
    if mode == "label":
        expected = p.argmax(1)
        assert out.dtype == torch.int64 and out.shape == (40,), (
            f"query: label mode should answer int64 labels (40,), got {out.dtype} {tuple(out.shape)}"
        )
        assert torch.equal(out, expected), "query: label mode must answer the argmax label"
        return
    if mode == "probs":
        expected = p
    elif mode == "top_k":
        expected = torch.zeros_like(p)
        for i, row in enumerate(p):
            top = row.topk(2).indices
            expected[i, top] = row[top]
    else:
        expected = torch.round(p, decimals=1)
    assert out.dtype == torch.float32 and out.shape == p.shape, (
        f"query: {mode} mode should answer float32 {tuple(p.shape)}, got {out.dtype} "
        f"{tuple(out.shape)}"
    )
    err = (out - expected).abs().max().item()
    hint = {
        "probs": "softmax of the model's logits",
        "top_k": "the k largest probabilities of each row, every other entry 0",
        "rounded": "the probabilities rounded to `decimals` places (round_outputs)",
    }[mode]
    assert err < 1e-5, f"query: {mode} answers differ from {hint} (max error {err:.4f})"


@graded("query")
def test_query_answers_float32_for_a_double_model(blackbox, victim_model):
    model = victim_model.double()
    out = blackbox.victim(model, 4, SHAPE)(images(4).double())
    assert out.dtype == torch.float32, f"query: probabilities must be float32, got {out.dtype}"
    assert torch.allclose(out.sum(1), torch.ones(4), atol=1e-5), "query: rows must sum to 1"


@pytest.mark.parametrize("bad", ["uint8", "int64", "list"], ids=["uint8", "int64", "list"])
@graded("query")
def test_query_rejects_queries_that_are_not_float_tensors(blackbox, victim_model, bad):
    box = blackbox.victim(victim_model, 10, SHAPE)
    x = images(2)
    x = {"uint8": (x * 255).to(torch.uint8), "int64": x.long(), "list": x.tolist()}[bad]
    with pytest.raises(TypeError):
        box(x)
    assert box.used == 0, f"query: a rejected query was counted (used = {box.used})"


@pytest.mark.parametrize(
    "shape",
    [(2, 28, 28), (2, 3, 28, 28), (2, 1, 14, 14), (0, 1, 28, 28)],
    ids=["no-channel", "three-channels", "too-small", "empty"],
)
@graded("query")
def test_query_rejects_queries_of_the_wrong_shape(blackbox, victim_model, shape):
    box = blackbox.victim(victim_model, 10, SHAPE)
    with pytest.raises(ValueError):
        box(torch.rand(shape))
    assert box.used == 0, f"query: a rejected query was counted (used = {box.used})"


@graded("query")
def test_query_runs_the_model_in_eval_mode_and_leaves_it_as_found(blackbox, victim_model):
    spy = Recorder(victim_model).train()
    params = dict(spy.named_parameters())
    for i, p in enumerate(params.values()):
        p.grad = torch.full_like(p, float(i + 1))
    weights = {k: p.detach().clone() for k, p in params.items()}
    x = images(8)
    before = x.clone()
    out = blackbox.victim(spy, 8, SHAPE)(x)
    assert spy.modes and not any(spy.modes), "query: the model must answer in eval mode"
    assert spy.training, "query: put the model back in the mode it was in (train)"
    assert not out.requires_grad, "query: answers must be detached (run under torch.no_grad())"
    assert torch.equal(x, before), "query: modified the queries in place"
    for i, (k, p) in enumerate(params.items()):
        assert torch.equal(p.detach(), weights[k]), f"query: changed the model's weights ({k})"
        assert torch.all(p.grad == i + 1), f"query: changed {k}.grad"


@graded("query")
def test_query_answers_on_the_model_device(blackbox, victim_model):
    from mlsafety.hardware import pick_device

    device = pick_device()
    model = victim_model.to(device)
    for mode in ("probs", "label"):
        out = blackbox.victim(model, 4, SHAPE, mode)(images(4).to(device))
        assert out.device.type == device.type, f"query: answers on {out.device}, model on {device}"


# --------------------------------------------------------------------------- #
# round_outputs and label_only
# --------------------------------------------------------------------------- #


@graded("round_outputs")
def test_round_outputs_on_hand_made_cases(blackbox):
    p = torch.tensor([[0.123, 0.877], [0.46, 0.54], [0.04, 0.96]])
    one = blackbox.round_outputs(p, 1)
    two = blackbox.round_outputs(p, 2)
    zero = blackbox.round_outputs(p, 0)
    cases = [
        (one, [[0.1, 0.9], [0.5, 0.5], [0.0, 1.0]], 1),
        (two, [[0.12, 0.88], [0.46, 0.54], [0.04, 0.96]], 2),
        (zero, [[0.0, 1.0], [0.0, 1.0], [0.0, 1.0]], 0),
    ]
    for got, expected, d in cases:
        assert torch.allclose(got, torch.tensor(expected), atol=1e-6), (
            f"round_outputs: [[0.123, 0.877], [0.46, 0.54], [0.04, 0.96]] with decimals={d} "
            f"should be {expected}, got {got.numpy().round(4).tolist()}; round (not floor) to "
            f"`decimals` places"
        )


@graded("round_outputs")
def test_round_outputs_matches_torch_round_and_leaves_input(blackbox, gen):
    p = torch.rand(50, 10, generator=gen(0)).softmax(1)
    before = p.clone()
    out = blackbox.round_outputs(p)
    assert torch.equal(p, before), "round_outputs: modified probs in place; return a new tensor"
    assert out.shape == p.shape and out.dtype == p.dtype, "round_outputs: shape/dtype changed"
    expected = torch.round(p, decimals=1)
    assert torch.allclose(out, expected, atol=1e-6), (
        f"round_outputs: the default is one decimal place (max error "
        f"{(out - expected).abs().max().item():.4f})"
    )


@graded("round_outputs")
def test_round_outputs_rejects_negative_decimals(blackbox):
    with pytest.raises(ValueError):
        blackbox.round_outputs(torch.rand(2, 3), -1)


@graded("label_only")
def test_label_only_answers_the_argmax_as_int64(blackbox, gen):
    p = torch.rand(30, 10, generator=gen(1)).softmax(1)
    before = p.clone()
    out = blackbox.label_only(p)
    assert isinstance(out, torch.Tensor) and out.shape == (30,), (
        f"label_only: expected a tensor of shape (30,), got {getattr(out, 'shape', out)}"
    )
    assert out.dtype == torch.int64, f"label_only: labels must be int64, got {out.dtype}"
    assert torch.equal(out, p.argmax(1)), "label_only: each label is the row's largest entry"
    assert torch.equal(p, before), "label_only: modified probs in place"


@graded("label_only")
def test_label_only_stays_on_the_device(blackbox):
    from mlsafety.hardware import pick_device

    device = pick_device()
    out = blackbox.label_only(torch.eye(4, device=device))
    assert out.device.type == device.type and out.tolist() == [0, 1, 2, 3], (
        f"label_only: eye(4) on {device} should give [0, 1, 2, 3] there, got {out} on {out.device}"
    )


@graded("label_only")
def test_label_only_rejects_a_tensor_that_is_not_2d(blackbox):
    with pytest.raises(ValueError):
        blackbox.label_only(torch.rand(10))
