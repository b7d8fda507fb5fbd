"""Specs for directions.py (stretch): last-token activations, the
difference-of-means direction, and adding or ablating it in the residual stream.

Run them with `make test-security3` (add IMPL=solution to see the reference pass).
Every failure message starts with the graded function it is about. They run on
a private copy of the tiny random model (same tokenizer as the real one), so a
hook left behind cannot disturb other specs.
"""

import copy

import pytest
import torch

from mlsafety import llm
from mlsafety.grading import graded

GRADED = {
    "last_token_activations": "stretch",
    "difference_of_means": "stretch",
    "add_direction": "stretch",
    "ablate_direction": "stretch",
}
pytestmark = pytest.mark.timeout(60)

SYSTEM = "You are a bot."


@pytest.fixture
def model(tiny_model):
    """A private copy of the tiny model (2 layers, width 64), sharing its tokenizer."""
    return copy.deepcopy(tiny_model, {id(tiny_model.tokenizer): tiny_model.tokenizer})


def chat(model, request):
    return model.encode(model.chat_text(SYSTEM, request))


def breaking(model, n=3):
    return [chat(model, r) for r in llm.RULE_BREAKING[:n]]


def keeping(model, n=3):
    return [chat(model, r) for r in llm.RULE_KEEPING[:n]]


def hook_count(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same_weights(name, model, before):
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), f"{name}: changed the model's weight {key}"


@torch.no_grad()
def stream_after(model, layer, ids):
    """Run the model on ids (B, T) and return (the residual stream after `layer` as the
    next module receives it, the logits)."""
    after = model.layers[layer + 1] if layer + 1 < len(model.layers) else model.lm.model.norm
    seen = []

    def grab(_module, args, kwargs):
        seen.append((args[0] if args else kwargs["hidden_states"]).detach().clone())

    handle = after.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        logits = model(input_ids=ids)
    finally:
        handle.remove()
    return seen[0], logits


def activations_by_hand(model, prompts, layer):
    return torch.stack([stream_after(model, layer, p[None])[0][0, -1] for p in prompts])


def two_prompts(model):
    """A batch of two prompts of one length."""
    a, b = chat(model, "Tell me the opening hours."), chat(model, "Tell me the staff door code.")
    n = min(len(a), len(b))
    return torch.stack([a[:n], b[:n]])


# --------------------------------------------------------------------------- #
# last_token_activations
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("layer", [0, 1])
@graded("last_token_activations")
def test_last_token_activations_read_the_stream_after_the_layer(directions, model, layer):
    prompts = [chat(model, "Hi"), chat(model, "Where is the reading room of the library?")]
    assert len(prompts[0]) != len(prompts[1])
    before, hooks, copies = snapshot(model), hook_count(model), [p.clone() for p in prompts]
    got = directions.last_token_activations(model, prompts, layer)
    expected = activations_by_hand(model, prompts, layer)
    assert got.shape == (2, 64) and got.dtype == torch.float32, (
        f"last_token_activations: expected float32 (2, 64) for 2 prompts of width 64, got "
        f"{got.dtype} {tuple(got.shape)}"
    )
    assert torch.allclose(got, expected, atol=1e-5), (
        f"last_token_activations: row i should be the output of block {layer} (the residual "
        f"stream after it) at the last token of prompt i"
    )
    assert hook_count(model) == hooks, "last_token_activations: left a hook on the model"
    assert_same_weights("last_token_activations", model, before)
    assert all(torch.equal(p, c) for p, c in zip(prompts, copies, strict=True)), (
        "last_token_activations: modified the prompts"
    )


@graded("last_token_activations")
def test_last_token_activations_of_one_prompt_are_one_row(directions, model):
    prompt = chat(model, "Hi")
    got = directions.last_token_activations(model, [prompt], 1)
    assert got.shape == (1, 64), f"last_token_activations: expected (1, 64), got {tuple(got.shape)}"
    assert not got.requires_grad, "last_token_activations: return the activations detached"


@graded("last_token_activations")
def test_last_token_activations_reject_no_prompts(directions, model):
    with pytest.raises(ValueError):
        directions.last_token_activations(model, [], 0)


@pytest.mark.parametrize("layer", [-1, 2, 5])
@graded("last_token_activations")
def test_last_token_activations_reject_a_layer_out_of_range(directions, model, layer):
    with pytest.raises(ValueError):
        directions.last_token_activations(model, [chat(model, "Hi")], layer)


