"""Specs for attacks.py: FGSM, PGD (L-inf and L2) and the L2 projection.

Run them with `make test-week3` (add IMPL=solution to see the reference pass).
Every failure message starts with the graded function it is about.
"""

import pytest
import torch
import torch.nn.functional as F

from mlsafety.grading import graded

GRADED = {"fgsm": "core", "pgd_linf": "core", "project_l2": "core", "pgd_l2": "stretch"}
pytestmark = pytest.mark.timeout(20)

EPS_INF = 0.1
EPS_L2 = 1.5


# --------------------------------------------------------------------------- #
# Independent references (written plainly, one sample at a time where it matters).
# --------------------------------------------------------------------------- #


def input_grad(model, x, y):
    x = x.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(model(x), y, reduction="sum")
    return torch.autograd.grad(loss, x)[0]


def reference_linf(model, x, y, eps, alpha, steps, targeted=False):
    x_adv = x.clone()
    for _ in range(steps):
        g = input_grad(model, x_adv, y)
        x_adv = x_adv + (-alpha if targeted else alpha) * g.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    return x_adv


def reference_l2(model, x, y, eps, alpha, steps):
    out = []
    for xi, yi in zip(x, y, strict=True):
        xi, yi = xi[None], yi[None]
        adv = xi.clone()
        for _ in range(steps):
            g = input_grad(model, adv, yi)
            adv = adv + alpha * g / max(g.norm().item(), 1e-12)
            d = adv - xi
            if d.norm() > eps:
                d = d * (eps / d.norm())
            adv = (xi + d).clamp(0, 1)
        out.append(adv)
    return torch.cat(out)


def run(attacks, name, model, x, y, **kw):
    """Call one attack with this file's standard budgets."""
    if name == "fgsm":
        return attacks.fgsm(model, x, y, kw.pop("eps", EPS_INF), **kw)
    if name == "pgd_linf":
        eps = kw.pop("eps", EPS_INF)
        return attacks.pgd_linf(
            model, x, y, eps, kw.pop("alpha", eps / 4), kw.pop("steps", 5), **kw
        )
    eps = kw.pop("eps", EPS_L2)
    return attacks.pgd_l2(model, x, y, eps, kw.pop("alpha", eps / 4), kw.pop("steps", 5), **kw)


def norms(delta, kind):
    flat = delta.flatten(1)
    return flat.abs().max(dim=1).values if kind == "linf" else flat.norm(dim=1)


def mismatch(a, b, tol=1e-4):
    return ((a - b).abs() > tol).float().mean().item()


ATTACKS = [
    pytest.param("fgsm", "linf", marks=graded("fgsm"), id="fgsm"),
    pytest.param("pgd_linf", "linf", marks=graded("pgd_linf"), id="pgd_linf"),
    pytest.param("pgd_l2", "l2", marks=graded("pgd_l2"), id="pgd_l2"),
]
PGD = [p for p in ATTACKS if p.values[0] != "fgsm"]


# --------------------------------------------------------------------------- #
# Invariants every attack keeps.
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("name,kind", ATTACKS)
def test_stays_inside_the_threat_model(attacks, model, digits, name, kind):
    x, y = digits
    eps = EPS_INF if kind == "linf" else EPS_L2
    kw = {} if name == "fgsm" else {"alpha": eps, "steps": 6, "random_start": True}
    x_adv = run(attacks, name, model, x, y, eps=eps, **kw)
    worst = norms(x_adv - x, kind).max().item()
    hint = "clip the perturbation" if name == "fgsm" else "did you project after every step?"
    assert worst <= eps + 1e-6, (
        f"{name}: perturbation exceeds eps={eps} ({'max |delta|' if kind == 'linf' else 'max ||delta||_2'}"
        f" = {worst:.4f}); {hint}"
    )


