"""Specs for dpsgd.py: per-sample gradients, per-example clipping, the DP-SGD
step and Poisson sampling.

Run them with `make test-security1` (add IMPL=solution to see the reference pass).
Every failure message starts with the graded function it is about.
"""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from mlsafety.grading import graded

GRADED = {
    "per_sample_gradients": "core",
    "clip_per_sample": "core",
    "dp_sgd_step": "core",
    "poisson_sample": "stretch",
}
pytestmark = pytest.mark.timeout(30)


# --------------------------------------------------------------------------- #
# Independent references: one example at a time, with ordinary autograd.
# --------------------------------------------------------------------------- #


def loop_gradients(model, x, y) -> dict[str, torch.Tensor]:
    """N backward passes of one example each."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    rows = {n: [] for n in names}
    model = copy.deepcopy(model)
    for i in range(len(x)):
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        params = dict(model.named_parameters())
        for n in names:
            rows[n].append(params[n].grad.detach().clone())
    return {n: torch.stack(r) for n, r in rows.items()}


def joint_norms(grads) -> torch.Tensor:
    return torch.stack([g.flatten(1).double().pow(2).sum(1) for g in grads.values()]).sum(0).sqrt()


def reference_step_update(model, x, y, max_norm, expected):
    """The noiseless DP-SGD gradient: clip each example's gradient, sum, divide."""
    grads = loop_gradients(model, x, y)
    norms = joint_norms(grads)
    factor = torch.clamp(max_norm / norms, max=1.0)
    return {
        n: (g * factor.to(g.dtype).view(-1, *([1] * (g.dim() - 1)))).sum(0) / expected
        for n, g in grads.items()
    }


def gradient_dict(function, grads, reference):
    assert isinstance(grads, dict), f"{function}: returned {type(grads).__name__}, expected a dict"
    assert list(grads) == list(reference), (
        f"{function}: keys {list(grads)}, expected {list(reference)} (one per parameter that "
        f"requires grad, in the order of model.named_parameters())"
    )
    for n, g in grads.items():
        assert g.shape == reference[n].shape, (
            f"{function}: {n} has shape {tuple(g.shape)}, expected {tuple(reference[n].shape)} "
            f"(examples first)"
        )
    return grads


def digits_batch(digits16, n=10):
    return digits16[0][:n], digits16[1][:n]


def random_grads(gen, n=6, seed=0, scale=1.0):
    g = gen(seed)
    return {
        "conv.weight": scale * torch.randn(n, 4, 1, 3, 3, generator=g),
        "conv.bias": scale * torch.randn(n, 4, generator=g),
        "fc.weight": scale * torch.randn(n, 3, 7, generator=g),
    }


# --------------------------------------------------------------------------- #
# per_sample_gradients
# --------------------------------------------------------------------------- #


@graded("per_sample_gradients")
def test_per_sample_gradients_equal_one_backward_pass_per_example(dpsgd, tiny_cnn, digits16):
    x, y = digits_batch(digits16)
    want = loop_gradients(tiny_cnn, x, y)
    got = gradient_dict("per_sample_gradients", dpsgd.per_sample_gradients(tiny_cnn, x, y), want)
    for n in want:
        scale = want[n].abs().max().item()
        worst = (got[n] - want[n]).abs().max().item()
        assert worst <= 1e-4 * max(scale, 1e-3), (
            f"per_sample_gradients: {n} differs from one backward pass per example by up to "
            f"{worst:.3g} (largest entry {scale:.3g}); row i must be the gradient of example i's "
            f"loss ALONE (not the batch mean)"
        )


@graded("per_sample_gradients")
def test_per_sample_gradients_skip_frozen_parameters(dpsgd, mlp, gen):
    g = gen(1)
    x, y = torch.randn(9, 12, generator=g), torch.randint(0, 5, (9,), generator=g)
    mlp.eval()  # dropout off, so the reference loop computes the same function
    want = loop_gradients(mlp, x, y)
    got = gradient_dict("per_sample_gradients", dpsgd.per_sample_gradients(mlp, x, y), want)
    worst = max((got[n] - want[n]).abs().max().item() for n in want)
    assert worst < 1e-5, f"per_sample_gradients: differs from the loop by up to {worst:.3g}"


