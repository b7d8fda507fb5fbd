"""Specs for text_saliency.py: gradient x input and integrated gradients over
the input embeddings of a text classifier, and the completeness gap.

The specs use two small text models written here, so they run in a moment: a
bag-of-embeddings linear model, whose answers are known in closed form, and a
one-layer attention model (position embeddings, masked self-attention, a
feed-forward block, masked mean pooling), smooth like the MiniLM classifier of
the notebook. Run them with `make test-week6` (add IMPL=solution to see the
reference pass). Every failure message starts with the graded function it is
about.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mlsafety.grading import graded
from mlsafety.specs import raises

GRADED = {
    "token_gradient_x_input": "core",
    "token_integrated_gradients": "core",
    "completeness_gap": "core",
}
pytestmark = pytest.mark.timeout(20)

E, T, K = 6, 5, 3  # embedding size, tokens per sentence, classes


class BagOfEmbeddings(nn.Module):
    """logits = W (sum of the real tokens' embeddings) + b: linear in the embeddings."""

    def __init__(self, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.linear = nn.Linear(E, K)
        with torch.no_grad():
            self.linear.weight.copy_(torch.randn(K, E, generator=g))
            self.linear.bias.copy_(torch.randn(K, generator=g))

    def forward(self, embeds, mask):
        return self.linear((embeds * mask.unsqueeze(-1).to(embeds.dtype)).sum(1))


class TinyAttention(nn.Module):
    """Position embeddings, one masked self-attention head, a tanh feed-forward
    block, masked mean pooling and a linear head: smooth, and padding has no
    influence on the logits."""

    def __init__(self, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.position = nn.Parameter(0.3 * torch.randn(T, E, generator=g))
        self.qkv = nn.Linear(E, 3 * E)
        self.ff = nn.Linear(E, E)
        self.head = nn.Linear(E, K)
        with torch.no_grad():
            for p in (self.qkv.weight, self.qkv.bias, self.ff.weight, self.ff.bias):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            self.head.weight.copy_(torch.randn(K, E, generator=g))
            self.head.bias.copy_(torch.randn(K, generator=g))

    def forward(self, embeds, mask):
        keep = mask.to(embeds.dtype)
        h = embeds + self.position[: embeds.shape[1]].to(embeds.dtype)
        q, k, v = self.qkv(h).chunk(3, dim=-1)
        scores = q @ k.transpose(1, 2) / math.sqrt(E)
        scores = scores.masked_fill(keep.unsqueeze(1) == 0, float("-inf"))
        h = h + scores.softmax(-1) @ v
        h = h + torch.tanh(self.ff(h))
        pooled = (h * keep.unsqueeze(-1)).sum(1) / keep.sum(1, keepdim=True)
        return self.head(pooled)


def sentences(n=4, seed=0, dtype=torch.float32):
    """Embeddings ``(n, T, E)`` and a mask with 5, 3, 4, 2, ... real tokens (the
    padding positions hold random vectors, which must not matter)."""
    g = torch.Generator().manual_seed(seed)
    embeds = torch.randn(n, T, E, generator=g, dtype=dtype)
    lengths = torch.tensor([5, 3, 4, 2, 1, 5, 3][:n])
    mask = (torch.arange(T) < lengths[:, None]).long()
    return embeds, mask


def call(text_saliency, name, model, embeds, mask, target, **kw):
    fn = getattr(text_saliency, name)
    if name == "token_integrated_gradients":
        kw = {"steps": 4, **kw}
    return fn(model, embeds, mask, target, **kw)


def reference_grad(model, embeds, mask, target):
    """One sentence at a time, the gradient of its target logit."""
    rows = []
    for i in range(len(embeds)):
        e = embeds[i : i + 1].detach().clone().requires_grad_(True)
        t = target if isinstance(target, int) else int(target[i])
        (g,) = torch.autograd.grad(model(e, mask[i : i + 1])[0, t], e)
        rows.append(g)
    return torch.cat(rows)


def reference_ig(model, embeds, mask, target, baseline, steps):
    base = torch.zeros_like(embeds) if baseline is None else baseline.to(embeds).expand_as(embeds)
    total = sum(
        reference_grad(model, base + k / steps * (embeds - base), mask, target)
        for k in range(1, steps + 1)
    )
    return ((embeds - base) * total / steps).sum(-1) * mask


def logit(model, embeds, mask, target):
    with torch.no_grad():
        out = model(embeds, mask)
    t = torch.full((len(embeds),), target) if isinstance(target, int) else target
    return out[torch.arange(len(embeds)), t]


def gap(a, b):
    return (a - b).abs().max().item()


def attribution(name, value, like):
    if not isinstance(value, torch.Tensor):
        pytest.fail(f"{name}: returned {type(value).__name__}, expected a tensor", pytrace=False)
    want = tuple(like.shape[:2])
    if tuple(value.shape) != want:
        pytest.fail(
            f"{name}: output shape {tuple(value.shape)}, expected (N, T) = {want}: one number per "
            f"token, the embedding dimensions summed",
            pytrace=False,
        )
    return value


METHODS = [
    pytest.param(name, marks=graded(name), id=name)
    for name in ("token_gradient_x_input", "token_integrated_gradients")
]


# --------------------------------------------------------------------------- #
# Invariants of both token attribution methods.
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("name", METHODS)
def test_output_is_one_detached_number_per_token_and_zero_on_padding(text_saliency, name):
    embeds, mask = sentences()
    out = attribution(name, call(text_saliency, name, TinyAttention(), embeds, mask, 1), embeds)
    assert out.dtype == embeds.dtype and out.device == embeds.device, (
        f"{name}: output is {out.dtype} on {out.device}, expected {embeds.dtype} on {embeds.device}"
    )
    assert not out.requires_grad, f"{name}: output still requires grad; return it detached"
    assert torch.isfinite(out).all(), f"{name}: output has inf or nan values"
    padding = out[mask == 0]
    assert torch.all(padding == 0), (
        f"{name}: padding positions must get exactly 0, got values up to "
        f"{padding.abs().max().item():.3g}; multiply by the mask (the padding embeddings are "
        f"random here, and a zero baseline makes (embeds - baseline) non-zero there)"
    )
    double = call(text_saliency, name, TinyAttention().double(), *sentences(dtype=torch.float64), 1)
    assert double.dtype == torch.float64, f"{name}: float64 embeddings gave {double.dtype}"


@pytest.mark.parametrize("name", METHODS)
def test_model_and_embeddings_are_left_as_found(text_saliency, name):
    model = TinyAttention()
    model.train()
    params = dict(model.named_parameters())
    params["position"].requires_grad_(False)  # a partly frozen model
    for i, (k, p) in enumerate(params.items()):
        if k != "position":
            p.grad = torch.full_like(p, float(i + 1))
    weights = {k: p.detach().clone() for k, p in params.items()}
    embeds, mask = sentences()
    before = embeds.clone()
    call(text_saliency, name, model, embeds, mask, 0)
    assert model.training, f"{name}: switched the model to eval mode; use the model as given"
    assert torch.equal(embeds, before), f"{name}: modified the embeddings in place"
    assert not embeds.requires_grad, (
        f"{name}: set requires_grad on the caller's embeddings; differentiate a detached copy"
    )
    for i, (k, p) in enumerate(params.items()):
        assert torch.equal(p.detach(), weights[k]), f"{name}: changed the model's weights ({k})"
        assert p.requires_grad == (k != "position"), (
            f"{name}: changed requires_grad of the parameter {k}; leave the model's flags alone"
        )
        if k != "position":
            assert p.grad is not None and torch.all(p.grad == i + 1), (
                f"{name}: changed {k}.grad; take gradients with torch.autograd.grad(score, "
                f"embeds) instead of score.backward()"
            )
    leaf = before.clone().requires_grad_(True)
    call(text_saliency, name, model, leaf, mask, 0)
    assert leaf.requires_grad and leaf.grad is None, (
        f"{name}: left a .grad on the caller's embeddings (or changed their requires_grad)"
    )


@pytest.mark.parametrize("name", METHODS)
def test_rejects_embeddings_and_masks_of_the_wrong_shape(text_saliency, name):
    embeds, mask = sentences()
    model = BagOfEmbeddings()
    raises(
        name,
        ValueError,
        lambda: call(text_saliency, name, model, embeds, mask[:, :3], 0),
        f"a mask of shape (4, 3) for embeddings of shape {tuple(embeds.shape)}",
    )
    raises(
        name,
        ValueError,
        lambda: call(text_saliency, name, model, embeds[0], mask[0], 0),
        "embeddings of one sentence (T, E) without the batch dimension",
    )


@pytest.mark.parametrize(
    "name",
    [*METHODS, pytest.param("completeness_gap", marks=graded("completeness_gap"), id="gap")],
)
def test_runs_on_the_device_of_its_inputs(text_saliency, name):
    from mlsafety.hardware import pick_device

    device = pick_device()  # the GPU where there is one, else the CPU
    embeds, mask = (t.to(device) for t in sentences())
    model = TinyAttention().to(device)
    if name == "completeness_gap":
        out = text_saliency.completeness_gap(model, embeds, mask, 0, torch.zeros_like(mask) * 1.0)
    else:
        out = call(text_saliency, name, model, embeds, mask, 0)
    assert isinstance(out, torch.Tensor) and out.device == embeds.device, (
        f"{name}: embeddings on {embeds.device}, output on {getattr(out, 'device', out)}"
    )


# --------------------------------------------------------------------------- #
# token_gradient_x_input
# --------------------------------------------------------------------------- #


@graded("token_gradient_x_input")
def test_gradient_x_input_of_a_linear_model_is_embedding_dot_weight_row(text_saliency):
    model = BagOfEmbeddings()
    w = model.linear.weight.detach()
    embeds, mask = sentences()
    targets = torch.tensor([0, 2, 1, 2])
    got = attribution(
        "token_gradient_x_input",
        text_saliency.token_gradient_x_input(model, embeds, mask, targets),
        embeds,
    )
    want = (embeds * w[targets][:, None, :]).sum(-1) * mask
    hint = ""
    if gap(got, (w[targets][:, None, :].expand_as(embeds)).sum(-1) * mask) < 1e-5:
        hint = "; that is the gradient alone: multiply it by the embeddings"
    elif gap(got, want / E) < 1e-5:
        hint = "; that is a mean over the embedding dimensions: sum them"
    assert gap(got, want) < 1e-5, (
        f"token_gradient_x_input: for logits = W (sum of token embeddings) + b the attribution "
        f"of token t is embeds[t] . W[target]; off by {gap(got, want):.2e}{hint}"
    )
    got_int = text_saliency.token_gradient_x_input(model, embeds, mask, 1)
    want_int = (embeds * w[1]).sum(-1) * mask
    assert gap(got_int, want_int) < 1e-5, (
        "token_gradient_x_input: with an int target every sentence explains that class"
    )


@graded("token_gradient_x_input")
def test_gradient_x_input_of_an_attention_model_matches_autograd(text_saliency):
    model = TinyAttention(seed=1)
    embeds, mask = sentences(seed=2)
    targets = torch.tensor([2, 0, 1, 1])
    got = attribution(
        "token_gradient_x_input",
        text_saliency.token_gradient_x_input(model, embeds, mask, targets),
        embeds,
    )
    want = (reference_grad(model, embeds, mask, targets) * embeds).sum(-1) * mask
    probs = []
    for i in range(len(embeds)):
        e = embeds[i : i + 1].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(model(e, mask[i : i + 1]).softmax(1)[0, targets[i]], e)
        probs.append((g * e.detach()).sum(-1))
    hint = (
        "; that is the gradient of the softmax probability: explain the logit"
        if gap(got, torch.cat(probs) * mask) < 1e-5
        else ""
    )
    assert gap(got, want) < 1e-4, (
        f"token_gradient_x_input: on a one-layer attention model the attributions differ from "
        f"autograd's gradient of each sentence's own target logit times the embeddings by "
        f"{gap(got, want):.2e}{hint}"
    )


# --------------------------------------------------------------------------- #
# token_integrated_gradients
# --------------------------------------------------------------------------- #


@graded("token_integrated_gradients")
def test_integrated_gradients_of_a_linear_model_with_a_baseline_vector(text_saliency):
    model = BagOfEmbeddings()
    w = model.linear.weight.detach()
    embeds, mask = sentences(seed=3)
    baseline = torch.linspace(-1.0, 1.0, E)  # one vector for every token, like [PAD]'s embedding
    for steps in (1, 3):
        got = attribution(
            "token_integrated_gradients",
            text_saliency.token_integrated_gradients(
                model, embeds, mask, 2, baseline=baseline, steps=steps
            ),
            embeds,
        )
        want = ((embeds - baseline) * w[2]).sum(-1) * mask
        hint = ""
        if gap(got, (embeds * w[2]).sum(-1) * mask) < 1e-5:
            hint = "; that ignores the baseline (it is embeds . W, not (embeds - baseline) . W)"
        elif gap(got, w[2].sum().expand_as(got) * mask) < 1e-5:
            hint = "; that is the averaged gradient alone: multiply by (embeds - baseline)"
        assert gap(got, want) < 1e-5, (
            f"token_integrated_gradients: for a linear model IG is (embeds - baseline) . "
            f"W[target] per token at any steps; with steps={steps} off by "
            f"{gap(got, want):.2e}{hint}"
        )
    zero = text_saliency.token_integrated_gradients(model, embeds, mask, 2, steps=2)
    assert gap(zero, (embeds * w[2]).sum(-1) * mask) < 1e-5, (
        "token_integrated_gradients: baseline=None means the zero embedding"
    )


@graded("token_integrated_gradients")
def test_integrated_gradients_follows_the_right_riemann_sum(text_saliency):
    model = TinyAttention(seed=4)
    embeds, mask = sentences(seed=5)
    targets = torch.tensor([1, 0, 2, 0])
    baseline = 0.2 * torch.ones(E)
    got = attribution(
        "token_integrated_gradients",
        text_saliency.token_integrated_gradients(
            model, embeds, mask, targets, baseline=baseline, steps=3
        ),
        embeds,
    )
    want = reference_ig(model, embeds, mask, targets, baseline, 3)
    base = baseline.expand_as(embeds)
    left = sum(
        reference_grad(model, base + k / 3 * (embeds - base), mask, targets) for k in range(3)
    )
    hint = (
        "; that is the left sum (k = 0 .. steps - 1): evaluate k = 1 .. steps"
        if gap(got, ((embeds - base) * left / 3).sum(-1) * mask) < 1e-5
        else ""
    )
    assert gap(got, want) < 1e-4, (
        f"token_integrated_gradients: with steps=3 expected the mean of the gradients at "
        f"baseline + k/3 (embeds - baseline), k = 1, 2, 3, times (embeds - baseline), summed "
        f"over the embedding; off by {gap(got, want):.2e}{hint}"
    )


@graded("token_integrated_gradients")
def test_integrated_gradients_is_complete_at_enough_steps(text_saliency):
    model = TinyAttention(seed=6).double()
    embeds, mask = sentences(seed=7, dtype=torch.float64)
    embeds = 0.5 * embeds  # a path over which the logit bends, but not too sharply
    ig = text_saliency.token_integrated_gradients(model, embeds, mask, 0, steps=200)
    change = logit(model, embeds, mask, 0) - logit(model, torch.zeros_like(embeds), mask, 0)
    error = (ig.sum(1) - change).abs().max().item()
    scale = change.abs().max().item()
    assert error < 0.01 * scale, (
        f"token_integrated_gradients: with 200 steps the attributions of each sentence should "
        f"add up to f(embeds) - f(0) within 1% (largest change {scale:.3f}); they miss by "
        f"{error:.4f}"
    )
    raises(
        "token_integrated_gradients",
        ValueError,
        lambda: text_saliency.token_integrated_gradients(model, embeds, mask, 0, steps=0),
        "steps=0 leaves no point on the path",
    )


# --------------------------------------------------------------------------- #
# completeness_gap
# --------------------------------------------------------------------------- #


@graded("completeness_gap")
def test_completeness_gap_of_exact_and_shifted_attributions(text_saliency):
    model = BagOfEmbeddings(seed=8)
    w = model.linear.weight.detach()
    embeds, mask = sentences(seed=9)
    baseline = torch.linspace(0.5, -0.5, E)
    exact = ((embeds - baseline) * w[1]).sum(-1) * mask  # IG of a linear model
    got = text_saliency.completeness_gap(model, embeds, mask, 1, exact, baseline=baseline)
    if not isinstance(got, torch.Tensor) or tuple(got.shape) != (4,):
        pytest.fail(
            f"completeness_gap: expected a (N,) = (4,) tensor, got {got!r:.80}", pytrace=False
        )
    assert got.abs().max().item() < 1e-5, (
        f"completeness_gap: exact IG attributions of a linear model add up to f(embeds) - "
        f"f(baseline), so every gap is 0; got {[round(v, 4) for v in got.tolist()]} (did you "
        f"evaluate the model at the baseline vector, broadcast to every token?)"
    )
    shifted = exact.clone()
    shifted[2, 1] += 0.75
    got = text_saliency.completeness_gap(model, embeds, mask, 1, shifted, baseline=baseline)
    want = torch.tensor([0.0, 0.0, 0.75, 0.0])
    hint = (
        " (the sign is flipped: sum of attributions minus the score change)"
        if math.isclose(got[2].item(), -0.75, abs_tol=1e-4)
        else ""
    )
    assert gap(got, want) < 1e-4, (
        f"completeness_gap: attributions that claim 0.75 too much for sentence 2 should give "
        f"gaps {want.tolist()}, got {[round(v, 4) for v in got.tolist()]}{hint}"
    )
    assert not got.requires_grad and got.dtype == embeds.dtype, (
        f"completeness_gap: return a detached tensor with the embeddings' dtype, got "
        f"{got.dtype} (requires_grad={got.requires_grad})"
    )


@graded("completeness_gap")
def test_completeness_gap_on_an_attention_model_matches_a_reference(text_saliency):
    model = TinyAttention(seed=10)
    embeds, mask = sentences(seed=11)
    targets = torch.tensor([0, 1, 2, 1])
    attributions = torch.randn(4, T, generator=torch.Generator().manual_seed(12)) * mask
    change = logit(model, embeds, mask, targets) - logit(
        model, torch.zeros_like(embeds), mask, targets
    )
    want = attributions.sum(1) - change
    got = text_saliency.completeness_gap(model, embeds, mask, targets, attributions)
    probs = F.softmax(model(embeds, mask), 1).detach()
    hint = ""
    if isinstance(got, torch.Tensor) and got.shape == want.shape:
        if gap(got, attributions.sum(1) - logit(model, embeds, mask, targets)) < 1e-5:
            hint = "; the score at the baseline is missing: subtract f(baseline) too"
        elif gap(got, attributions.sum(1) - probs[torch.arange(4), targets]) < 1e-3:
            hint = "; use the target's logit, not its probability"
    assert isinstance(got, torch.Tensor) and gap(got, want) < 1e-5, (
        f"completeness_gap: with a zero baseline (baseline=None) expected "
        f"{[round(v, 4) for v in want.tolist()]}, got {got!r:.120}{hint}"
    )
    raises(
        "completeness_gap",
        ValueError,
        lambda: text_saliency.completeness_gap(model, embeds, mask, 0, attributions[:, :3]),
        "attributions of shape (4, 3) for 4 sentences of 5 tokens",
    )
    raises(
        "completeness_gap",
        ValueError,
        lambda: text_saliency.completeness_gap(model, embeds, mask[:, :3], 0, attributions),
        "a mask of shape (4, 3) for embeddings of 5 tokens",
    )