@pytest.mark.parametrize("name,kind", ATTACKS)
def test_images_stay_in_unit_range(attacks, model, digits, name, kind):
    x, y = digits  # digits have many pixels at exactly 0, so a missing clamp shows
    kw = {} if name == "fgsm" else {"random_start": True}
    x_adv = run(attacks, name, model, x, y, **kw)
    if name != "fgsm":  # the random start alone must stay in [0, 1] too
        start = run(attacks, name, model, x, y, steps=0, random_start=True)
        x_adv = torch.cat([x_adv, start])
    lo, hi = x_adv.min().item(), x_adv.max().item()
    assert lo >= -1e-6 and hi <= 1 + 1e-6, (
        f"{name}: adversarial images leave [0, 1] (min {lo:.4f}, max {hi:.4f}); clamp x_adv to [0, 1]"
        + ("" if name == "fgsm" else " after every step")
    )


@pytest.mark.parametrize("name,kind", ATTACKS)
def test_output_is_like_the_input(attacks, model, digits, name, kind):
    x, y = digits
    x_adv = run(attacks, name, model, x, y)
    assert isinstance(x_adv, torch.Tensor), (
        f"{name}: returned {type(x_adv).__name__}, expected a tensor"
    )
    assert x_adv.shape == x.shape, (
        f"{name}: output shape {tuple(x_adv.shape)} != input shape {tuple(x.shape)}"
    )
    assert x_adv.dtype == x.dtype, f"{name}: output dtype {x_adv.dtype} != input dtype {x.dtype}"
    assert x_adv.device == x.device, f"{name}: output on {x_adv.device}, input on {x.device}"
    assert not x_adv.requires_grad, f"{name}: output still requires grad; return x_adv.detach()"


@pytest.mark.parametrize("name,kind", ATTACKS)
def test_runs_on_the_device_of_its_inputs(attacks, model, digits, name, kind):
    from mlsafety.hardware import pick_device

    device = pick_device()  # the GPU where there is one, else the CPU
    x, y = digits[0][:8].to(device), digits[1][:8].to(device)
    model = model.to(device)
    kw = (
        {}
        if name == "fgsm"
        else {"random_start": True, "generator": torch.Generator(device).manual_seed(0)}
    )
    x_adv = run(attacks, name, model, x, y, **kw)
    assert x_adv.device == x.device, f"{name}: input on {x.device}, output on {x_adv.device}"
    size = norms(x_adv - x, kind).max().item()
    assert size <= (EPS_INF if kind == "linf" else EPS_L2) + 1e-5, (
        f"{name}: left the threat model on {device}"
    )


@pytest.mark.parametrize("name,kind", ATTACKS)
def test_input_is_not_modified(attacks, model, digits, name, kind):
    x, y = digits
    x, y = x.clone(), y.clone()
    before_x, before_y = x.clone(), y.clone()
    run(attacks, name, model, x, y)
    assert torch.equal(x, before_x), f"{name}: modified the input images in place; work on a copy"
    assert torch.equal(y, before_y), f"{name}: modified the labels in place"


@pytest.mark.parametrize("name,kind", ATTACKS)
def test_model_is_left_as_found(attacks, model, digits, name, kind):
    x, y = digits
    model.train()
    params = dict(model.named_parameters())
    for i, p in enumerate(params.values()):
        p.grad = torch.full_like(p, float(i + 1))
    weights = {k: p.detach().clone() for k, p in params.items()}
    run(attacks, name, model, x, y)
    assert model.training, (
        f"{name}: switched the model to eval mode; leave its mode as you found it"
    )
    for i, (k, p) in enumerate(params.items()):
        assert torch.equal(p.detach(), weights[k]), f"{name}: changed the model's weights ({k})"
        assert p.grad is not None and torch.all(p.grad == i + 1), (
            f"{name}: changed {k}.grad; take gradients with torch.autograd.grad(loss, x_adv) "
            f"instead of loss.backward()"
        )


