"""Specs for layers.py: gelu, layer_norm, scaled_dot_product_attention and
residual_block.

Run them with `make test-week1` (add IMPL=solution to see the reference pass).
Every failure message starts with the graded function it is about.
"""

import pytest
import torch
import torch.nn.functional as F

from mlsafety.grading import graded

GRADED = {
    "gelu": "core",
    "layer_norm": "core",
    "scaled_dot_product_attention": "stretch",
    "residual_block": "core",
}
pytestmark = pytest.mark.timeout(20)

SHAPES = [(), (7,), (4, 5), (2, 3, 8), (2, 3, 4, 5)]
# layer_norm: every dimension a different size, so normalising the wrong one shows
NORM_SHAPES = [(3, 4), (2, 5, 16), (2, 3, 4, 8), (6, 1)]
# attention: (q shape, k shape, v shape); d != dv, so scaling by the wrong size shows
ATTENTION_SHAPES = [
    ((5, 4), (7, 4), (7, 3)),
    ((2, 5, 8), (2, 7, 8), (2, 7, 6)),
    ((2, 3, 4, 16), (2, 3, 6, 16), (2, 3, 6, 5)),
]
# residual_block: (x shape, hidden size)
BLOCK_CASES = [((4, 8), 16), ((2, 5, 8), 12), ((3, 2, 4, 6), 10)]
EXTREMES = [-1e4, -50.0, -10.0, -3.0, -1e-3, 0.0, 1e-3, 0.5, 3.0, 10.0, 50.0, 1e4]


def randn(shape, seed, scale=1.0, dtype=torch.float32):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype) * scale


def shape_id(value):
    return "x".join(map(str, value)) if isinstance(value, tuple) else str(value)


# --------------------------------------------------------------------------- #
# gelu
# --------------------------------------------------------------------------- #


@graded("gelu")
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_gelu_matches_torch(layers, agree, shape):
    x = randn(shape, seed=len(shape), scale=3)
    agree("gelu", layers.gelu(x), F.gelu(x), f"exact form, shape {shape}")


@graded("gelu")
@pytest.mark.parametrize("shape", SHAPES[1:4], ids=shape_id)
def test_gelu_tanh_form_matches_torch(layers, agree, shape):
    x = randn(shape, seed=10 + len(shape), scale=3)
    got = layers.gelu(x, approximate="tanh")
    agree("gelu", got, F.gelu(x, approximate="tanh"), f"approximate='tanh', shape {shape}")


@graded("gelu")
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_at_extreme_inputs(layers, agree, approximate):
    for dtype in (torch.float32, torch.float64):
        x = torch.tensor(EXTREMES, dtype=dtype)
        agree(
            "gelu",
            layers.gelu(x, approximate=approximate),
            F.gelu(x, approximate=approximate),
            f"approximate={approximate!r}, {dtype}, inputs from -1e4 to 1e4",
            atol=1e-5 if dtype == torch.float32 else 1e-10,
        )


@graded("gelu")
def test_gelu_forms_differ(layers):
    x = torch.linspace(-4, 4, 81)
    gap = (layers.gelu(x, approximate="none") - layers.gelu(x, approximate="tanh")).abs().max()
    assert 1e-5 < gap.item() < 1e-2, (
        f"gelu: the exact and tanh forms should differ by a little (about 5e-4 at most), got "
        f"{gap.item():.2e}; approximate='none' uses erf, 'tanh' the tanh formula"
    )


@graded("gelu")
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_gradient_matches_torch(layers, agree, approximate):
    x = randn((6, 7), seed=3, scale=3).requires_grad_(True)
    (got,) = torch.autograd.grad(layers.gelu(x, approximate=approximate).sum(), x)
    (ref,) = torch.autograd.grad(F.gelu(x, approximate=approximate).sum(), x)
    agree("gelu", got, ref, f"gradient, approximate={approximate!r}; keep the autograd graph")


