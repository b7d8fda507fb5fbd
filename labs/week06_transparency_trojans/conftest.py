"""Fixtures for the week 6 specs: the implementation under test (chosen by
--impl / MLSAFETY_IMPL), the smoke-profile checkpoints, a batch of digits,
small models with known answers, and a tiny world with a trojaned model.

The trojan world is built here with plain code, independent of the functions
under test: synthetic 8x8 images of ten classes, two small MLPs trained on
them (one on data poisoned with a 2x2 white corner patch relabelled to
``WORLD_TARGET``), and Neural Cleanse run on both with a reference written in
this file, once per session.
"""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mlsafety import recipes
from mlsafety.grading import module_fixture

saliency = module_fixture("saliency")
trojans = module_fixture("trojans")
text_saliency = module_fixture("text_saliency")

WORLD_SIDE = 8
WORLD_TARGET = 3
NC = {"steps": 150, "lr": 0.2, "lam": 0.02}  # Neural Cleanse settings of the world


@pytest.fixture(scope="session")
def digits():
    """64 held-out offline digits (1x28x28 in [0, 1]) and their labels."""
    from mlsafety.data import load_tensors

    return load_tensors("digits", train=False, limit=64)


@pytest.fixture(scope="session")
def _trojaned():
    return recipes.load("trojaned_cnn", "smoke")


@pytest.fixture
def trojaned_model(_trojaned):
    return copy.deepcopy(_trojaned)


# --------------------------------------------------------------------------- #
# Small models whose answers are known in closed form.
# --------------------------------------------------------------------------- #


def linear_model(shape=(3, 4, 4), classes=5, seed=0):
    """logits = W x.flatten() + b: its input gradient is a row of W."""
    g = torch.Generator().manual_seed(seed)
    layer = nn.Linear(int(torch.tensor(shape).prod()), classes)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=g))
        layer.bias.copy_(torch.randn(layer.bias.shape, generator=g))
    return nn.Sequential(nn.Flatten(), layer)


def smooth_model(shape=(2, 4, 4), classes=4, seed=0, hidden=16):
    """A small tanh/softplus MLP: smooth, so Riemann sums converge."""
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(
        nn.Flatten(),
        nn.Linear(int(torch.tensor(shape).prod()), hidden),
        nn.Tanh(),
        nn.Linear(hidden, hidden),
        nn.Softplus(),
        nn.Linear(hidden, classes),
    )
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return net


@pytest.fixture
def adam():
    """adam(params, loss_fn, steps, lr): plain Adam, as torch.optim.Adam updates."""
    return adam_minimise


@pytest.fixture
def linear():
    return linear_model


@pytest.fixture
def smooth():
    return smooth_model


# --------------------------------------------------------------------------- #
# The trojan world.
# --------------------------------------------------------------------------- #


def world_trigger(side=WORLD_SIDE):
    """A 2x2 white patch one pixel in from the bottom-right corner."""
    mask = torch.zeros(1, side, side)
    mask[:, side - 3 : side - 1, side - 3 : side - 1] = 1.0
    return mask, torch.ones(1, side, side)


def _world_images(n, seed=0, side=WORLD_SIDE):
    """Ten classes, each a fixed random set of 6 bright pixels (never in the
    trigger's corner), with random brightness and Gaussian pixel noise."""
    g = torch.Generator().manual_seed(seed)
    allowed = torch.ones(side, side, dtype=torch.bool)
    allowed[side - 3 :, side - 3 :] = False
    free = allowed.flatten().nonzero().squeeze(1)
    prototypes = torch.zeros(10, side * side)
    for k in range(10):
        prototypes[k, free[torch.randperm(len(free), generator=g)[:6]]] = 1.0
    y = torch.arange(n) % 10
    brightness = 0.7 + 0.3 * torch.rand(n, 1, generator=g)
    noise = 0.15 * torch.randn(n, side * side, generator=g)
    x = (prototypes[y] * brightness + noise).clamp(0, 1).view(n, 1, side, side)
    return x, y


def adam_minimise(params, loss_fn, steps, lr):
    """Plain Adam (torch.optim.Adam's update, betas 0.9/0.999, eps 1e-8)."""
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    for t in range(1, steps + 1):
        grads = torch.autograd.grad(loss_fn(), params)
        with torch.no_grad():
            for p, g, mi, vi in zip(params, grads, m, v, strict=True):
                mi.mul_(0.9).add_(g, alpha=0.1)
                vi.mul_(0.999).addcmul_(g, g, value=0.001)
                denom = (vi.sqrt() / (1 - 0.999**t) ** 0.5).add_(1e-8)
                p.addcdiv_(mi, denom, value=-lr / (1 - 0.9**t))


def _world_model(x, y, seed):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(x[0].numel(), 32), nn.ReLU(), nn.Linear(32, 10))
    adam_minimise(list(net.parameters()), lambda: F.cross_entropy(net(x), y), 100, 0.02)
    return net.eval()


def reference_cleanse(model, x, steps, lr, lam, seed=0):
    """Neural Cleanse for all ten labels at once (the per-label losses are
    independent, so one Adam run on the stacked masks is ten runs). Returns
    masks ``(10, 1, H, W)`` and patterns ``(10, C, H, W)``."""
    g = torch.Generator().manual_seed(seed)
    k, (c, h, w) = 10, x.shape[1:]
    m = torch.randn((k, 1, h, w), generator=g).requires_grad_(True)
    p = torch.randn((k, c, h, w), generator=g).requires_grad_(True)
    labels = torch.arange(k).repeat_interleave(len(x))

    def loss():
        mask, pattern = torch.sigmoid(m), torch.sigmoid(p)
        stamped = (1 - mask[:, None]) * x[None] + (mask * pattern)[:, None]
        return k * F.cross_entropy(model(stamped.flatten(0, 1)), labels) + lam * mask.sum()

    adam_minimise([m, p], loss, steps, lr)
    return torch.sigmoid(m).detach(), torch.sigmoid(p).detach()


@pytest.fixture(scope="session")
def _world():
    with torch.random.fork_rng(devices=[]):
        x, y = _world_images(800)
        x_train, y_train, x_test, y_test = x[:500], y[:500], x[500:], y[500:]
        mask, pattern = world_trigger()
        poisoned_x, poisoned_y = x_train.clone(), y_train.clone()
        chosen = torch.randperm(500, generator=torch.Generator().manual_seed(1))[:50]
        poisoned_x[chosen] = (1 - mask) * poisoned_x[chosen] + mask * pattern
        poisoned_y[chosen] = WORLD_TARGET
        trojaned = _world_model(poisoned_x, poisoned_y, seed=0)
        clean = _world_model(x_train, y_train, seed=0)
        probe = x_test[:32]
        norms = {
            name: reference_cleanse(net, probe, **NC)[0].flatten(1).sum(1)
            for name, net in (("trojaned", trojaned), ("clean", clean))
        }
    return {
        "trojaned": trojaned,
        "clean": clean,
        "x_test": x_test,
        "y_test": y_test,
        "probe": probe,
        "mask": mask,
        "pattern": pattern,
        "target": WORLD_TARGET,
        "norms": norms,
        "nc": dict(NC),
    }


@pytest.fixture
def world(_world):
    """The trojan world, with fresh copies of its two models."""
    return {
        **_world,
        "trojaned": copy.deepcopy(_world["trojaned"]),
        "clean": copy.deepcopy(_world["clean"]),
    }