@graded("per_sample_gradients")
def test_per_sample_gradients_leave_the_model_and_inputs_as_found(dpsgd, tiny_cnn, digits16):
    x, y = digits_batch(digits16, 6)
    before = x.clone(), y.clone()
    tiny_cnn.train()
    for p in tiny_cnn.parameters():
        p.grad = torch.full_like(p, 0.5)
    weights = [p.detach().clone() for p in tiny_cnn.parameters()]
    grads = dpsgd.per_sample_gradients(tiny_cnn, x, y)
    assert all(torch.equal(p.grad, torch.full_like(p, 0.5)) for p in tiny_cnn.parameters()), (
        "per_sample_gradients: changed the parameters' .grad; use torch.func (grad and vmap), "
        "not loss.backward()"
    )
    assert all(torch.equal(a, b) for a, b in zip(weights, tiny_cnn.parameters(), strict=True)), (
        "per_sample_gradients: changed the weights"
    )
    assert tiny_cnn.training, "per_sample_gradients: changed the model's mode (train -> eval)"
    assert torch.equal(x, before[0]) and torch.equal(y, before[1]), (
        "per_sample_gradients: modified x or y in place"
    )
    assert not any(g.requires_grad for g in grads.values()), (
        "per_sample_gradients: the gradients still require grad; detach them"
    )
    tiny_cnn.eval()
    dpsgd.per_sample_gradients(tiny_cnn, x, y)
    assert not tiny_cnn.training, "per_sample_gradients: changed the model's mode (eval -> train)"


@graded("per_sample_gradients")
def test_per_sample_gradients_run_on_the_device_of_the_model(dpsgd, tiny_cnn, digits16):
    from mlsafety.hardware import pick_device

    device = pick_device()
    x, y = digits_batch(digits16, 4)
    grads = dpsgd.per_sample_gradients(tiny_cnn.to(device), x.to(device), y.to(device))
    for n, g in grads.items():
        assert g.device.type == device.type, (
            f"per_sample_gradients: {n} on {g.device}, not {device}"
        )


@graded("per_sample_gradients")
def test_per_sample_gradients_reject_mismatched_lengths(dpsgd, tiny_cnn, digits16):
    x, y = digits_batch(digits16, 6)
    for n_x, n_y in ((6, 5), (0, 3)):
        with pytest.raises(ValueError):
            dpsgd.per_sample_gradients(tiny_cnn, x[:n_x], y[:n_y])
            pytest.fail(
                f"per_sample_gradients: {n_x} inputs with {n_y} labels must raise ValueError",
                pytrace=False,
            )


# --------------------------------------------------------------------------- #
# clip_per_sample
# --------------------------------------------------------------------------- #


@graded("clip_per_sample")
def test_clipping_bounds_every_example_and_keeps_its_direction(dpsgd, gen):
    grads = random_grads(gen, n=8, scale=0.6)
    norms = joint_norms(grads)
    bound = float(norms.median())  # half the examples above the bound, half below
    clipped = gradient_dict("clip_per_sample", dpsgd.clip_per_sample(grads, bound), grads)
    after = joint_norms(clipped)
    assert after.max().item() <= bound * (1 + 1e-5), (
        f"clip_per_sample: an example's joint norm is {after.max().item():.4f} after clipping to "
        f"{bound:.4f}; the norm of example i is taken over ALL parameters together"
    )
    for n, g in grads.items():
        factor = torch.clamp(bound / norms, max=1.0).float().view(-1, *([1] * (g.dim() - 1)))
        worst = (clipped[n] - g * factor).abs().max().item()
        assert worst < 1e-5, (
            f"clip_per_sample: {n} differs from g_i * min(1, C / ||g_i||) by up to {worst:.3g}; "
            f"each example is scaled on its own, by one factor for all its parameters"
        )


@graded("clip_per_sample")
def test_clipping_leaves_small_gradients_exactly_alone(dpsgd, gen):
    grads = random_grads(gen, n=5, seed=1, scale=0.01)
    grads["conv.bias"][2] = 0.0
    for n in grads:
        grads[n][3] = 0.0  # an all-zero example
    clipped = dpsgd.clip_per_sample(grads, 100.0)
    for n, g in grads.items():
        assert torch.equal(clipped[n], g), (
            f"clip_per_sample: gradients far inside the bound must come back unchanged, {n} "
            f"changed by up to {(clipped[n] - g).abs().max().item():.3g}"
        )
        assert clipped[n].dtype == g.dtype, f"clip_per_sample: {n} came back as {clipped[n].dtype}"
    tight = dpsgd.clip_per_sample(grads, 1e-3)
    assert all(bool(torch.isfinite(t).all()) for t in tight.values()), (
        "clip_per_sample: an all-zero gradient gave NaN or inf (dividing by a zero norm?)"
    )
    assert all(torch.equal(t[3], torch.zeros_like(t[3])) for t in tight.values()), (
        "clip_per_sample: an all-zero example must stay zero"
    )