@pytest.mark.parametrize("name,kind", ATTACKS)
def test_zero_budget_returns_the_input(attacks, model, digits, name, kind):
    x, y = digits
    kw = {} if name == "fgsm" else {"alpha": 0.05, "random_start": True}
    x_adv = run(attacks, name, model, x, y, eps=0.0, **kw)
    diff = (x_adv - x).abs().max().item()
    assert diff <= 1e-6, f"{name}: eps=0 must return the input unchanged (max change {diff:.4f})"


@pytest.mark.parametrize("name,kind", ATTACKS)
def test_untargeted_attack_increases_the_loss(attacks, model, digits, name, kind):
    x, y = digits
    x_adv = run(attacks, name, model, x, y)
    with torch.no_grad():
        clean = F.cross_entropy(model(x), y).item()
        adv = F.cross_entropy(model(x_adv), y).item()
    assert adv > clean + 0.1, (
        f"{name}: mean loss went from {clean:.3f} to {adv:.3f}; an untargeted attack must increase "
        f"it (step along +sign/+direction of the gradient of the loss w.r.t. the input)"
    )


@pytest.mark.parametrize("name,kind", ATTACKS)
def test_targeted_attack_raises_the_target_probability(attacks, model, digits, name, kind):
    x, y = digits
    target = (y + 1) % 10
    x_adv = run(attacks, name, model, x, target, targeted=True)
    with torch.no_grad():
        before = model(x).softmax(1).gather(1, target[:, None]).mean().item()
        after = model(x_adv).softmax(1).gather(1, target[:, None]).mean().item()
    assert after > before + 0.05, (
        f"{name}: targeted attack moved the mean target-class probability from {before:.3f} to "
        f"{after:.3f}; a targeted attack descends the loss towards the target label"
    )


@pytest.mark.parametrize("name,kind", ATTACKS)
def test_batch_result_equals_attacking_each_sample_alone(attacks, model, digits, name, kind):
    x, y = digits[0][:8], digits[1][:8]
    together = run(attacks, name, model, x, y)
    alone = torch.cat(
        [run(attacks, name, model, x[i : i + 1], y[i : i + 1]) for i in range(len(x))]
    )
    frac = mismatch(together, alone)
    assert frac < 0.005, (
        f"{name}: attacking the batch differs from attacking each sample alone ({frac:.1%} of pixels); "
        f"norms and steps must be computed per sample, never over the whole batch"
    )


# --------------------------------------------------------------------------- #
# Exact behaviour against the references.
# --------------------------------------------------------------------------- #


@graded("fgsm")
def test_fgsm_is_one_signed_gradient_step(attacks, model, digits):
    x, y = digits
    for targeted in (False, True):
        expected = reference_linf(model, x, y, EPS_INF, EPS_INF, 1, targeted)
        got = attacks.fgsm(model, x, y, EPS_INF, targeted=targeted)
        frac = mismatch(got, expected)
        assert frac < 0.01, (
            f"fgsm: {'targeted' if targeted else 'untargeted'} result differs from "
            f"clamp(x {'-' if targeted else '+'} eps * sign(grad), 0, 1) on {frac:.1%} of pixels"
        )


@pytest.mark.parametrize("targeted", [False, True], ids=["untargeted", "targeted"])
@graded("pgd_linf")
def test_pgd_linf_follows_the_projected_trajectory(attacks, model, digits, targeted):
    x, y = digits[0][:32], digits[1][:32]
    y = (y + 3) % 10 if targeted else y
    expected = reference_linf(model, x, y, EPS_INF, EPS_INF / 2, 5, targeted)
    got = attacks.pgd_linf(model, x, y, EPS_INF, EPS_INF / 2, 5, targeted=targeted)
    frac = mismatch(got, expected)
    assert frac < 0.01, (
        f"pgd_linf: differs from the reference PGD on {frac:.1%} of pixels (eps={EPS_INF}, "
        f"alpha={EPS_INF / 2}, 5 steps); after every signed step of size alpha, clip x_adv to "
        f"[x - eps, x + eps] and then to [0, 1]"
    )


