"""Specs for optimizers.py: sgd_step and adam_step.

Each update rule runs for 20 steps on a small non-convex problem, next to
torch.optim's own implementation of the same rule (its functional form, the
code that ``torch.optim.SGD.step()`` and ``torch.optim.Adam.step()`` run),
and the two trajectories must agree to 1e-5 at every step.

Run them with `make test-week1` (add IMPL=solution to see the reference pass).
Every failure message starts with the graded function it is about.
"""

import pytest
import torch

from mlsafety.grading import graded

GRADED = {"sgd_step": "core", "adam_step": "stretch"}
pytestmark = pytest.mark.timeout(20)

STEPS = 20
RULE_MODULES = ("sgd", "adam", "adamw")  # torch.optim.<m>.<m>: the functional update rules
SHAPES = [(3, 4), (4,), (2, 2, 3)]
SGD_CONFIGS = [
    {"lr": 0.05},
    {"lr": 0.05, "momentum": 0.9},
    {"lr": 0.05, "weight_decay": 0.1},
    {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.1},
    {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.1, "nesterov": True},
]
ADAM_CONFIGS = [
    {"lr": 0.05},
    {"lr": 0.05, "betas": (0.8, 0.99)},
    {"lr": 0.05, "eps": 1e-2},
    {"lr": 0.05, "weight_decay": 0.1},
    {"lr": 0.05, "weight_decay": 0.1, "decoupled": True},
]


def config_id(config):
    return ",".join(f"{k}={v}" for k, v in config.items())


def describe(config, kind):
    settings = ", ".join(f"{k}={v}" for k, v in config.items() if k != "decoupled")
    if kind == "sgd":
        return f"torch.optim.SGD({settings})"
    return f"torch.optim.{'AdamW' if config.get('decoupled') else 'Adam'}({settings})"


# --------------------------------------------------------------------------- #
# The problem and the torch.optim references.
# --------------------------------------------------------------------------- #


def problem(seed=0, dtype=torch.float64):
    """Starting parameters and the coefficients of a small non-convex loss."""
    g = torch.Generator().manual_seed(seed)
    start = [torch.randn(s, generator=g, dtype=dtype) for s in SHAPES]
    coef = [torch.randn(s, generator=g, dtype=dtype) * 0.7 for s in SHAPES]
    return start, coef


def loss_of(params, coef):
    return sum(
        (torch.sin(p * c) + 0.5 * (p - c) ** 2).sum() for p, c in zip(params, coef, strict=True)
    )