@graded("gelu")
def test_gelu_rejects_an_unknown_form(layers):
    try:
        layers.gelu(torch.zeros(3), approximate="sigmoid")
    except ValueError:
        return
    raise AssertionError(
        "gelu: approximate='sigmoid' should raise ValueError (only 'none' and 'tanh' exist)"
    )


@graded("gelu")
def test_gelu_computes_it_itself_and_leaves_the_input_alone(layers, forbid):
    forbid(
        "gelu",
        {"F.gelu": (F, "gelu")},
        "write 0.5 * x * (1 + erf(x / sqrt(2))) with torch.erf",
    )
    x = randn((4, 4), seed=4)
    before = x.clone()
    layers.gelu(x)
    layers.gelu(x, approximate="tanh")
    assert torch.equal(x, before), "gelu: modified its input in place"


# --------------------------------------------------------------------------- #
# layer_norm
# --------------------------------------------------------------------------- #


def affine(d, seed):
    return randn((d,), seed, scale=1.0) + 1.0, randn((d,), seed + 1, scale=1.0)


@graded("layer_norm")
@pytest.mark.parametrize("shape", NORM_SHAPES, ids=shape_id)
def test_layer_norm_matches_torch(layers, agree, shape):
    x = randn(shape, seed=sum(shape), scale=2) + 1.5
    w, b = affine(shape[-1], seed=7)
    got = layers.layer_norm(x, w, b)
    agree(
        "layer_norm",
        got,
        F.layer_norm(x, shape[-1:], w, b, 1e-5),
        f"shape {shape}, affine; normalise over the last dim with the biased variance (mean of "
        f"squared deviations, divide by D)",
    )


@graded("layer_norm")
def test_layer_norm_without_affine_and_with_weight_only(layers, agree):
    x = randn((3, 5, 6), seed=11, scale=3)
    w, _ = affine(6, seed=12)
    agree("layer_norm", layers.layer_norm(x), F.layer_norm(x, (6,)), "no weight, no bias")
    agree(
        "layer_norm",
        layers.layer_norm(x, weight=w),
        F.layer_norm(x, (6,), weight=w),
        "weight only (bias=None)",
    )


@graded("layer_norm")
@pytest.mark.parametrize("eps", [1e-5, 0.5])
def test_layer_norm_puts_eps_inside_the_square_root(layers, agree, eps):
    x = randn((4, 3), seed=13, scale=0.3)  # small variance: eps matters
    w, b = affine(3, seed=14)
    agree(
        "layer_norm",
        layers.layer_norm(x, w, b, eps=eps),
        F.layer_norm(x, (3,), w, b, eps),
        f"eps={eps}: divide by sqrt(var + eps)",
    )


@graded("layer_norm")
def test_layer_norm_of_a_constant_vector_is_the_bias(layers):
    x = torch.full((2, 3, 5), 4.0)
    w, b = affine(5, seed=15)
    got = layers.layer_norm(x, w, b)
    assert torch.isfinite(got).all(), (
        "layer_norm: a constant vector gave inf/nan; eps inside the square root keeps it finite"
    )
    err = (got - b).abs().max().item()
    assert err < 1e-5, f"layer_norm: a constant vector should give the bias (max error {err:.2e})"


@graded("layer_norm")
def test_layer_norm_output_statistics(layers):
    x = randn((6, 32), seed=16, scale=5) + 3
    got = layers.layer_norm(x)
    mean, var = got.mean(-1), got.var(-1, unbiased=False)
    assert mean.abs().max().item() < 1e-5, (
        f"layer_norm: each row should have mean 0 after normalising, got up to "
        f"{mean.abs().max().item():.2e}; subtract the mean over the last dim"
    )
    assert (var - 1).abs().max().item() < 1e-3, (
        f"layer_norm: each row should have (biased) variance 1, got "
        f"{var.min().item():.4f}..{var.max().item():.4f}; with the unbiased variance it would be "
        f"(D-1)/D = {31 / 32:.4f}"
    )


