"""Specs for perplexity.py: the model's perplexity of a prompt, and the filter
that flags prompts whose perplexity, over any window of a few tokens, is too high.

Run them with `make test-security3` (add IMPL=solution to see the reference pass).
Every failure message starts with the graded function it is about. They run on
the tiny random model (same tokenizer as the real one), so they are fast.
"""

import pytest
import torch
import torch.nn.functional as F

from mlsafety.grading import graded

GRADED = {"perplexity": "core", "perplexity_filter": "core"}
pytestmark = pytest.mark.timeout(60)

TEXT = "Can you recommend a good mystery novel for a long train ride?"


def prompt(model, text=TEXT):
    return model.encode(text)


@torch.no_grad()
def token_nll(model, ids):
    """The T - 1 negative log probabilities of one prompt (T,), by hand, float64."""
    logits = model(input_ids=ids[None])[0].double()
    return F.cross_entropy(logits[:-1], ids[1:], reduction="none")


@torch.no_grad()
def model_perplexity(model, ids):
    """exp of the loss the model reports for the prompt as its own label."""
    return float(model.lm(input_ids=ids[None], labels=ids[None]).loss.double().exp())


def windowed_by_hand(nll, window):
    """Largest exp(mean) over the runs of `window` consecutive values (none past the end)."""
    if window is None or window >= len(nll):
        return float(nll.mean().exp())
    return max(float(nll[i : i + window].mean().exp()) for i in range(len(nll) - window + 1))


@torch.no_grad()
def with_an_unlikely_last_token(model, ids):
    """ids followed by the token the model finds least likely after them."""
    worst = model(input_ids=ids[None])[0, -1].argmin()
    return torch.cat([ids, worst[None]])


# --------------------------------------------------------------------------- #
# perplexity
# --------------------------------------------------------------------------- #


@graded("perplexity")
def test_perplexity_is_the_exp_of_the_model_loss(perplexity, tiny_model):
    ids = prompt(tiny_model)
    before = ids.clone()
    got = perplexity.perplexity(tiny_model, ids)
    expected = model_perplexity(tiny_model, ids)
    assert isinstance(got, torch.Tensor) and got.shape == (1,), (
        f"perplexity: one 1-D prompt should give a tensor of shape (1,), got {got!r}"
    )
    assert got.is_floating_point(), f"perplexity: expected floats, got {got.dtype}"
    assert float(got[0]) == pytest.approx(expected, rel=1e-4), (
        f"perplexity: expected exp(model.lm(ids, labels=ids).loss) = {expected:.3f} (the mean "
        f"negative log probability of tokens 1..T-1, each after the tokens before it); got "
        f"{float(got[0]):.3f}"
    )
    assert float(got[0]) >= 1.0, "perplexity: a perplexity is always >= 1"
    assert torch.equal(ids, before), "perplexity: modified input_ids"


@graded("perplexity")
def test_perplexity_scores_each_prompt_of_a_batch(perplexity, tiny_model):
    g = torch.Generator().manual_seed(0)
    batch = torch.randint(tiny_model.embedding.num_embeddings, (3, 9), generator=g)
    batch[1] = prompt(tiny_model)[:9]
    got = perplexity.perplexity(tiny_model, batch)
    assert got.shape == (3,), f"perplexity: a (3, 9) batch should give (3,), got {tuple(got.shape)}"
    expected = torch.tensor(
        [model_perplexity(tiny_model, row) for row in batch], dtype=torch.float64
    )
    assert torch.allclose(got.double(), expected, rtol=1e-4), (
        f"perplexity: expected each prompt's own perplexity {expected.tolist()}, got {got.tolist()}"
    )
    two = perplexity.perplexity(tiny_model, batch[:, :2])
    expected = torch.tensor(
        [float(token_nll(tiny_model, row[:2])[0].exp()) for row in batch], dtype=torch.float64
    )
    assert torch.allclose(two.double(), expected, rtol=1e-4), (
        "perplexity: a 2-token prompt's perplexity is 1 / p(token 1 | token 0)"
    )


@pytest.mark.parametrize(
    "shape", [(1,), (2, 1), (0,)], ids=["1-token", "batch-of-1-token", "empty"]
)
@graded("perplexity")
def test_perplexity_rejects_prompts_shorter_than_two_tokens(perplexity, tiny_model, shape):
    with pytest.raises(ValueError):
        perplexity.perplexity(tiny_model, torch.full(shape, 42, dtype=torch.long))