@graded("pgd_l2")
def test_pgd_l2_follows_the_projected_trajectory(attacks, model, digits):
    x, y = digits[0][:16], digits[1][:16]
    expected = reference_l2(model, x, y, EPS_L2, EPS_L2 / 2, 5)
    got = attacks.pgd_l2(model, x, y, EPS_L2, EPS_L2 / 2, 5)
    err = (got - expected).flatten(1).norm(dim=1).max().item()
    assert err < 1e-3, (
        f"pgd_l2: differs from the reference L2 PGD (largest per-sample L2 gap {err:.4f}); step by "
        f"alpha * g / ||g|| per sample, project each sample onto the eps-ball, clamp to [0, 1], every step"
    )


@pytest.mark.parametrize("name,kind", PGD)
def test_random_start_is_reproducible_and_inside_the_ball(attacks, model, digits, gen, name, kind):
    x, y = digits
    eps = EPS_INF if kind == "linf" else EPS_L2
    first = run(attacks, name, model, x, y, steps=3, random_start=True, generator=gen(1))
    again = run(attacks, name, model, x, y, steps=3, random_start=True, generator=gen(1))
    other = run(attacks, name, model, x, y, steps=3, random_start=True, generator=gen(2))
    assert torch.equal(first, again), f"{name}: the same seeded generator gave different results"
    assert not torch.equal(first, other), (
        f"{name}: different generators gave identical results; draw the random start from `generator`"
    )
    grey = torch.full((16, 1, 28, 28), 0.5)  # away from 0 and 1, so clamping cannot hide the start
    start = run(
        attacks, name, model, grey, y[:16], eps=eps, steps=0, random_start=True, generator=gen(3)
    )
    delta = start - grey
    size = norms(delta, kind)
    assert size.max().item() <= eps + 1e-6, (
        f"{name}: the random start lies outside the eps-ball (size {size.max().item():.4f} > {eps})"
    )
    assert size.min().item() > 0, (
        f"{name}: random_start=True with steps=0 returned the input itself"
    )
    if kind == "linf":
        mean, spread = delta.mean().item(), delta.abs().mean().item()
        assert abs(mean) < 0.05 * eps and abs(spread - eps / 2) < 0.05 * eps, (
            f"{name}: the random start should be uniform on [-eps, eps] (mean {mean:.4f}, expected 0; "
            f"mean |delta| {spread:.4f}, expected {eps / 2:.4f})"
        )


# --------------------------------------------------------------------------- #
# project_l2
# --------------------------------------------------------------------------- #


@graded("project_l2")
def test_project_l2_on_hand_made_cases(attacks):
    delta = torch.zeros(3, 2, 2)
    delta[0, 0, 0] = 0.5  # inside the ball: unchanged
    delta[1] = torch.tensor([[3.0, 0.0], [0.0, 4.0]])  # norm 5: scaled to norm 1
    # delta[2] stays zero: must not become NaN
    out = attacks.project_l2(delta, 1.0)
    expected = torch.zeros(3, 2, 2)
    expected[0, 0, 0] = 0.5
    expected[1] = torch.tensor([[0.6, 0.0], [0.0, 0.8]])
    assert not torch.isnan(out).any(), (
        "project_l2: an all-zero perturbation gave NaN; guard the division"
    )
    assert torch.allclose(out[0], expected[0]), (
        f"project_l2: a perturbation inside the ball (norm 0.5 <= eps=1) must be unchanged, got norm "
        f"{out[0].norm().item():.4f}"
    )
    assert torch.allclose(out[1], expected[1], atol=1e-6), (
        f"project_l2: [[3, 0], [0, 4]] with eps=1 should become [[0.6, 0], [0, 0.8]], got "
        f"{out[1].tolist()}; scale by eps / ||delta||_2 with the norm over the whole sample"
    )
    assert torch.equal(out[2], expected[2]), "project_l2: an all-zero perturbation must stay zero"