# --------------------------------------------------------------------------- #
# difference_of_means
# --------------------------------------------------------------------------- #


@graded("difference_of_means")
def test_difference_of_means_is_the_normalized_mean_difference(directions, model):
    bad, good = breaking(model), keeping(model, 2)
    before = snapshot(model)
    got = directions.difference_of_means(model, bad, good, 0)
    diff = activations_by_hand(model, bad, 0).mean(0) - activations_by_hand(model, good, 0).mean(0)
    expected = diff / diff.norm()
    assert got.shape == (64,) and got.dtype == torch.float32, (
        f"difference_of_means: expected float32 (64,), got {got.dtype} {tuple(got.shape)}"
    )
    assert float(got.norm()) == pytest.approx(1.0, abs=1e-5), (
        f"difference_of_means: the direction must have norm 1, got {float(got.norm())}"
    )
    assert torch.allclose(got, expected, atol=1e-5), (
        "difference_of_means: expected mean(breaking) - mean(keeping) of the last-token "
        "activations after the layer, divided by its norm (from keeping towards breaking)"
    )
    assert_same_weights("difference_of_means", model, before)


@graded("difference_of_means")
def test_difference_of_means_reads_the_layer_it_is_given(directions, model):
    bad, good = breaking(model, 2), keeping(model, 2)
    got = directions.difference_of_means(model, bad, good, 1)
    diff = activations_by_hand(model, bad, 1).mean(0) - activations_by_hand(model, good, 1).mean(0)
    assert torch.allclose(got, diff / diff.norm(), atol=1e-5), (
        "difference_of_means: at layer 1, expected the normalized mean difference of the "
        "activations after block 1"
    )
    swapped = directions.difference_of_means(model, good, bad, 1)
    assert torch.allclose(swapped, -got, atol=1e-5), (
        "difference_of_means: swapping the two groups must flip the direction"
    )


@pytest.mark.parametrize("empty", ["breaking", "keeping"])
@graded("difference_of_means")
def test_difference_of_means_rejects_an_empty_group_before_running_a_prompt(
    directions, model, empty
):
    groups = {"breaking": breaking(model, 2), "keeping": keeping(model, 2)}
    groups[empty] = []
    runs = []
    handle = model.lm.register_forward_pre_hook(lambda *_: runs.append(1))
    try:
        with pytest.raises(ValueError):
            directions.difference_of_means(model, groups["breaking"], groups["keeping"], 0)
    finally:
        handle.remove()
    assert not runs, (
        f"difference_of_means: with no {empty} prompts there is nothing to compare; raise "
        f"before running the model (it ran {len(runs)} times)"
    )


@pytest.mark.parametrize("layer", [-1, 2])
@graded("difference_of_means")
def test_difference_of_means_rejects_a_layer_out_of_range(directions, model, layer):
    with pytest.raises(ValueError):
        directions.difference_of_means(model, breaking(model, 1), keeping(model, 1), layer)


@graded("difference_of_means")
def test_difference_of_means_rejects_groups_with_the_same_mean(directions, model):
    same = breaking(model, 2)
    with pytest.raises(ValueError):
        directions.difference_of_means(model, same, list(reversed(same)), 0)


# --------------------------------------------------------------------------- #
# add_direction
# --------------------------------------------------------------------------- #


def a_direction(seed=0, scale=3.0):
    return torch.randn(64, generator=torch.Generator().manual_seed(seed)) * scale


@pytest.mark.parametrize("layer, alpha", [(0, 2.5), (1, -0.5)])
@graded("add_direction")
def test_add_direction_shifts_the_stream_by_alpha_times_the_direction(
    directions, model, layer, alpha
):
    ids = two_prompts(model)
    direction = a_direction()  # not a unit vector: used as given
    base, base_logits = stream_after(model, layer, ids)
    before, hooks, kept = snapshot(model), hook_count(model), direction.clone()
    with directions.add_direction(model, layer, direction, alpha):
        shifted, logits = stream_after(model, layer, ids)
    assert torch.allclose(shifted, base + alpha * direction, atol=1e-4), (
        f"add_direction: inside the block, the residual stream after block {layer} should be "
        f"the original plus alpha * direction (alpha={alpha}, direction not normalized) at "
        f"every position of every prompt"
    )
    assert not torch.allclose(logits, base_logits), "add_direction: the logits did not change"
    after, after_logits = stream_after(model, layer, ids)
    assert hook_count(model) == hooks and torch.equal(after_logits, base_logits), (
        "add_direction: the model must be back as it was after the with block"
    )
    assert torch.equal(direction, kept), "add_direction: modified the direction"
    assert_same_weights("add_direction", model, before)


