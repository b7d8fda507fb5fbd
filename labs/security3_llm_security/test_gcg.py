"""Specs for gcg.py: the target loss, the token gradients, the candidate swaps,
one GCG step and the whole attack.

Run them with `make test-security3` (add IMPL=solution to see the reference pass).
Every failure message starts with the graded function it is about. They run on
the tiny random model (same tokenizer as the real one) or on a hand-made model
whose loss is known exactly, so they are fast.
"""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mlsafety.grading import graded

GRADED = {
    "target_loss": "core",
    "token_gradients": "core",
    "gcg_candidates": "core",
    "gcg_step": "core",
    "gcg_attack": "core",
}
pytestmark = pytest.mark.timeout(60)

SYSTEM = "You are a bot."
USER = "Hi"
TARGET = " Sure"


def layout(model, suffix_len=4, target=TARGET):
    """A short prompt of the tiny model: (ids, suffix slice, target slice)."""
    return model.layout(SYSTEM, USER, model.encode("!").repeat(suffix_len), model.encode(target))


def loss_by_hand(logits, ids, target):
    """Mean cross-entropy of logits[t - 1] against ids[t] over t in target, per row."""
    ids = ids.expand(logits.shape[0], -1) if ids.dim() == 1 else ids
    rows = []
    for b in range(logits.shape[0]):
        terms = [
            F.cross_entropy(logits[b, t - 1].double(), ids[b, t])
            for t in range(target.start, target.stop)
        ]
        rows.append(torch.stack(terms).mean())
    return torch.stack(rows)


@torch.no_grad()
def prompt_losses(model, batch, target):
    """The target loss of each prompt of a batch (B, T) under the tiny model, with the
    logits computed only where the target is predicted (cheap)."""
    hidden = model.lm.model(input_ids=batch).last_hidden_state
    logits = model.lm.lm_head(hidden[:, target.start - 1 : target.stop - 1]).double()
    return F.cross_entropy(logits.transpose(1, 2), batch[:, target], reduction="none").mean(1)


def prompt_loss(model, ids, target):
    return float(prompt_losses(model, ids[None], target)[0])