@graded("layer_norm")
def test_layer_norm_with_a_large_offset(layers, agree):
    # 1000 + noise: E[x^2] - E[x]^2 cancels catastrophically in float32
    x = randn((4, 64), seed=17) + 1000.0
    agree(
        "layer_norm",
        layers.layer_norm(x),
        F.layer_norm(x.double(), (64,)).float(),
        "inputs 1000 + randn; compute the variance as the mean of (x - mean)**2, not as "
        "E[x^2] - E[x]^2",
        atol=1e-3,
        rtol=1e-3,
        reference="the exact (float64) layer norm",
    )


@graded("layer_norm")
def test_layer_norm_gradients_match_torch(layers, agree):
    x = randn((3, 4, 6), seed=18, scale=2).requires_grad_(True)
    w, b = (t.requires_grad_(True) for t in affine(6, seed=19))
    upstream = randn((3, 4, 6), seed=20)
    got = torch.autograd.grad((layers.layer_norm(x, w, b) * upstream).sum(), (x, w, b))
    ref = torch.autograd.grad((F.layer_norm(x, (6,), w, b) * upstream).sum(), (x, w, b))
    for name, g, r in zip(("x", "weight", "bias"), got, ref, strict=True):
        agree("layer_norm", g, r, f"gradient w.r.t. {name}", atol=1e-4, rtol=1e-4)


@graded("layer_norm")
def test_layer_norm_float64_and_inputs_left_alone(layers, agree, forbid):
    forbid(
        "layer_norm",
        {"F.layer_norm": (F, "layer_norm"), "torch.layer_norm": (torch, "layer_norm")},
        "compute the mean and the variance over the last dim yourself",
    )
    x = randn((5, 7), seed=21, dtype=torch.float64)
    w, b = (t.double() for t in affine(7, seed=22))
    before = [t.clone() for t in (x, w, b)]
    got = layers.layer_norm(x, w, b)
    for t, t0 in zip((x, w, b), before, strict=True):
        assert torch.equal(t, t0), "layer_norm: modified an input in place"
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    expected = (x - mean) / torch.sqrt(var + 1e-5) * w + b
    agree("layer_norm", got, expected, "float64", atol=1e-10, reference="the formula")


# --------------------------------------------------------------------------- #
# scaled_dot_product_attention
# --------------------------------------------------------------------------- #


def qkv(shapes, seed, dtype=torch.float32):
    return [randn(s, seed + i, dtype=dtype) for i, s in enumerate(shapes)]