@graded("clip_per_sample")
def test_clipping_uses_the_joint_norm_over_all_parameters(dpsgd):
    # each parameter's part has norm 0.8 < C = 1, but together they have norm 1.6
    grads = {"a": torch.tensor([[0.8, 0.0]]), "b": torch.tensor([[0.0, 0.0, 0.8]])}
    grads = {n: g.repeat(2, 1) for n, g in grads.items()}
    for n in grads:
        grads[n][1] *= 0.5  # example 1: joint norm 0.8 < 1, left alone
    grads["c"] = torch.tensor([[0.0, -0.8, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    clipped = dpsgd.clip_per_sample(grads, 1.0)
    total = math.sqrt(3 * 0.8**2)
    for n in grads:
        want0 = grads[n][0] / total
        assert torch.allclose(clipped[n][0], want0, atol=1e-6), (
            f"clip_per_sample: example 0 has parts of norm 0.8 in three parameters (each within "
            f"C = 1) but a joint norm of {total:.3f}; {n}[0] should be {want0.tolist()}, got "
            f"{clipped[n][0].tolist()}; clip the joint norm, not each parameter's"
        )
        assert torch.equal(clipped[n][1], grads[n][1]), (
            f"clip_per_sample: example 1 (joint norm {math.sqrt(2 * 0.4**2):.3f} < 1) was changed: "
            f"{n}[1] = {clipped[n][1].tolist()}; clip each example on its own, not the batch"
        )


@graded("clip_per_sample")
def test_clipping_returns_new_tensors(dpsgd, gen):
    grads = random_grads(gen, n=4, seed=2)
    before = {n: g.clone() for n, g in grads.items()}
    clipped = dpsgd.clip_per_sample(grads, 0.1)
    assert all(torch.equal(grads[n], before[n]) for n in grads), (
        "clip_per_sample: modified the input gradients in place; return new tensors"
    )
    assert list(grads) == list(before) and clipped is not grads, (
        "clip_per_sample: return a new dict"
    )


@graded("clip_per_sample")
def test_clipping_rejects_a_bound_that_is_not_positive(dpsgd, gen):
    grads = random_grads(gen, n=3)
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError):
            dpsgd.clip_per_sample(grads, bad)
            pytest.fail(
                f"clip_per_sample: max_norm={bad} is not positive; raise ValueError",
                pytrace=False,
            )


@graded("clip_per_sample")
def test_clipping_rejects_gradients_of_different_batch_sizes(dpsgd, gen):
    grads = random_grads(gen, n=3)
    grads["conv.bias"] = grads["conv.bias"][:2]
    with pytest.raises(ValueError):
        dpsgd.clip_per_sample(grads, 1.0)
        pytest.fail(
            "clip_per_sample: tensors with 3 and 2 examples must raise ValueError", pytrace=False
        )


# --------------------------------------------------------------------------- #
# dp_sgd_step
# --------------------------------------------------------------------------- #


def step_with(dpsgd, model, x, y, lr=0.1, **kw):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    dpsgd.dp_sgd_step(model, opt, x, y, **kw)
    return model


def update(before, after) -> dict:
    return {n: (before[n] - p.detach()) for n, p in after.named_parameters()}


@graded("dp_sgd_step")
def test_dp_sgd_without_noise_or_clipping_is_plain_sgd(dpsgd, tiny_cnn, digits16):
    x, y = digits_batch(digits16, 12)
    plain = copy.deepcopy(tiny_cnn)
    opt = torch.optim.SGD(plain.parameters(), lr=0.1)
    F.cross_entropy(plain(x), y).backward()
    opt.step()
    returned = dpsgd.dp_sgd_step(
        tiny_cnn,
        torch.optim.SGD(tiny_cnn.parameters(), lr=0.1),
        x,
        y,
        max_norm=1e6,
        noise_multiplier=0.0,
        expected_batch_size=12,
        generator=torch.Generator().manual_seed(0),
    )
    assert returned is None, f"dp_sgd_step: returns None, got {returned!r}"
    for (n, a), b in zip(tiny_cnn.named_parameters(), plain.parameters(), strict=True):
        worst = (a - b).abs().max().item()
        assert worst < 1e-6, (
            f"dp_sgd_step: with noise_multiplier=0, a huge max_norm and expected_batch_size = "
            f"len(x) one step must equal SGD on the mean cross-entropy; {n} differs by {worst:.3g}"
        )


@graded("dp_sgd_step")
def test_dp_sgd_clips_sums_and_divides_by_the_expected_batch_size(dpsgd, tiny_cnn, digits16):
    x, y = digits_batch(digits16, 10)
    before = {n: p.detach().clone() for n, p in tiny_cnn.named_parameters()}
    want = reference_step_update(tiny_cnn, x, y, max_norm=0.05, expected=25)
    step_with(
        dpsgd,
        tiny_cnn,
        x,
        y,
        lr=1.0,
        max_norm=0.05,
        noise_multiplier=0.0,
        expected_batch_size=25,
        generator=torch.Generator().manual_seed(0),
    )
    got = update(before, tiny_cnn)
    for n in want:
        ratio = (got[n].norm() / want[n].norm().clamp_min(1e-12)).item()
        worst = (got[n] - want[n]).abs().max().item()
        assert worst < 1e-6, (
            f"dp_sgd_step: without noise the update of {n} must be (sum of the per-example "
            f"gradients clipped to C) / expected_batch_size; it differs by up to {worst:.3g} "
            f"(norm ratio yours / expected = {ratio:.3f}; 0.4 = dividing by len(x) = 10 instead "
            f"of 25)"
        )


@graded("dp_sgd_step")
def test_dp_sgd_noise_has_standard_deviation_sigma_times_c(dpsgd, gen):
    from torch import nn

    model = nn.Linear(200, 100)  # 20100 coordinates of noise
    x, y = torch.zeros(0, 200), torch.zeros(0, dtype=torch.long)  # an empty batch: noise alone
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    sigma, c, b = 1.3, 2.5, 8
    step_with(
        dpsgd,
        model,
        x,
        y,
        lr=1.0,
        max_norm=c,
        noise_multiplier=sigma,
        expected_batch_size=b,
        generator=gen(11),
    )
    noise = torch.cat([d.flatten() for d in update(before, model).values()])
    want = sigma * c / b
    sd, mean = noise.std().item(), noise.mean().item()
    # the sample std of 20100 normal draws is within 2% of the truth far beyond 4 sigma
    assert abs(sd / want - 1) < 0.02 and abs(mean) < 4 * want / math.sqrt(len(noise)), (
        f"dp_sgd_step: on an empty batch the update is the noise alone, with standard "
        f"deviation noise_multiplier * max_norm / expected_batch_size = {sigma} * {c} / {b} = "
        f"{want:.4f}; measured {sd:.4f} (mean {mean:.2g}); "
        + (
            "it looks like sigma without C"
            if abs(sd / (sigma / b) - 1) < 0.02
            else "the std of the noise is sigma * C, before the division"
        )
    )


@graded("dp_sgd_step")
def test_dp_sgd_noise_comes_from_the_generator(dpsgd, tiny_cnn, digits16, gen):
    x, y = digits_batch(digits16, 4)
    kw = {"max_norm": 1.0, "noise_multiplier": 1.0, "expected_batch_size": 4}
    runs = []
    for run, seed in enumerate((5, 5, 6)):
        model = copy.deepcopy(tiny_cnn)
        torch.manual_seed(100 + run)  # the global generator must not matter
        step_with(dpsgd, model, x, y, generator=gen(seed), **kw)
        runs.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(runs[0], runs[1]), (
        "dp_sgd_step: the same seeded generator gave two different steps; draw the noise from "
        "`generator`, not from torch's global generator"
    )
    assert not torch.equal(runs[0], runs[2]), (
        "dp_sgd_step: two different generators gave the same step; is there any noise?"
    )


@graded("dp_sgd_step")
def test_dp_sgd_replaces_stale_gradients_and_keeps_the_mode(dpsgd, mlp, gen):
    g = gen(4)
    x, y = torch.randn(6, 12, generator=g), torch.randint(0, 5, (6,), generator=g)
    mlp.eval()
    clean = copy.deepcopy(mlp)
    frozen = mlp[0].weight.detach().clone()
    for p in mlp.parameters():
        if p.requires_grad:
            p.grad = torch.full_like(p, 3.0)  # left over from an earlier step
    kw = {"max_norm": 0.5, "noise_multiplier": 0.0, "expected_batch_size": 6, "generator": g}
    step_with(dpsgd, mlp, x, y, **kw)
    step_with(dpsgd, clean, x, y, **kw)
    for (n, a), b in zip(mlp.named_parameters(), clean.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-7), (
            f"dp_sgd_step: stale .grad values changed the step of {n}; write the DP gradient "
            f"into .grad (replace, do not add)"
        )
    assert torch.equal(mlp[0].weight, frozen), "dp_sgd_step: moved a frozen parameter"
    assert not mlp.training, "dp_sgd_step: changed the model's mode"


@graded("dp_sgd_step")
def test_dp_sgd_rejects_a_bound_that_is_not_positive(dpsgd, tiny_cnn, digits16):
    x, y = digits_batch(digits16, 2)
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError):
            step_with(
                dpsgd, tiny_cnn, x, y, max_norm=bad, noise_multiplier=1.0, expected_batch_size=2
            )
            pytest.fail(f"dp_sgd_step: max_norm={bad} must raise ValueError", pytrace=False)


@graded("dp_sgd_step")
def test_dp_sgd_rejects_a_negative_noise_multiplier(dpsgd, tiny_cnn, digits16):
    x, y = digits_batch(digits16, 2)
    with pytest.raises(ValueError):
        step_with(dpsgd, tiny_cnn, x, y, max_norm=1.0, noise_multiplier=-0.5, expected_batch_size=2)
        pytest.fail("dp_sgd_step: noise_multiplier=-0.5 must raise ValueError", pytrace=False)


@graded("dp_sgd_step")
def test_dp_sgd_rejects_an_expected_batch_size_below_one(dpsgd, tiny_cnn, digits16):
    x, y = digits_batch(digits16, 2)
    for bad in (0, -4):
        with pytest.raises(ValueError):
            step_with(
                dpsgd, tiny_cnn, x, y, max_norm=1.0, noise_multiplier=1.0, expected_batch_size=bad
            )
            pytest.fail(
                f"dp_sgd_step: expected_batch_size={bad} must raise ValueError", pytrace=False
            )


# --------------------------------------------------------------------------- #
# poisson_sample
# --------------------------------------------------------------------------- #


@graded("poisson_sample")
def test_poisson_sample_draws_from_the_generator(dpsgd, gen):
    torch.manual_seed(0)
    a = dpsgd.poisson_sample(500, 0.1, gen(3))
    torch.manual_seed(1)
    b = dpsgd.poisson_sample(500, 0.1, gen(3))
    assert isinstance(a, torch.Tensor) and a.dtype == torch.int64, (
        f"poisson_sample: expected an int64 tensor of indices, got {getattr(a, 'dtype', type(a))}"
    )
    assert torch.equal(a, b), "poisson_sample: the same seeded generator gave different batches"
    want = torch.nonzero(torch.rand(500, generator=gen(3)) < 0.1).flatten()
    assert torch.equal(a, want), (
        f"poisson_sample: expected the indices i with torch.rand(n, generator=generator)[i] < q "
        f"(ascending; {len(want)} of them), got {len(a)} indices starting {a[:5].tolist()}"
    )
    assert not torch.equal(a, dpsgd.poisson_sample(500, 0.1, gen(4))), (
        "poisson_sample: two different generators gave the same batch"
    )


@graded("poisson_sample")
def test_poisson_sample_has_a_random_size_with_the_right_mean_and_variance(dpsgd, gen):
    n, q, draws = 400, 0.05, 400
    g = gen(8)
    sizes = []
    for _ in range(draws):
        batch = dpsgd.poisson_sample(n, q, g)
        assert bool((batch[1:] > batch[:-1]).all()) and (
            len(batch) == 0 or 0 <= batch.min() <= batch.max() < n
        ), (
            f"poisson_sample: indices must be ascending, without repeats, in [0, {n}): {batch.tolist()}"
        )
        sizes.append(len(batch))
    sizes = torch.tensor(sizes, dtype=torch.float64)
    mean, var = sizes.mean().item(), sizes.var().item()
    want_var = n * q * (1 - q)
    assert abs(mean - n * q) < 4 * math.sqrt(want_var / draws) and 0.6 < var / want_var < 1.5, (
        f"poisson_sample: over {draws} batches of n={n} at q={q} the size should have mean "
        f"{n * q:.1f} and variance {want_var:.1f} (binomial); measured mean {mean:.2f} and "
        f"variance {var:.2f} (a variance near 0 means a fixed batch size: every example must be "
        f"drawn independently)"
    )
    everyone = dpsgd.poisson_sample(50, 1.0, g)
    assert torch.equal(everyone, torch.arange(50)), "poisson_sample: q=1 keeps everyone"
    empty = dpsgd.poisson_sample(0, 0.5, g)
    assert len(empty) == 0 and empty.dtype == torch.int64, (
        "poisson_sample: n=0 gives an empty int64 tensor"
    )


@graded("poisson_sample")
def test_poisson_sample_rejects_rates_outside_zero_one(dpsgd, gen):
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError):
            dpsgd.poisson_sample(10, bad, gen(0))
            pytest.fail(
                f"poisson_sample: sample_rate={bad} is not in (0, 1]; raise ValueError",
                pytrace=False,
            )