def reference_sgd(params, slots, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
    from torch.optim.sgd import sgd

    with torch.no_grad():
        sgd(
            params,
            [p.grad for p in params],
            slots,
            weight_decay=weight_decay,
            momentum=momentum,
            lr=lr,
            dampening=0.0,
            nesterov=nesterov,
            maximize=False,
            foreach=False,
        )


def reference_adam(
    params, slots, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False
):
    from torch.optim.adam import adam

    if not slots:
        slots.update(
            step=[torch.tensor(0.0) for _ in params],
            exp_avg=[torch.zeros_like(p) for p in params],
            exp_avg_sq=[torch.zeros_like(p) for p in params],
        )
    with torch.no_grad():
        adam(
            params,
            [p.grad for p in params],
            slots["exp_avg"],
            slots["exp_avg_sq"],
            [],
            slots["step"],
            foreach=False,
            decoupled_weight_decay=decoupled,
            amsgrad=False,
            beta1=betas[0],
            beta2=betas[1],
            lr=lr,
            weight_decay=weight_decay,
            eps=eps,
            maximize=False,
        )


def trajectory(update, state, config, steps=STEPS, seed=0):
    """Parameters after each of ``steps`` updates. Gradients are zeroed in
    place before every backward, as ``optimizer.zero_grad(set_to_none=False)``
    does, so state that aliases ``p.grad`` is caught."""
    start, coef = problem(seed)
    params = [p.clone().requires_grad_(True) for p in start]
    path = []
    for _ in range(steps):
        for p in params:
            if p.grad is not None:
                p.grad.zero_()
        loss_of(params, coef).backward()
        update(params, state, **config)
        path.append([p.detach().clone() for p in params])
    return path


def compare_trajectories(function, got, expected, config, kind):
    for step, (mine, theirs) in enumerate(zip(got, expected, strict=True), start=1):
        gap = max((a - b).abs().max().item() for a, b in zip(mine, theirs, strict=True))
        assert gap <= 1e-5, (
            f"{function}: after step {step} of {STEPS} the parameters differ from "
            f"{describe(config, kind)} by {gap:.2e}"
        )


def leaf_params(seed=1, dtype=torch.float64):
    """Parameters with gradients, ready for one step."""
    start, coef = problem(seed, dtype)
    params = [p.clone().requires_grad_(True) for p in start]
    loss_of(params, coef).backward()
    return params


# --------------------------------------------------------------------------- #
# Specs shared by both update rules.
# --------------------------------------------------------------------------- #

RULES = [
    pytest.param(
        "sgd_step",
        {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1},
        marks=graded("sgd_step"),
        id="sgd_step",
    ),
    pytest.param(
        "adam_step",
        {"lr": 0.1, "weight_decay": 0.1, "decoupled": True},
        marks=graded("adam_step"),
        id="adam_step",
    ),
]


@pytest.mark.parametrize("name,config", RULES)
def test_updates_the_parameters_in_place(optimizers, name, config):
    params = leaf_params()
    identity = [(id(p), p.data_ptr()) for p in params]
    views = [p.detach().view(-1) for p in params]  # share memory with the parameters
    before = [p.detach().clone() for p in params]
    getattr(optimizers, name)(params, {}, **config)
    moved = [not torch.equal(v.view_as(b), b) for v, b in zip(views, before, strict=True)]
    assert all(moved), (
        f"{name}: the parameters' memory did not change; update each parameter in place "
        f"(p.add_(...) inside torch.no_grad()), do not rebind p or replace p.data"
    )
    assert [(id(p), p.data_ptr()) for p in params] == identity, (
        f"{name}: a parameter was replaced by a new tensor; update its values in place"
    )
    assert all(p.is_leaf and p.grad_fn is None for p in params), (
        f"{name}: the update was recorded by autograd; do it inside torch.no_grad()"
    )


@pytest.mark.parametrize("name,config", RULES)
def test_leaves_the_gradients_alone(optimizers, name, config):
    params = leaf_params()
    grads = [p.grad for p in params]
    values = [g.clone() for g in grads]
    state = {}
    getattr(optimizers, name)(params, state, **config)
    getattr(optimizers, name)(params, state, **config)
    for p, g, v in zip(params, grads, values, strict=True):
        assert p.grad is g and torch.equal(g, v), (
            f"{name}: changed p.grad; read the gradient, and build the decayed gradient as a "
            f"new tensor (g = p.grad + wd * p, not p.grad.add_(...))"
        )


@pytest.mark.parametrize("name,config", RULES)
def test_skips_parameters_without_a_gradient(optimizers, name, config):
    params = leaf_params()
    params[1].grad = None
    frozen = params[1].detach().clone()
    state = {}
    for _ in range(2):
        getattr(optimizers, name)(params, state, **config)
    assert torch.equal(params[1].detach(), frozen), (
        f"{name}: changed a parameter whose .grad is None (weight decay included); skip it"
    )
    assert 1 not in state, f"{name}: created state for a parameter without a gradient"
    assert not torch.equal(params[0].detach(), problem(1)[0][0]), (
        f"{name}: the other parameters did not move"
    )


@pytest.mark.parametrize("name,config", RULES)
def test_works_in_float32_on_the_parameters_device(optimizers, name, config):
    from mlsafety.hardware import pick_device

    device = pick_device()  # the GPU where there is one, else the CPU
    expected = leaf_params(dtype=torch.float32)
    params = [p.detach().to(device).requires_grad_(True) for p in expected]
    for p, e in zip(params, expected, strict=True):
        p.grad = e.grad.to(device)
    getattr(optimizers, name)(params, {}, **config)
    if name == "sgd_step":
        reference_sgd(expected, [None] * len(expected), **config)
    else:
        reference_adam(expected, {}, **config)
    for p, e in zip(params, expected, strict=True):
        assert p.dtype == torch.float32 and p.device.type == device.type, (
            f"{name}: a float32 parameter on {device} became {p.dtype} on {p.device}"
        )
        gap = (p.detach().cpu() - e.detach()).abs().max().item()
        assert gap < 1e-5, f"{name}: float32 step on {device} differs from torch by {gap:.2e}"


@pytest.mark.parametrize("name,config", RULES)
def test_does_not_call_torch_optim(optimizers, forbid, name, config):
    from importlib import import_module

    # torch.optim's package namespace does not keep its submodules as attributes
    functional = {
        f"torch.optim.{m}.{m}": (import_module(f"torch.optim.{m}"), m) for m in RULE_MODULES
    }
    forbid(
        name,
        {
            "torch.optim.SGD": (torch.optim, "SGD"),
            "torch.optim.Adam": (torch.optim, "Adam"),
            "torch.optim.AdamW": (torch.optim, "AdamW"),
            **functional,
        },
        "write the update rule yourself",
    )
    getattr(optimizers, name)(leaf_params(), {}, **config)


# --------------------------------------------------------------------------- #
# sgd_step
# --------------------------------------------------------------------------- #


@graded("sgd_step")
def test_sgd_first_step_closed_form(optimizers):
    params = leaf_params()
    start = [p.detach().clone() for p in params]
    optimizers.sgd_step(params, {}, lr=0.1, momentum=0.9, weight_decay=0.5)
    for p, p0 in zip(params, start, strict=True):
        expected = p0 - 0.1 * (p.grad + 0.5 * p0)
        gap = (p.detach() - expected).abs().max().item()
        assert gap < 1e-10, (
            f"sgd_step: the first step with momentum should be p - lr * (grad + wd * p): the "
            f"buffer starts as the gradient itself, not as momentum * 0 + ... (off by {gap:.2e})"
        )


@graded("sgd_step")
def test_sgd_state_holds_the_momentum_buffers(optimizers):
    config = {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.1}
    state, slots = {}, [None] * len(SHAPES)
    trajectory(optimizers.sgd_step, state, config, steps=5)
    trajectory(reference_sgd, slots, config, steps=5)
    assert sorted(state) == list(range(len(SHAPES))), (
        f"sgd_step: state should have one entry per parameter index (0..{len(SHAPES) - 1}), "
        f"got keys {sorted(state, key=str)}"
    )
    for i, buf in enumerate(slots):
        got = state[i].get("momentum_buffer") if isinstance(state[i], dict) else None
        assert isinstance(got, torch.Tensor), (
            f"sgd_step: state[{i}] should be a dict with the tensor 'momentum_buffer'"
        )
        gap = (got - buf).abs().max().item()
        assert gap < 1e-5, (
            f"sgd_step: state[{i}]['momentum_buffer'] after 5 steps differs from torch's by "
            f"{gap:.2e}; b = momentum * b + (grad + wd * p)"
        )


@graded("sgd_step")
def test_sgd_momentum_buffer_does_not_share_memory_with_the_gradient(optimizers):
    params = leaf_params()
    state = {}
    optimizers.sgd_step(params, state, lr=0.1, momentum=0.9)
    expected = [p.grad.clone() for p in params]
    for p in params:
        p.grad.zero_()  # what optimizer.zero_grad(set_to_none=False) does
    for i, e in enumerate(expected):
        got = state[i]["momentum_buffer"]
        assert torch.equal(got, e), (
            f"sgd_step: zeroing p.grad in place also changed state[{i}]['momentum_buffer']; "
            f"store a copy (g.clone()), not p.grad itself"
        )


@graded("sgd_step")
@pytest.mark.parametrize("config", SGD_CONFIGS, ids=config_id)
def test_sgd_trajectory_matches_torch(optimizers, config):
    got = trajectory(optimizers.sgd_step, {}, config)
    expected = trajectory(reference_sgd, [None] * len(SHAPES), config)
    hint = ""
    if config.get("weight_decay") and config.get("momentum"):
        hint = " (weight decay goes into the gradient before the momentum buffer)"
    try:
        compare_trajectories("sgd_step", got, expected, config, "sgd")
    except AssertionError as err:
        raise AssertionError(f"{err}{hint}") from None


# --------------------------------------------------------------------------- #
# adam_step
# --------------------------------------------------------------------------- #


@graded("adam_step")
def test_adam_first_step_is_about_lr_per_coordinate(optimizers):
    # with bias correction, m_hat = g and v_hat = g^2 on step 1: every coordinate moves
    # by lr * |g| / (|g| + eps), that is lr, whatever the size of the gradient
    params = leaf_params()
    for p, scale in zip(params, (1e-3, 1.0, 1e3), strict=True):
        p.grad.mul_(scale)
    start = [p.detach().clone() for p in params]
    optimizers.adam_step(params, {}, lr=0.01)
    for p, p0 in zip(params, start, strict=True):
        step = (p.detach() - p0).abs()
        expected = 0.01 * p.grad.abs() / (p.grad.abs() + 1e-8)
        gap = (step - expected).abs().max().item()
        assert gap < 1e-8, (
            f"adam_step: the first step should move every coordinate by about lr = 0.01, "
            f"got steps from {step.min().item():.2e} to {step.max().item():.2e}; divide m by "
            f"(1 - beta1**t) and v by (1 - beta2**t) (bias correction), with t = 1 on the first step"
        )


@graded("adam_step")
def test_adam_state_counts_steps_and_holds_the_moments(optimizers):
    config = {"lr": 0.05, "betas": (0.8, 0.99)}
    state, slots = {}, {}
    trajectory(optimizers.adam_step, state, config, steps=7)
    trajectory(reference_adam, slots, config, steps=7)
    assert sorted(state) == list(range(len(SHAPES))), (
        f"adam_step: state should have one entry per parameter index (0..{len(SHAPES) - 1}), "
        f"got keys {sorted(state, key=str)}"
    )
    for i in range(len(SHAPES)):
        entry = state[i]
        assert isinstance(entry, dict) and entry.get("step") == 7, (
            f"adam_step: state[{i}]['step'] should be 7 after 7 steps, got "
            f"{entry.get('step') if isinstance(entry, dict) else entry!r}"
        )
        for key in ("exp_avg", "exp_avg_sq"):
            gap = (entry[key] - slots[key][i]).abs().max().item()
            assert gap < 1e-6, (
                f"adam_step: state[{i}][{key!r}] after 7 steps differs from torch's by "
                f"{gap:.2e}; keep the raw moments in the state (bias-correct a copy)"
            )


@graded("adam_step")
def test_adam_weight_decay_is_coupled_or_decoupled_as_asked(optimizers):
    # a zero gradient isolates the decay: AdamW shrinks p by lr * wd * p; Adam's L2 term
    # becomes the whole gradient, so its first step is lr * sign(p)
    for decoupled in (False, True):
        params = [torch.tensor([2.0, -0.5], dtype=torch.float64, requires_grad=True)]
        params[0].grad = torch.zeros(2, dtype=torch.float64)
        optimizers.adam_step(params, {}, lr=0.1, weight_decay=0.2, decoupled=decoupled)
        start = torch.tensor([2.0, -0.5], dtype=torch.float64)
        if decoupled:
            expected = start * (1 - 0.1 * 0.2)
            rule = "AdamW: p = p * (1 - lr * weight_decay), then the Adam step on the raw gradient"
        else:
            expected = start - 0.1 * start.sign() * (0.2 * start.abs()) / (0.2 * start.abs() + 1e-8)
            rule = "Adam: add weight_decay * p to the gradient, then the usual Adam step"
        got = params[0].detach()
        assert torch.allclose(got, expected, atol=1e-9), (
            f"adam_step: with a zero gradient, lr=0.1, weight_decay=0.2, decoupled={decoupled}, "
            f"p = [2.0, -0.5] should become {expected.tolist()}, got {got.tolist()} ({rule})"
        )


@graded("adam_step")
@pytest.mark.parametrize("config", ADAM_CONFIGS, ids=config_id)
def test_adam_trajectory_matches_torch(optimizers, config):
    got = trajectory(optimizers.adam_step, {}, config)
    expected = trajectory(reference_adam, {}, config)
    compare_trajectories("adam_step", got, expected, config, "adam")


# --------------------------------------------------------------------------- #
# Per-parameter state: a gradient that first appears at a later step.
# --------------------------------------------------------------------------- #


def reference_step_per_parameter(name, params, slots, config):
    """torch's update rule applied to the parameters that have a gradient, each
    with its own state (``slots[i]``), as ``torch.optim`` keeps it."""
    live = [i for i, p in enumerate(params) if p.grad is not None]
    sub = [params[i] for i in live]
    if name == "sgd_step":
        buffers = [slots[i].get("momentum_buffer") for i in live]
        reference_sgd(sub, buffers, **config)
        for i, b in zip(live, buffers, strict=True):
            slots[i]["momentum_buffer"] = b
        return
    for i in live:
        if not slots[i]:
            p = params[i]
            slots[i].update(step=torch.tensor(0.0), m=torch.zeros_like(p), v=torch.zeros_like(p))
    lists = {
        "step": [slots[i]["step"] for i in live],
        "exp_avg": [slots[i]["m"] for i in live],
        "exp_avg_sq": [slots[i]["v"] for i in live],
    }
    reference_adam(sub, lists, **config)


@pytest.mark.parametrize("name,config", RULES)
def test_a_gradient_that_appears_later_starts_its_own_state(optimizers, name, config):
    start, coef = problem(2)
    mine = [p.clone().requires_grad_(True) for p in start]
    theirs = [p.clone().requires_grad_(True) for p in start]
    state, slots = {}, [{} for _ in start]
    for step in range(1, 6):
        for params in (mine, theirs):
            for p in params:
                p.grad = None
            loss_of(params, coef).backward()
            if step <= 2:  # parameter 1 is frozen for the first two steps
                params[1].grad = None
        returned = getattr(optimizers, name)(mine, state, **config)
        assert returned is None, f"{name}: returned {type(returned).__name__}; return None"
        reference_step_per_parameter(name, theirs, slots, config)
        gap = [(a - b).abs().max().item() for a, b in zip(mine, theirs, strict=True)]
        assert max(gap) < 1e-6, (
            f"{name}: parameter 1 had no gradient for steps 1-2 and a gradient from step 3; after "
            f"step {step} the parameters differ from torch's by {[f'{g:.1e}' for g in gap]}: each "
            f"parameter's state starts on its own first step (its buffer or step count), indexed "
            f"by its position in params"
        )
    if name == "adam_step":
        counts = [state.get(i, {}).get("step") for i in range(len(start))]
        assert counts == [5, 3, 5] and all(type(c) is int for c in counts), (
            f"adam_step: after 5 steps, parameter 1 having a gradient in the last 3 only, "
            f"state[i]['step'] should be the Python ints [5, 3, 5], got {counts!r}"
        )


@graded("adam_step")
def test_adam_defaults_match_torch(optimizers):
    got = trajectory(optimizers.adam_step, {}, {}, steps=5)
    expected = trajectory(reference_adam, {}, {}, steps=5)
    for step, (mine, theirs) in enumerate(zip(got, expected, strict=True), start=1):
        gap = max((a - b).abs().max().item() for a, b in zip(mine, theirs, strict=True))
        assert gap <= 1e-7, (
            f"adam_step: with the defaults (lr=1e-3, betas=(0.9, 0.999), eps=1e-8, no weight "
            f"decay) step {step} differs from torch.optim.Adam() by {gap:.2e}"
        )