def check_hook_removed_on_error(name, model, layer, steer):
    """``steer()`` opens the with block of function ``name`` at ``layer``; a block
    that raises must leave no hook, the same logits and the same weights."""
    ids = two_prompts(model)[:1]
    _, base_logits = stream_after(model, layer, ids)
    before, hooks = snapshot(model), hook_count(model)
    with pytest.raises(KeyError, match="raised inside the block"), steer():
        raise KeyError("raised inside the block")
    assert hook_count(model) == hooks, (
        f"{name}: the hook must be removed even when the with block raises"
    )
    _, logits = stream_after(model, layer, ids)
    assert torch.equal(logits, base_logits), (
        f"{name}: after a with block that raised, the model answers differently"
    )
    assert_same_weights(name, model, before)


@graded("add_direction")
def test_add_direction_removes_its_hook_when_the_block_raises(directions, model):
    check_hook_removed_on_error(
        "add_direction", model, 0, lambda: directions.add_direction(model, 0, a_direction(1), 4.0)
    )


@pytest.mark.parametrize("layer", [-1, 2])
@graded("add_direction")
def test_add_direction_rejects_a_layer_out_of_range(directions, model, layer):
    with pytest.raises(ValueError), directions.add_direction(model, layer, a_direction(), 1.0):
        pass


@pytest.mark.parametrize("shape", [(65,), (1, 64), (32,)])
@graded("add_direction")
def test_add_direction_rejects_a_direction_of_the_wrong_shape(directions, model, shape):
    with pytest.raises(ValueError), directions.add_direction(model, 0, torch.ones(shape), 1.0):
        pass


# --------------------------------------------------------------------------- #
# ablate_direction
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("layer", [0, 1])
@graded("ablate_direction")
def test_ablate_direction_projects_the_direction_out(directions, model, layer):
    ids = two_prompts(model)
    direction = a_direction(2, scale=5.0)
    unit = direction / direction.norm()
    base, base_logits = stream_after(model, layer, ids)
    before, hooks, kept = snapshot(model), hook_count(model), direction.clone()
    with directions.ablate_direction(model, layer, direction):
        ablated, _ = stream_after(model, layer, ids)
    expected = base - (base @ unit)[..., None] * unit
    assert torch.allclose(ablated, expected, atol=1e-4), (
        f"ablate_direction: inside the block, each hidden vector h after block {layer} should "
        f"become h - (h . u) u with u = direction / |direction|, at every position"
    )
    along = (ablated @ unit).abs().max()
    assert along < 1e-3, (
        f"ablate_direction: the stream should be orthogonal to the direction, but its largest "
        f"component along it is {float(along):.4g}"
    )
    _, after_logits = stream_after(model, layer, ids)
    assert hook_count(model) == hooks and torch.equal(after_logits, base_logits), (
        "ablate_direction: the model must be back as it was after the with block"
    )
    assert torch.equal(direction, kept), "ablate_direction: modified the direction"
    assert_same_weights("ablate_direction", model, before)


@graded("ablate_direction")
def test_ablate_direction_removes_its_hook_when_the_block_raises(directions, model):
    check_hook_removed_on_error(
        "ablate_direction", model, 1, lambda: directions.ablate_direction(model, 1, a_direction(3))
    )


@pytest.mark.parametrize("layer", [-1, 2])
@graded("ablate_direction")
def test_ablate_direction_rejects_a_layer_out_of_range(directions, model, layer):
    with pytest.raises(ValueError), directions.ablate_direction(model, layer, a_direction()):
        pass


@pytest.mark.parametrize("shape", [(65,), (1, 64)])
@graded("ablate_direction")
def test_ablate_direction_rejects_a_direction_of_the_wrong_shape(directions, model, shape):
    with pytest.raises(ValueError), directions.ablate_direction(model, 0, torch.ones(shape)):
        pass


@graded("ablate_direction")
def test_ablate_direction_rejects_a_zero_direction(directions, model):
    with pytest.raises(ValueError), directions.ablate_direction(model, 0, torch.zeros(64)):
        pass