@graded("project_l2")
def test_project_l2_is_per_sample(attacks, gen):
    delta = torch.randn(6, 3, 8, 8, generator=gen(0)) * torch.tensor(
        [0.01, 0.1, 1, 3, 10, 0.2]
    ).view(-1, 1, 1, 1)
    together = attacks.project_l2(delta, 1.0)
    alone = torch.cat([attacks.project_l2(delta[i : i + 1], 1.0) for i in range(6)])
    assert torch.allclose(together, alone, atol=1e-6), (
        "project_l2: projecting the batch differs from projecting each sample alone; use one norm "
        "per sample (over all its dimensions), not the norm of the whole batch"
    )
    n_in, n_out = delta.flatten(1).norm(dim=1), together.flatten(1).norm(dim=1)
    assert torch.all(n_out <= 1.0 + 1e-6), (
        f"project_l2: norms after projection {n_out.tolist()} exceed eps=1"
    )
    assert torch.allclose(n_out, n_in.clamp(max=1.0), atol=1e-5), (
        f"project_l2: expected norms {n_in.clamp(max=1.0).tolist()}, got {n_out.tolist()}"
    )
    cos = F.cosine_similarity(together.flatten(1), delta.flatten(1), dim=1)
    assert torch.all(cos > 1 - 1e-5), (
        "project_l2: the projection changed the direction of a perturbation"
    )


@graded("project_l2")
def test_project_l2_leaves_its_input_alone(attacks, gen):
    delta = torch.randn(4, 1, 5, 5, generator=gen(1)) * 3
    before = delta.clone()
    out = attacks.project_l2(delta, 0.5)
    assert torch.equal(delta, before), "project_l2: modified delta in place; return a new tensor"
    assert out.shape == delta.shape and out.dtype == delta.dtype, (
        "project_l2: output shape/dtype differ from input"
    )
    zero = attacks.project_l2(delta, 0.0)
    assert torch.allclose(zero, torch.zeros_like(delta)), (
        "project_l2: eps=0 must give all-zero perturbations"
    )
    twice = attacks.project_l2(out, 0.5)
    assert torch.allclose(twice, out, atol=1e-6), "project_l2: projecting twice must change nothing"


# --------------------------------------------------------------------------- #
# On the pretrained checkpoint.
# --------------------------------------------------------------------------- #


def accuracy(model, x, y):
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


@graded("pgd_linf")
def test_pgd_is_stronger_than_fgsm_on_the_checkpoint(attacks, model, digits):
    x, y = digits
    clean = accuracy(model, x, y)
    fgsm_acc = accuracy(model, reference_linf(model, x, y, EPS_INF, EPS_INF, 1), y)
    pgd_acc = accuracy(model, attacks.pgd_linf(model, x, y, EPS_INF, EPS_INF / 4, 10), y)
    assert fgsm_acc < clean, (
        "the checkpoint is not vulnerable to FGSM; rebuild it with `make assets`"
    )
    assert pgd_acc <= fgsm_acc, (
        f"pgd_linf: accuracy under 10-step PGD ({pgd_acc:.2f}) should be at most under FGSM "
        f"({fgsm_acc:.2f}) at the same eps={EPS_INF}"
    )


@graded("pgd_linf")
def test_pgd_accuracy_falls_as_steps_grow(attacks, model, digits):
    x, y = digits
    accs = [
        accuracy(model, attacks.pgd_linf(model, x, y, EPS_INF, EPS_INF / 8, s), y)
        for s in (1, 4, 16)
    ]
    assert accs[0] > accs[2] and all(
        a >= b - 1 / len(y) for a, b in zip(accs, accs[1:], strict=False)
    ), (
        f"pgd_linf: accuracy after 1, 4, 16 steps is {[round(a, 3) for a in accs]}; "
        f"it should fall as the attack takes more steps"
    )


# --------------------------------------------------------------------------- #
# Where the model is queried, and the documented edge cases.
# --------------------------------------------------------------------------- #