# --------------------------------------------------------------------------- #
# perplexity_filter
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("window", [1, 3, 5])
@graded("perplexity_filter")
def test_perplexity_filter_scores_the_worst_window(perplexity, tiny_model, window):
    # the least likely token at the end: only a run that ends there sees it
    ids = with_an_unlikely_last_token(tiny_model, prompt(tiny_model)[:11])
    middle = ids.clone()
    middle[5] = ids[-1]  # and a batch row with it in the middle
    middle[-1] = ids[5]
    batch = torch.stack([ids, middle])
    before = batch.clone()
    flagged, score = perplexity.perplexity_filter(tiny_model, batch, 1e9, window)
    expected = torch.tensor(
        [windowed_by_hand(token_nll(tiny_model, row), window) for row in batch],
        dtype=torch.float64,
    )
    assert score.shape == (2,) and flagged.shape == (2,), (
        f"perplexity_filter: a batch of 2 should give flagged (2,) and score (2,), got "
        f"{tuple(flagged.shape)} and {tuple(score.shape)}"
    )
    assert flagged.dtype == torch.bool, (
        f"perplexity_filter: flagged must be bool, got {flagged.dtype}"
    )
    assert torch.allclose(score.double(), expected, rtol=1e-4), (
        f"perplexity_filter: with window={window} over 12 tokens, the score is the largest "
        f"exp(mean) over the {12 - window} runs of {window} consecutive negative log "
        f"probabilities (none past the end): expected {expected.tolist()}, got {score.tolist()}"
    )
    assert torch.equal(batch, before), "perplexity_filter: modified input_ids"


@graded("perplexity_filter")
def test_perplexity_filter_flags_strictly_above_the_threshold(perplexity, tiny_model):
    ids = with_an_unlikely_last_token(tiny_model, prompt(tiny_model)[:8])
    _, score = perplexity.perplexity_filter(tiny_model, ids, 1.0, 3)
    assert score.shape == (1,), (
        f"perplexity_filter: one 1-D prompt should give a score of shape (1,), got "
        f"{tuple(score.shape)}"
    )
    value = float(score[0])
    expected = windowed_by_hand(token_nll(tiny_model, ids), 3)
    assert value == pytest.approx(expected, rel=1e-4), (
        f"perplexity_filter: expected the score {expected:.3f} for a 1-D prompt, got {value:.3f}"
    )
    for threshold, flag in ((value, False), (value * 0.999, True), (value * 1.001, False)):
        flagged, _ = perplexity.perplexity_filter(tiny_model, ids, threshold, 3)
        assert flagged.tolist() == [flag], (
            f"perplexity_filter: score {value} with threshold {threshold} should give flagged "
            f"[{flag}] (flag when strictly greater), got {flagged.tolist()}"
        )


@pytest.mark.parametrize("window", [None, 11, 12, 40], ids=["None", "T-1", "T", "longer"])
@graded("perplexity_filter")
def test_perplexity_filter_with_a_window_as_long_as_the_prompt_is_perplexity(
    perplexity, tiny_model, window
):
    ids = with_an_unlikely_last_token(tiny_model, prompt(tiny_model)[:11])  # T = 12
    flagged, score = perplexity.perplexity_filter(tiny_model, ids, 5.0, window)
    expected = model_perplexity(tiny_model, ids)
    assert float(score[0]) == pytest.approx(expected, rel=1e-4), (
        f"perplexity_filter: with window={window} on 12 tokens the whole prompt is one run and "
        f"the score is its perplexity {expected:.3f}; got {float(score[0]):.3f}"
    )
    assert flagged.tolist() == [expected > 5.0], (
        f"perplexity_filter: a score of {expected:.3f} with threshold 5 should be flagged"
    )


@pytest.mark.parametrize("threshold", [0.0, -3.0])
@graded("perplexity_filter")
def test_perplexity_filter_rejects_a_threshold_that_is_not_positive(
    perplexity, tiny_model, threshold
):
    with pytest.raises(ValueError):
        perplexity.perplexity_filter(tiny_model, prompt(tiny_model), threshold, 3)


@pytest.mark.parametrize("window", [0, -2])
@graded("perplexity_filter")
def test_perplexity_filter_rejects_a_window_below_one(perplexity, tiny_model, window):
    with pytest.raises(ValueError):
        perplexity.perplexity_filter(tiny_model, prompt(tiny_model), 10.0, window)


@pytest.mark.parametrize("shape", [(1,), (3, 1)], ids=["1-token", "batch-of-1-token"])
@graded("perplexity_filter")
def test_perplexity_filter_rejects_prompts_shorter_than_two_tokens(perplexity, tiny_model, shape):
    with pytest.raises(ValueError):
        perplexity.perplexity_filter(tiny_model, torch.full(shape, 42, dtype=torch.long), 10.0)