def snapshot(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def assert_untouched(name, model, before):
    for key, p in model.named_parameters():
        assert p.grad is None, f"{name}: the model's parameter {key} was given a .grad"
        assert torch.equal(p, before[key]), f"{name}: the model's parameter {key} changed"


class CountModel(nn.Module):
    """A hand-made language model over 16 tokens: the logit of token GOAL at
    position t is the number of tokens GOOD among positions 0..t, every other
    logit is 0. The target loss of the prompt below therefore falls exactly as
    more suffix tokens become GOOD."""

    V, GOOD, GOAL = 16, 3, 5

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(self.V, self.V)
        readout = torch.zeros(self.V, self.V)
        readout[self.GOOD, self.GOAL] = 1.0
        with torch.no_grad():
            self.emb.weight.copy_(torch.eye(self.V))
        self.register_buffer("readout", readout)
        for p in self.parameters():
            p.requires_grad_(False)

    @property
    def embedding(self):
        return self.emb

    @property
    def device(self):
        return self.emb.weight.device

    def forward(self, input_ids=None, inputs_embeds=None, attention_mask=None):
        e = self.emb(input_ids) if inputs_embeds is None else inputs_embeds
        return e.cumsum(dim=1) @ self.readout


COUNT_SUFFIX = slice(2, 6)
COUNT_TARGET = slice(7, 8)


def count_prompt(suffix):
    """[0, 1, suffix (4 tokens), 2, GOAL]; only the suffix may hold GOOD tokens."""
    return torch.tensor([0, 1, *suffix, 2, CountModel.GOAL])


def count_loss(goods):
    """The exact target loss of CountModel with `goods` GOOD tokens in the prompt."""
    return float(-torch.log_softmax(torch.tensor([float(goods)] + [0.0] * 15), 0)[0])


@pytest.fixture(scope="module")
def tiny_lm64(tiny_model):
    """A float64 copy of the tiny model's network, for finite differences."""
    return copy.deepcopy(tiny_model.lm).double()


# --------------------------------------------------------------------------- #
# target_loss
# --------------------------------------------------------------------------- #


def random_logits(b=3, t=7, v=11, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, v, generator=g) * 2, torch.randint(v, (b, t), generator=g)


@graded("target_loss")
def test_target_loss_scores_the_target_tokens_one_position_later(gcg):
    logits, ids = random_logits()
    target = slice(3, 6)
    got = gcg.target_loss(logits, ids, target)
    expected = loss_by_hand(logits, ids, target)
    assert isinstance(got, torch.Tensor) and got.shape == (3,), (
        f"target_loss: expected a tensor of shape (3,) for 3 sequences, got {got!r}"
    )
    assert got.is_floating_point(), f"target_loss: expected a float tensor, got {got.dtype}"
    assert torch.allclose(got.double(), expected, atol=1e-5), (
        f"target_loss: expected the mean over t in 3:6 of cross_entropy(logits[b, t - 1], "
        f"ids[b, t]) = {expected.tolist()}; got {got.tolist()} (is the shift by one right, and "
        f"is only the target scored?)"
    )


@graded("target_loss")
def test_target_loss_is_differentiable_and_reads_only_the_target(gcg):
    logits, ids = random_logits(seed=1)
    logits.requires_grad_(True)
    before_logits, before_ids = logits.detach().clone(), ids.clone()
    target = slice(2, 5)
    gcg.target_loss(logits, ids, target).sum().backward()
    assert logits.grad is not None, "target_loss: the loss is not differentiable w.r.t. the logits"
    used = logits.grad.abs().sum(dim=(0, 2)) > 0
    expected = torch.zeros(7, dtype=torch.bool)
    expected[1:4] = True
    assert torch.equal(used, expected), (
        f"target_loss: with target 2:5 the loss must depend on the logits at positions 1, 2, 3 "
        f"only (logits at t - 1 predict token t); it depends on positions "
        f"{used.nonzero().flatten().tolist()}"
    )
    changed = ids.clone()
    changed[:, [0, 1, 5, 6]] = (changed[:, [0, 1, 5, 6]] + 1) % 11
    with torch.no_grad():
        same = torch.allclose(
            gcg.target_loss(logits, changed, target), gcg.target_loss(logits, ids, target)
        )
    assert same, "target_loss: changing tokens outside the target changed the loss"
    assert torch.equal(logits.detach(), before_logits) and torch.equal(ids, before_ids), (
        "target_loss: modified its inputs"
    )


@graded("target_loss")
def test_target_loss_shares_one_dimensional_ids_across_the_batch(gcg):
    logits, ids = random_logits(seed=2)
    row = ids[1]
    for target in (slice(1, 7), slice(6, 7)):
        got = gcg.target_loss(logits, row, target)
        expected = loss_by_hand(logits, row.expand(3, -1), target)
        assert got.shape == (3,), (
            f"target_loss: 1-D ids with 3 sequences of logits should give shape (3,), got "
            f"{tuple(got.shape)}"
        )
        assert torch.allclose(got.double(), expected, atol=1e-5), (
            f"target_loss: 1-D ids are shared by every sequence; for target "
            f"{target.start}:{target.stop} expected {expected.tolist()}, got {got.tolist()}"
        )


@pytest.mark.parametrize(
    "target",
    [slice(0, 3), slice(4, 4), slice(5, 3), slice(5, 8)],
    ids=["starts-at-0", "empty", "reversed", "past-the-end"],
)
@graded("target_loss")
def test_target_loss_rejects_bad_target_slices(gcg, target):
    logits, ids = random_logits()
    with pytest.raises(ValueError):
        gcg.target_loss(logits, ids, target)


# --------------------------------------------------------------------------- #
# token_gradients
# --------------------------------------------------------------------------- #


@graded("token_gradients")
def test_token_gradients_match_a_finite_difference(gcg, tiny_model, tiny_lm64):
    ids, suffix, target = layout(tiny_model)
    grad = gcg.token_gradients(tiny_model, ids, suffix, target)
    assert grad.shape == (4, tiny_model.embedding.num_embeddings), (
        f"token_gradients: expected shape (L, V) = (4, {tiny_model.embedding.num_embeddings}) "
        f"(the suffix only), got {tuple(grad.shape)}"
    )
    weights = tiny_lm64.get_input_embeddings().weight
    base = weights[ids].clone()

    def loss_at(embeds):
        hidden = tiny_lm64.model(inputs_embeds=embeds[None]).last_hidden_state[0]
        logits = tiny_lm64.lm_head(hidden[target.start - 1 : target.stop - 1])
        return float(F.cross_entropy(logits, ids[target]))

    eps, g = 1e-4, torch.Generator().manual_seed(0)
    for i in range(4):
        cur = int(ids[suffix.start + i])
        row = grad[i].double()
        for j in (int(row.argmin()), int(torch.randint(len(row), (), generator=g))):
            step = eps * (weights[j] - weights[cur])
            with torch.no_grad():
                plus, minus = base.clone(), base.clone()
                plus[suffix.start + i] += step
                minus[suffix.start + i] -= step
                numeric = (loss_at(plus) - loss_at(minus)) / (2 * eps)
            analytic = float(row[j] - row[cur])
            assert abs(analytic - numeric) <= 1e-3 + 1e-2 * abs(numeric), (
                f"token_gradients: grad[{i}, {j}] - grad[{i}, {cur}] = {analytic:.6f} should be "
                f"the derivative of the target loss as suffix position {i} moves from token "
                f"{cur} towards token {j} (finite difference: {numeric:.6f})"
            )


@graded("token_gradients")
def test_token_gradients_are_exact_on_a_hand_made_model(gcg):
    model = CountModel()
    ids = count_prompt([7, 8, 9, 10])
    grad = gcg.token_gradients(model, ids, COUNT_SUFFIX, COUNT_TARGET)
    # loss = -log softmax(c, 0, ..., 0)[0] with c the number of GOOD tokens; dc/d onehot[i, GOOD] = 1
    expected = torch.zeros(4, CountModel.V)
    expected[:, CountModel.GOOD] = -15 / 16
    assert grad.shape == (4, CountModel.V), (
        f"token_gradients: expected the gradient w.r.t. the one-hot suffix, shape (4, 16), got "
        f"{tuple(grad.shape)}"
    )
    assert torch.allclose(grad, expected, atol=1e-6), (
        f"token_gradients: on a model whose loss is -log softmax(c, 0, ..., 0)[0] (c = number "
        f"of GOOD tokens) every suffix position should have gradient -15/16 on GOOD and 0 "
        f"elsewhere (not normalized); got {grad}"
    )


@graded("token_gradients")
def test_token_gradients_leave_the_model_and_the_input_alone(gcg, tiny_model):
    ids, suffix, target = layout(tiny_model, suffix_len=3)
    before, ids_before = snapshot(tiny_model), ids.clone()
    grad = gcg.token_gradients(tiny_model, ids, suffix, target)
    assert grad.dtype == torch.float32, f"token_gradients: expected float32, got {grad.dtype}"
    assert grad.device == tiny_model.embedding.weight.device, (
        "token_gradients: the gradient must be on the model's device"
    )
    assert not grad.requires_grad, "token_gradients: return the gradient, detached"
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0, (
        "token_gradients: the gradient should be finite and not all zero"
    )
    assert torch.equal(ids, ids_before), "token_gradients: modified input_ids"
    assert_untouched("token_gradients", tiny_model, before)


@pytest.mark.parametrize("which", ["empty", "past-the-end"])
@graded("token_gradients")
def test_token_gradients_reject_a_suffix_outside_the_prompt(gcg, tiny_model, which):
    ids, suffix, target = layout(tiny_model, suffix_len=3)
    t = len(ids)
    bad = slice(suffix.start, suffix.start) if which == "empty" else slice(t - 2, t + 2)
    with pytest.raises(ValueError):
        gcg.token_gradients(tiny_model, ids, bad, target)


# --------------------------------------------------------------------------- #
# gcg_candidates
# --------------------------------------------------------------------------- #

L, V = 5, 40


def candidate_setup(seed=0):
    """A suffix and a gradient in which the current token always looks best."""
    g = torch.Generator().manual_seed(seed)
    suffix_ids = torch.randint(V, (L,), generator=g)
    grad = torch.randn(L, V, generator=g)
    grad[torch.arange(L), suffix_ids] = -10.0
    return suffix_ids, grad


def top_k_others(grad, suffix_ids, k, allowed=None):
    """Per position, the set of the k allowed tokens other than the current one
    with the smallest gradient (by a plain sort)."""
    sets = []
    for i in range(len(suffix_ids)):
        order = [
            int(v)
            for v in grad[i].argsort()
            if int(v) != int(suffix_ids[i]) and (allowed is None or bool(allowed[v]))
        ]
        sets.append(set(order[:k]))
    return sets


def check_single_swaps(name, cands, suffix_ids, n, sets, allowed=None):
    assert isinstance(cands, torch.Tensor) and cands.shape == (n, len(suffix_ids)), (
        f"{name}: expected shape (n, L) = {(n, len(suffix_ids))}, got "
        f"{getattr(cands, 'shape', cands)}"
    )
    assert cands.dtype == torch.long, f"{name}: expected long token ids, got {cands.dtype}"
    for j, row in enumerate(cands):
        diff = (row != suffix_ids).nonzero().flatten().tolist()
        assert len(diff) == 1, (
            f"{name}: candidate {j} should differ from the current suffix at exactly one "
            f"position (never the current token again), differs at {diff}"
        )
        i, token = diff[0], int(row[diff[0]])
        if allowed is not None:
            assert bool(allowed[token]), (
                f"{name}: candidate {j} puts token {token} at position {i}, which allowed forbids"
            )
        assert token in sets[i], (
            f"{name}: candidate {j} puts token {token} at position {i}; it should be one of the "
            f"k tokens with the smallest gradient there (other than the current one): "
            f"{sorted(sets[i])}"
        )


@graded("gcg_candidates")
def test_gcg_candidates_swap_one_position_to_a_top_k_token(gcg, generator):
    suffix_ids, grad = candidate_setup()
    before = (suffix_ids.clone(), grad.clone())
    cands = gcg.gcg_candidates(suffix_ids, grad, 4, 64, generator)
    check_single_swaps("gcg_candidates", cands, suffix_ids, 64, top_k_others(grad, suffix_ids, 4))
    assert torch.equal(suffix_ids, before[0]) and torch.equal(grad, before[1]), (
        "gcg_candidates: modified suffix_ids or grad"
    )


@graded("gcg_candidates")
def test_gcg_candidates_respect_the_allowed_mask(gcg, generator):
    suffix_ids, grad = candidate_setup(1)
    allowed = torch.arange(V) % 2 == 0
    grad[:, ~allowed] -= 20.0  # the forbidden tokens look best
    allowed_before = allowed.clone()
    cands = gcg.gcg_candidates(suffix_ids, grad, 3, 64, generator, allowed)
    sets = top_k_others(grad, suffix_ids, 3, allowed)
    check_single_swaps("gcg_candidates", cands, suffix_ids, 64, sets, allowed)
    assert torch.equal(allowed, allowed_before), "gcg_candidates: modified allowed"


@graded("gcg_candidates")
def test_gcg_candidates_draw_positions_then_choices_from_the_generator(gcg):
    suffix_ids, grad = candidate_setup(2)
    n = 32
    first = gcg.gcg_candidates(suffix_ids, grad, 4, n, torch.Generator().manual_seed(7))
    again = gcg.gcg_candidates(suffix_ids, grad, 4, n, torch.Generator().manual_seed(7))
    assert torch.equal(first, again), (
        "gcg_candidates: the same generator state must give the same candidates"
    )
    other = gcg.gcg_candidates(suffix_ids, grad, 4, n, torch.Generator().manual_seed(8))
    assert not torch.equal(first, other), (
        "gcg_candidates: another generator state gave the very same 32 candidates; draw them "
        "from the generator"
    )
    positions = torch.randint(L, (n,), generator=torch.Generator().manual_seed(7))
    got = (first != suffix_ids).int().argmax(dim=1)
    assert torch.equal(got, positions), (
        f"gcg_candidates: the swapped positions should be torch.randint(L, (n,), "
        f"generator=generator), drawn first: expected {positions.tolist()}, got {got.tolist()}"
    )
    # k = 1: every candidate takes the single best other token at its position
    best = top_k_others(grad, suffix_ids, 1)
    one = gcg.gcg_candidates(suffix_ids, grad, 1, n, torch.Generator().manual_seed(7))
    expected = suffix_ids.repeat(n, 1)
    expected[torch.arange(n), positions] = torch.tensor([min(best[int(i)]) for i in positions])
    assert torch.equal(one, expected), (
        "gcg_candidates: with k = 1 each candidate must swap the drawn position to the token "
        "with the smallest gradient there (never the current token)"
    )


@pytest.mark.parametrize("k, n", [(0, 8), (4, 0), (-1, 8)], ids=["k=0", "n=0", "k=-1"])
@graded("gcg_candidates")
def test_gcg_candidates_reject_k_or_n_below_one(gcg, generator, k, n):
    suffix_ids, grad = candidate_setup()
    with pytest.raises(ValueError):
        gcg.gcg_candidates(suffix_ids, grad, k, n, generator)


@graded("gcg_candidates")
def test_gcg_candidates_reject_k_above_the_usable_tokens(gcg):
    suffix_ids, grad = candidate_setup(3)
    allowed = torch.zeros(V, dtype=torch.bool)
    others = [v for v in range(V) if v not in suffix_ids.tolist()][:2]
    allowed[[int(suffix_ids[0]), *others]] = True  # position 0 has only 2 usable tokens
    with pytest.raises(ValueError):
        gcg.gcg_candidates(suffix_ids, grad, 3, 8, torch.Generator().manual_seed(0), allowed)
    cands = gcg.gcg_candidates(suffix_ids, grad, 2, 8, torch.Generator().manual_seed(0), allowed)
    check_single_swaps(
        "gcg_candidates", cands, suffix_ids, 8, top_k_others(grad, suffix_ids, 2, allowed), allowed
    )
    with pytest.raises(ValueError):
        gcg.gcg_candidates(suffix_ids, grad, V, 8, torch.Generator().manual_seed(0))
    cands = gcg.gcg_candidates(suffix_ids, grad, V - 1, 8, torch.Generator().manual_seed(0))
    assert cands.shape == (8, L), (
        "gcg_candidates: k = V - 1 without a mask leaves exactly k usable tokens and must work"
    )


# --------------------------------------------------------------------------- #
# gcg_step
# --------------------------------------------------------------------------- #


@graded("gcg_step")
def test_gcg_step_takes_the_best_swap_on_a_hand_made_model(gcg, generator):
    model = CountModel()
    ids = count_prompt([7, 8, 9, 10])
    before = ids.clone()
    new, loss = gcg.gcg_step(model, ids, COUNT_SUFFIX, COUNT_TARGET, 1, 4, generator)
    assert isinstance(loss, float), f"gcg_step: the loss must be a Python float, got {type(loss)}"
    assert new.shape == ids.shape and new.dtype == ids.dtype, (
        f"gcg_step: expected a prompt like input_ids {tuple(ids.shape)}, got {tuple(new.shape)}"
    )
    goods = int((new == CountModel.GOOD).sum())
    assert goods == 1 and bool(new[COUNT_SUFFIX].eq(CountModel.GOOD).any()), (
        f"gcg_step: every candidate swaps one suffix token to the best one; the result should "
        f"hold exactly one, in the suffix, got {new.tolist()}"
    )
    outside = torch.cat([new[:2], new[6:]])
    assert torch.equal(outside, torch.cat([before[:2], before[6:]])), (
        "gcg_step: changed the prompt outside the suffix"
    )
    assert loss == pytest.approx(count_loss(1), abs=1e-5), (
        f"gcg_step: the loss of the new prompt is {count_loss(1):.6f}, got {loss}"
    )
    assert torch.equal(ids, before), "gcg_step: modified input_ids"
    assert new.data_ptr() != ids.data_ptr(), "gcg_step: return a new tensor, not input_ids"


@graded("gcg_step")
def test_gcg_step_keeps_the_prompt_when_no_candidate_is_better(gcg, generator):
    model = CountModel()
    good = CountModel.GOOD
    ids = count_prompt([good] * 4)
    new, loss = gcg.gcg_step(model, ids, COUNT_SUFFIX, COUNT_TARGET, 3, 8, generator)
    assert torch.equal(new, ids), (
        f"gcg_step: every candidate is worse than the current prompt, which must be kept; got "
        f"{new.tolist()} instead of {ids.tolist()}"
    )
    assert loss == pytest.approx(count_loss(4), abs=1e-5), (
        f"gcg_step: the loss of the kept prompt is {count_loss(4):.6f}, got {loss}"
    )


@graded("gcg_step")
def test_gcg_step_returns_the_best_candidate_on_tiny_model(gcg, tiny_model):
    ids, suffix, target = layout(tiny_model)
    allowed = tiny_model.allowed_tokens()
    before = ids.clone()
    new, loss = gcg.gcg_step(
        tiny_model, ids, suffix, target, 8, 16, torch.Generator().manual_seed(3), allowed
    )
    grad = gcg.token_gradients(tiny_model, ids, suffix, target)
    cands = gcg.gcg_candidates(ids[suffix], grad, 8, 16, torch.Generator().manual_seed(3), allowed)
    current = prompt_loss(tiny_model, ids, target)
    batch = ids.repeat(len(cands), 1)
    batch[:, suffix] = cands
    scores = prompt_losses(tiny_model, batch, target).tolist()
    best = min([current, *scores])
    assert loss == pytest.approx(best, abs=1e-4), (
        f"gcg_step: the best of the current prompt ({current:.5f}) and the 16 candidates "
        f"gcg_candidates makes with the same k, generator and allowed has loss {best:.5f}; "
        f"got {loss}"
    )
    assert loss <= current + 1e-6, "gcg_step: a step must never increase the loss"
    assert prompt_loss(tiny_model, new, target) == pytest.approx(loss, abs=1e-4), (
        "gcg_step: the loss returned is not the target loss of the prompt returned"
    )
    assert torch.equal(new[: suffix.start], ids[: suffix.start]) and torch.equal(
        new[suffix.stop :], ids[suffix.stop :]
    ), "gcg_step: changed the prompt outside the suffix"
    assert torch.equal(ids, before), "gcg_step: modified input_ids"


@graded("gcg_step")
def test_gcg_step_does_not_depend_on_the_batch_size(gcg, tiny_model):
    ids, suffix, target = layout(tiny_model, suffix_len=3)
    results = [
        gcg.gcg_step(
            tiny_model, ids, suffix, target, 4, 6, torch.Generator().manual_seed(1), None, size
        )
        for size in (1, 4, 64)
    ]
    for (new, loss), size in zip(results[1:], (4, 64), strict=True):
        assert torch.equal(new, results[0][0]) and loss == pytest.approx(results[0][1], abs=1e-4), (
            f"gcg_step: batch_size only changes how candidates are scored, not the result; "
            f"batch_size=1 and batch_size={size} disagree"
        )


@pytest.mark.parametrize("batch_size", [0, -2])
@graded("gcg_step")
def test_gcg_step_rejects_a_batch_size_below_one(gcg, generator, batch_size):
    with pytest.raises(ValueError):
        gcg.gcg_step(
            CountModel(),
            count_prompt([7, 8, 9, 10]),
            COUNT_SUFFIX,
            COUNT_TARGET,
            1,
            4,
            generator,
            None,
            batch_size,
        )


@graded("gcg_step")
def test_gcg_step_rejects_what_gcg_candidates_rejects(gcg, generator):
    allowed = torch.zeros(CountModel.V, dtype=torch.bool)
    allowed[CountModel.GOOD] = True
    args = (CountModel(), count_prompt([7, 8, 9, 10]), COUNT_SUFFIX, COUNT_TARGET)
    with pytest.raises(ValueError):
        gcg.gcg_step(*args, 2, 4, generator, allowed)
    with pytest.raises(ValueError):
        gcg.gcg_step(*args, 0, 4, generator)


# --------------------------------------------------------------------------- #
# gcg_attack
# --------------------------------------------------------------------------- #

SMALL = {"suffix_len": 4, "k": 8, "n": 8}


@graded("gcg_attack")
def test_gcg_attack_lowers_the_target_loss(gcg, tiny_model):
    result = gcg.gcg_attack(tiny_model, SYSTEM, USER, TARGET, steps=3, **SMALL)
    start, suffix, target = layout(tiny_model)
    initial = prompt_loss(tiny_model, start, target)
    assert result.initial_loss == pytest.approx(initial, abs=1e-4), (
        f"gcg_attack: initial_loss should be the target loss of the prompt with 4 '!' tokens as "
        f"suffix, {initial:.5f}; got {result.initial_loss}"
    )
    losses = list(result.losses)
    assert len(losses) == 3, f"gcg_attack: expected one loss per step (3), got {len(losses)}"
    assert all(b <= a + 1e-6 for a, b in zip(losses, losses[1:], strict=False)), (
        f"gcg_attack: the losses must never increase, got {losses}"
    )
    assert losses[0] <= initial + 1e-6, "gcg_attack: every loss must be <= initial_loss"
    assert losses[-1] < initial - 1e-3, (
        f"gcg_attack: 3 steps of GCG with k=8, n=8 should lower the target loss from "
        f"{initial:.4f}; got {losses}"
    )
    expected, s2, t2 = tiny_model.layout(SYSTEM, USER, result.suffix_ids, tiny_model.encode(TARGET))
    assert (result.suffix_slice, result.target_slice) == (suffix, target) and s2 == suffix, (
        f"gcg_attack: expected suffix_slice {suffix} and target_slice {target}, got "
        f"{result.suffix_slice}, {result.target_slice}"
    )
    assert torch.equal(result.input_ids, expected), (
        "gcg_attack: input_ids should be model.layout(system, user, suffix_ids, "
        "model.encode(target))"
    )
    assert result.suffix == tiny_model.decode(result.suffix_ids), (
        "gcg_attack: suffix should be the decoded suffix_ids"
    )
    assert prompt_loss(tiny_model, result.input_ids, target) == pytest.approx(
        losses[-1], abs=1e-4
    ), "gcg_attack: the last loss should be the target loss of the prompt returned"
    allowed = tiny_model.allowed_tokens()
    bang = int(tiny_model.encode("!")[0])
    ok = all(bool(allowed[t]) or int(t) == bang for t in result.suffix_ids)
    assert ok, "gcg_attack: the suffix uses tokens outside model.allowed_tokens() (the default)"


@graded("gcg_attack")
def test_gcg_attack_runs_gcg_step_with_one_seeded_generator(gcg, tiny_model):
    result = gcg.gcg_attack(tiny_model, SYSTEM, USER, TARGET, steps=2, seed=0, **SMALL)
    ids, suffix, target = layout(tiny_model)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(2):
        ids, loss = gcg.gcg_step(
            tiny_model, ids, suffix, target, 8, 8, generator, tiny_model.allowed_tokens()
        )
        losses.append(loss)
    assert torch.equal(result.input_ids, ids), (
        "gcg_attack: 2 steps should be 2 gcg_step calls from the '!' suffix with one generator "
        "seeded once with seed and allowed = model.allowed_tokens(); got another prompt"
    )
    assert result.losses == pytest.approx(losses, abs=1e-4), (
        f"gcg_attack: expected the losses of the 2 steps {losses}, got {result.losses}"
    )


@graded("gcg_attack")
def test_gcg_attack_is_reproducible_by_seed_and_keeps_to_allowed(gcg, tiny_model):
    allowed = torch.zeros(tiny_model.embedding.num_embeddings, dtype=torch.bool)
    allowed[1000:1300] = True
    runs = [
        gcg.gcg_attack(tiny_model, SYSTEM, USER, TARGET, steps=1, seed=s, allowed=allowed, **SMALL)
        for s in (0, 0, 4)
    ]
    assert torch.equal(runs[0].suffix_ids, runs[1].suffix_ids), (
        "gcg_attack: the same seed must give the same suffix"
    )
    assert not torch.equal(runs[0].suffix_ids, runs[2].suffix_ids), (
        "gcg_attack: seeds 0 and 4 gave the same suffix; seed the candidates' generator with seed"
    )
    bang = int(tiny_model.encode("!")[0])
    for run in runs:
        bad = [int(t) for t in run.suffix_ids if not allowed[t] and int(t) != bang]
        assert not bad, f"gcg_attack: the suffix uses tokens {bad} that allowed forbids"


@pytest.mark.parametrize("target", ["", "<|im_end|>"], ids=["empty", "special-token"])
@graded("gcg_attack")
def test_gcg_attack_rejects_a_target_the_tokenizer_cannot_produce(gcg, tiny_model, target):
    with pytest.raises(ValueError):
        gcg.gcg_attack(tiny_model, SYSTEM, USER, target, suffix_len=2, steps=1, k=2, n=2)


@pytest.mark.parametrize("suffix_len", [0, -1])
@graded("gcg_attack")
def test_gcg_attack_rejects_a_suffix_len_below_one(gcg, tiny_model, suffix_len):
    with pytest.raises(ValueError):
        gcg.gcg_attack(tiny_model, SYSTEM, USER, TARGET, suffix_len=suffix_len, steps=1, k=2, n=2)


@pytest.mark.parametrize("steps", [0, -3])
@graded("gcg_attack")
def test_gcg_attack_rejects_a_budget_below_one(gcg, tiny_model, steps):
    with pytest.raises(ValueError):
        gcg.gcg_attack(tiny_model, SYSTEM, USER, TARGET, suffix_len=2, steps=steps, k=2, n=2)