class Queries(torch.nn.Module):
    """Wraps a model and records every input it is asked about, with its mode."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.inputs, self.modes = inner, [], []

    def forward(self, x):
        self.inputs.append(x.detach().clone())
        self.modes.append(self.training)
        return self.inner(x)


@pytest.mark.parametrize("name,kind", ATTACKS)
def test_model_is_queried_as_given_inside_the_threat_model(attacks, model, digits, name, kind):
    # digits have many pixels at exactly 0: an unclamped start leaves [0, 1]
    x, y = digits[0][:8], digits[1][:8]
    eps = EPS_INF if kind == "linf" else EPS_L2
    spy = Queries(model).train()
    kw = (
        {}
        if name == "fgsm"
        else {
            "alpha": eps,
            "steps": 2,
            "random_start": True,
            "generator": torch.Generator().manual_seed(0),
        }
    )
    run(attacks, name, spy, x, y, eps=eps, **kw)
    assert spy.inputs, f"{name}: never called the model"
    assert all(spy.modes), (
        f"{name}: the model was in train mode but was called in eval mode; attacks use the model as "
        f"given and never call model.eval()"
    )
    for q in spy.inputs:
        if q.shape != x.shape:
            continue  # a correct attack may query sample by sample
        lo, hi = q.min().item(), q.max().item()
        size = norms(q - x, kind).max().item()
        assert lo >= -1e-6 and hi <= 1 + 1e-6, (
            f"{name}: the model was asked for a gradient at an image outside [0, 1] (min {lo:.4f}, "
            f"max {hi:.4f}); clamp the start point and every step to [0, 1] before the next gradient"
        )
        assert size <= eps + 1e-6, (
            f"{name}: the model was asked for a gradient at a point outside the eps-ball "
            f"(size {size:.4f} > eps={eps}); project after every step, not only at the end"
        )


@pytest.mark.parametrize("name,kind", ATTACKS)
def test_float64_images_give_float64_adversarial_images(attacks, model, digits, name, kind):
    x, y = digits[0][:4].double(), digits[1][:4]
    x_adv = run(attacks, name, model.double(), x, y, **({} if name == "fgsm" else {"steps": 2}))
    assert x_adv.dtype == torch.float64, (
        f"{name}: float64 images gave {x_adv.dtype} adversarial images; keep the dtype of x (no "
        f".float() and no tensors created without dtype=x.dtype)"
    )
    eps = EPS_INF if kind == "linf" else EPS_L2
    assert norms(x_adv - x, kind).max().item() <= eps + 1e-9, (
        f"{name}: left the threat model in float64"
    )


@pytest.mark.parametrize("name,kind", PGD)
def test_zero_steps_return_the_start_point(attacks, model, digits, name, kind):
    x, y = digits
    out = run(attacks, name, model, x, y, steps=0)
    diff = (out - x).abs().max().item()
    assert diff == 0, (
        f"{name}: steps=0 without a random start must return x itself (max change {diff:.4f}); "
        f"take exactly `steps` gradient steps"
    )


@pytest.mark.parametrize("name,kind", PGD)
def test_random_start_draws_every_entry(attacks, model, digits, gen, name, kind):
    grey = torch.full((8, 1, 28, 28), 0.5)
    start = run(
        attacks, name, model, grey, digits[1][:8], steps=0, random_start=True, generator=gen(4)
    )
    delta = (start - grey).flatten(1)
    same = [i for i in range(1, 8) if torch.allclose(delta[i], delta[0])]
    assert not same, (
        f"{name}: samples 0 and {same[0]} got the same random start; draw the start for every entry of "
        f"x (shape {tuple(grey.shape)}), not one image-shaped draw shared by the batch"
    )


@pytest.mark.parametrize("name,kind", PGD)
def test_random_start_without_generator_uses_the_global_generator(
    attacks, model, digits, name, kind
):
    x, y = digits[0][:4], digits[1][:4]
    with torch.random.fork_rng(devices=[]):
        starts = []
        for seed in (7, 7, 8):
            torch.manual_seed(seed)
            starts.append(run(attacks, name, model, x, y, steps=0, random_start=True))
    assert torch.equal(starts[0], starts[1]), (
        f"{name}: with generator=None, the same torch.manual_seed gave different random starts; "
        f"pass generator=None through to torch.rand/randn (torch's global generator)"
    )
    assert not torch.equal(starts[0], starts[2]), (
        f"{name}: with generator=None, torch.manual_seed(7) and (8) gave the same random start; use "
        f"torch's global generator, not a fixed seed of your own"
    )


@graded("pgd_l2")
def test_pgd_l2_random_start_radius_is_uniform(attacks, model, gen):
    eps, n = EPS_L2, 256
    grey = torch.full((n, 1, 28, 28), 0.5)  # no clamping: each start keeps the drawn radius
    y = torch.zeros(n, dtype=torch.int64)
    delta = run(
        attacks, "pgd_l2", model, grey, y, eps=eps, steps=0, random_start=True, generator=gen(5)
    )
    delta = (delta - grey).flatten(1)
    r = delta.norm(dim=1) / eps
    assert abs(r.mean().item() - 0.5) < 0.08 and r.std().item() > 0.2, (
        f"pgd_l2: random start radii / eps have mean {r.mean().item():.3f} and std {r.std().item():.3f} "
        f"over {n} samples; expected u ~ Uniform(0, 1) per sample (mean 0.5, std 0.29): scale a unit "
        f"direction by eps * u with one u per sample"
    )
    centre = delta.mean().item() / eps
    assert abs(centre) < 0.005, (
        f"pgd_l2: random start entries average {centre:.4f} * eps, expected about 0; draw the "
        f"direction from a standard normal (torch.randn), not torch.rand"
    )


class DeadBelowOne(torch.nn.Module):
    """Two logits (h, -h) with h = relu(sum of pixels - 1): on an image whose
    pixels sum to less than 1 the gradient is exactly zero."""

    def forward(self, x):
        h = torch.relu(x.flatten(1).sum(1, keepdim=True) - 1)
        return torch.cat([h, -h], dim=1)


@graded("pgd_l2")
def test_pgd_l2_zero_gradient_gives_zero_step(attacks):
    x = torch.zeros(2, 1, 4, 4)
    x[1] = 0.5  # pixel sum 8: the same negative gradient on every pixel
    y = torch.zeros(2, dtype=torch.int64)
    out = attacks.pgd_l2(DeadBelowOne(), x, y, 1.0, 0.4, 1)
    assert not torch.isnan(out).any(), (
        "pgd_l2: a sample whose gradient is exactly zero gave NaN; guard the division by ||g||"
    )
    assert torch.equal(out[0], x[0]), (
        f"pgd_l2: a zero gradient must give a zero step, but the black image moved by "
        f"{(out[0] - x[0]).norm().item():.4f}"
    )
    moved = (out[1] - x[1]).norm().item()
    assert abs(moved - 0.4) < 1e-5, (
        f"pgd_l2: the other sample should move by alpha=0.4 along its unit gradient, moved {moved:.4f}"
    )


@graded("project_l2")
def test_project_l2_returns_a_new_tensor_like_delta(attacks, gen):
    from mlsafety.hardware import pick_device

    device = pick_device()
    delta = (torch.randn(5, 7, generator=gen(6), dtype=torch.float64) * 0.1).to(device)
    out = attacks.project_l2(delta, 10.0)  # every sample inside the ball
    assert (
        isinstance(out, torch.Tensor) and out.dtype == torch.float64 and out.device == delta.device
    ), (
        f"project_l2: float64 (N, D) input on {delta.device} gave "
        f"{getattr(out, 'dtype', type(out).__name__)} on {getattr(out, 'device', '?')}; keep dtype and device"
    )
    assert torch.equal(out, delta), (
        "project_l2: perturbations inside the ball must come back unchanged"
    )
    assert out.data_ptr() != delta.data_ptr(), (
        "project_l2: returned delta itself when every sample was inside the ball; return a new tensor "
        "(a caller may modify the result)"
    )