def reference_attention(q, k, v, mask=None):
    # F.scaled_dot_product_attention wants a batch dimension
    if q.dim() == 2:
        return reference_attention(q[None], k[None], v[None], mask)[0]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def random_mask(length, source, seed):
    """A boolean (L, S) mask with at least one allowed key per query."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(length, source, generator=g) < 0.5
    mask[torch.arange(length), torch.randint(0, source, (length,), generator=g)] = True
    return mask


@graded("scaled_dot_product_attention")
@pytest.mark.parametrize("shapes", ATTENTION_SHAPES, ids=lambda s: shape_id(s[0]))
def test_attention_matches_torch(layers, agree, shapes):
    q, k, v = qkv(shapes, seed=30)
    got = layers.scaled_dot_product_attention(q, k, v)
    agree(
        "scaled_dot_product_attention",
        got,
        reference_attention(q, k, v),
        f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}, no mask; scale the scores "
        f"by 1/sqrt(q.shape[-1]) and take the softmax over the keys",
    )


@graded("scaled_dot_product_attention")
@pytest.mark.parametrize("shapes", ATTENTION_SHAPES, ids=lambda s: shape_id(s[0]))
def test_attention_with_a_boolean_mask_matches_torch(layers, agree, shapes):
    q, k, v = qkv(shapes, seed=40)
    mask = random_mask(q.shape[-2], k.shape[-2], seed=41)
    agree(
        "scaled_dot_product_attention",
        layers.scaled_dot_product_attention(q, k, v, mask=mask),
        reference_attention(q, k, v, mask),
        f"mask {tuple(mask.shape)} shared by the batch; True means 'may attend'",
    )


@graded("scaled_dot_product_attention")
def test_attention_with_a_causal_mask_and_a_per_batch_mask(layers, agree):
    q, k, v = qkv(((2, 3, 6, 8), (2, 3, 6, 8), (2, 3, 6, 4)), seed=50)
    causal = torch.ones(6, 6, dtype=torch.bool).tril()
    agree(
        "scaled_dot_product_attention",
        layers.scaled_dot_product_attention(q, k, v, mask=causal),
        reference_attention(q, k, v, causal),
        "causal mask (6, 6)",
    )
    per_batch = torch.stack([random_mask(6, 6, seed=51), random_mask(6, 6, seed=52)])[:, None]
    agree(
        "scaled_dot_product_attention",
        layers.scaled_dot_product_attention(q, k, v, mask=per_batch),
        reference_attention(q, k, v, per_batch),
        "mask (2, 1, 6, 6): one per batch element, shared by the heads",
    )


@graded("scaled_dot_product_attention")
def test_attention_to_a_single_key_returns_its_value(layers):
    q, k, v = qkv(((5, 4), (7, 4), (7, 3)), seed=60)
    chosen = torch.tensor([6, 0, 3, 3, 1])
    mask = F.one_hot(chosen, 7).bool()  # each query may attend to exactly one key
    got = layers.scaled_dot_product_attention(q, k, v, mask=mask)
    err = (got - v[chosen]).abs().max().item()
    assert err < 1e-6, (
        f"scaled_dot_product_attention: a query allowed a single key must return that key's "
        f"value (max error {err:.2e}); True in the mask means 'may attend', and masked scores "
        f"are -inf before the softmax"
    )


@graded("scaled_dot_product_attention")
def test_attention_ignores_masked_values(layers):
    q, k, v = qkv(((2, 5, 4), (2, 6, 4), (2, 6, 3)), seed=70)
    mask = random_mask(5, 6, seed=71)
    mask[:, 2] = False  # no query may attend to key 2
    out = layers.scaled_dot_product_attention(q, k, v, mask=mask)
    v2, k2 = v.clone(), k.clone()
    v2[:, 2] = 1e6
    k2[:, 2] = 50.0
    changed = (layers.scaled_dot_product_attention(q, k2, v2, mask=mask) - out).abs().max().item()
    assert changed < 1e-5, (
        f"scaled_dot_product_attention: changing a masked key and value moved the output by "
        f"{changed:.2e}; a masked key must get weight exactly 0 (score -inf before the softmax)"
    )


@graded("scaled_dot_product_attention")
def test_attention_gradients_match_torch(layers, agree):
    q, k, v = (t.requires_grad_(True) for t in qkv(((2, 4, 8), (2, 5, 8), (2, 5, 3)), seed=80))
    mask = random_mask(4, 5, seed=81)
    upstream = randn((2, 4, 3), seed=82)
    got = torch.autograd.grad(
        (layers.scaled_dot_product_attention(q, k, v, mask) * upstream).sum(), (q, k, v)
    )
    ref = torch.autograd.grad((reference_attention(q, k, v, mask) * upstream).sum(), (q, k, v))
    for name, g, r in zip("qkv", got, ref, strict=True):
        agree("scaled_dot_product_attention", g, r, f"gradient w.r.t. {name}", atol=1e-4)


@graded("scaled_dot_product_attention")
def test_attention_float64_and_inputs_left_alone(layers, agree, forbid):
    forbid(
        "scaled_dot_product_attention",
        {"F.scaled_dot_product_attention": (F, "scaled_dot_product_attention")},
        "write softmax(q @ k^T / sqrt(d)) @ v yourself",
    )
    q, k, v = qkv(((3, 4, 6), (3, 5, 6), (3, 5, 2)), seed=90, dtype=torch.float64)
    mask = random_mask(4, 5, seed=91)
    before = [t.clone() for t in (q, k, v, mask)]
    got = layers.scaled_dot_product_attention(q, k, v, mask=mask)
    for t, t0 in zip((q, k, v, mask), before, strict=True):
        assert torch.equal(t, t0), "scaled_dot_product_attention: modified an input in place"
    scores = (q @ k.transpose(-2, -1) / 6**0.5).masked_fill(~mask, float("-inf"))
    expected = scores.softmax(-1) @ v
    agree("scaled_dot_product_attention", got, expected, "float64", atol=1e-10, reference="formula")


# --------------------------------------------------------------------------- #
# residual_block
# --------------------------------------------------------------------------- #


def block_params(d, h, seed, dtype=torch.float32):
    norm_w, norm_b = (t.to(dtype) for t in affine(d, seed))
    return [
        norm_w,
        norm_b,
        randn((h, d), seed + 2, scale=d**-0.5, dtype=dtype),
        randn((h,), seed + 3, scale=0.1, dtype=dtype),
        randn((d, h), seed + 4, scale=h**-0.5, dtype=dtype),
        randn((d,), seed + 5, scale=0.1, dtype=dtype),
    ]


def reference_block(x, norm_w, norm_b, w1, b1, w2, b2, eps=1e-5):
    h = F.layer_norm(x, x.shape[-1:], norm_w, norm_b, eps)
    return x + F.linear(F.gelu(F.linear(h, w1, b1)), w2, b2)


@graded("residual_block")
@pytest.mark.parametrize("shape,hidden", BLOCK_CASES, ids=lambda v: shape_id(v))
def test_residual_block_matches_torch(layers, agree, shape, hidden):
    x = randn(shape, seed=100, scale=2) + 0.5
    params = block_params(shape[-1], hidden, seed=101)
    agree(
        "residual_block",
        layers.residual_block(x, *params),
        reference_block(x, *params),
        f"x {shape}, hidden {hidden}; x + linear2(gelu(linear1(layer_norm(x)))) with "
        f"linear(h) = h @ w.T + b",
    )


@graded("residual_block")
def test_residual_block_is_the_identity_when_the_mlp_outputs_zero(layers):
    x = randn((3, 6), seed=110, scale=4) + 2
    params = block_params(6, 9, seed=111)
    params[4], params[5] = torch.zeros(6, 9), torch.zeros(6)  # w2 = 0, b2 = 0
    got = layers.residual_block(x, *params)
    err = (got - x).abs().max().item()
    assert err < 1e-6, (
        f"residual_block: with w2 = 0 and b2 = 0 the block must return its input x unchanged "
        f"(max error {err:.2e}); the skip connection adds x itself, and nothing is normalised "
        f"after the sum"
    )


@graded("residual_block")
def test_residual_block_uses_the_eps_it_is_given(layers, agree):
    x = randn((4, 5), seed=120, scale=0.3)
    params = block_params(5, 7, seed=121)
    agree(
        "residual_block",
        layers.residual_block(x, *params, eps=0.5),
        reference_block(x, *params, eps=0.5),
        "eps=0.5: pass eps on to layer_norm",
    )


@graded("residual_block")
def test_residual_block_gradients_match_torch(layers, agree):
    x = (randn((2, 3, 6), seed=130) + 1).requires_grad_(True)
    params = [p.requires_grad_(True) for p in block_params(6, 10, seed=131)]
    upstream = randn((2, 3, 6), seed=132)
    got = torch.autograd.grad((layers.residual_block(x, *params) * upstream).sum(), [x, *params])
    ref = torch.autograd.grad((reference_block(x, *params) * upstream).sum(), [x, *params])
    names = ["x", "norm_weight", "norm_bias", "w1", "b1", "w2", "b2"]
    for name, g, r in zip(names, got, ref, strict=True):
        agree("residual_block", g, r, f"gradient w.r.t. {name}", atol=1e-4, rtol=1e-4)


@graded("residual_block")
def test_residual_block_uses_your_layers_and_leaves_inputs_alone(layers, agree, forbid):
    forbid(
        "residual_block",
        {"F.layer_norm": (F, "layer_norm"), "F.gelu": (F, "gelu")},
        "call your own layer_norm and gelu",
    )
    x = randn((4, 6), seed=140, dtype=torch.float64)
    params = block_params(6, 8, seed=141, dtype=torch.float64)
    before = [t.clone() for t in (x, *params)]
    got = layers.residual_block(x, *params)
    for t, t0 in zip((x, *params), before, strict=True):
        assert torch.equal(t, t0), "residual_block: modified an input in place"
    mean = x.mean(-1, keepdim=True)
    h = (x - mean) / torch.sqrt(((x - mean) ** 2).mean(-1, keepdim=True) + 1e-5)
    h = h * params[0] + params[1]
    h = h @ params[2].T + params[3]
    h = 0.5 * h * (1 + torch.erf(h / 2**0.5))
    agree("residual_block", got, x + h @ params[4].T + params[5], "float64", atol=1e-10)


# --------------------------------------------------------------------------- #
# Defaults, the bias on its own, and the device of the inputs.
# --------------------------------------------------------------------------- #


@graded("layer_norm")
def test_layer_norm_bias_only_and_the_default_eps(layers, agree):
    x = randn((3, 4, 6), seed=23, scale=0.003)  # variance about 1e-5: the default eps matters
    _, b = affine(6, seed=24)
    agree(
        "layer_norm",
        layers.layer_norm(x, bias=b),
        F.layer_norm(x, (6,), bias=b, eps=1e-5),
        "bias only (weight=None), inputs of variance about 1e-5; add the bias even without a weight, "
        "and keep the default eps=1e-5",
    )
    constant = layers.layer_norm(torch.full((2, 5), -3.0))
    assert torch.isfinite(constant).all() and constant.abs().max().item() < 1e-6, (
        f"layer_norm: a constant vector without weight and bias should give zeros, got "
        f"{constant[0].tolist()}"
    )


def device_cases():
    """(graded function, call) pairs, each call taking the device."""

    def block(layers, device):
        params = [p.to(device) for p in block_params(6, 8, seed=150)]
        return layers.residual_block(randn((3, 6), seed=151).to(device), *params)

    return [
        ("gelu", lambda layers, d: layers.gelu(randn((4, 5), seed=152).to(d), approximate="tanh")),
        ("layer_norm", lambda layers, d: layers.layer_norm(randn((4, 5), seed=153).to(d))),
        (
            "scaled_dot_product_attention",
            lambda layers, d: layers.scaled_dot_product_attention(
                *(t.to(d) for t in qkv(((2, 3, 4), (2, 5, 4), (2, 5, 3)), seed=154)),
                mask=random_mask(3, 5, seed=155).to(d),
            ),
        ),
        ("residual_block", block),
    ]


@pytest.mark.parametrize(
    "name,call", [pytest.param(n, c, marks=graded(n), id=n) for n, c in device_cases()]
)
def test_runs_on_the_device_of_its_inputs(layers, name, call):
    from mlsafety.hardware import pick_device

    device = pick_device()  # the GPU where there is one, else the CPU
    out = call(layers, device)
    assert isinstance(out, torch.Tensor) and out.device.type == device.type, (
        f"{name}: inputs on {device} gave a result on {getattr(out, 'device', type(out).__name__)}; "
        f"create any new tensor on the input's device"
    )
    assert out.dtype == torch.float32, f"{name}: float32 inputs gave a {out.dtype} result"
