"""Fixtures for the security lab 1 specs: the implementation under test (chosen
by --impl / MLSAFETY_IMPL), small models for the DP-SGD specs, and the smoke
profile's target, DP-trained target and shadow models with their candidates."""

import copy

import pytest
import torch
from torch import nn

from mlsafety import recipes
from mlsafety.grading import module_fixture

membership = module_fixture("membership")
dpsgd = module_fixture("dpsgd")
accountant = module_fixture("accountant")


def _load_torch_func() -> None:
    """torch.func's first gradient imports torch._dynamo (seconds of CPU): pay it
    once here, at collection, instead of inside the first timed spec."""
    from torch.func import grad

    grad(lambda w: (w * w).sum())(torch.ones(2))


_load_torch_func()


@pytest.fixture(scope="session")
def digits16():
    """16 training digits (1x28x28, [0, 1]) and labels, from the offline data."""
    from mlsafety.data import load_tensors

    return load_tensors("digits", train=True, limit=16)


@pytest.fixture
def tiny_cnn(digits16):
    """A freshly initialised narrow SmallCNN (width 4) for the digits: every
    parameter kind of the labs' models (conv, linear, biases), cheap to vmap."""
    from mlsafety.models import SmallCNN

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return SmallCNN(1, 10, 4, 28)


@pytest.fixture
def mlp():
    """A small MLP on 12 features with 5 classes whose first layer is frozen
    (``requires_grad=False``) and with a dropout layer (train and eval differ)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        model = nn.Sequential(
            nn.Linear(12, 16),
            nn.Tanh(),
            nn.Dropout(0.5),
            nn.Linear(16, 8),
            nn.Tanh(),
            nn.Linear(8, 5),
        )
    model[0].requires_grad_(False)
    return model


@pytest.fixture(scope="session")
def _privacy():
    """The smoke membership experiment: the candidates (members first, then
    non-members) with their membership labels, and the target, DP-trained
    target and shadow checkpoints."""
    data = recipes.privacy_data("smoke")
    candidates = torch.cat([data["members"], data["non_members"]])
    return {
        "x": data["x"][candidates],
        "y": data["y"][candidates],
        "is_member": torch.cat(
            [torch.ones(len(data["members"])), torch.zeros(len(data["non_members"]))]
        ).long(),
        "data": data,
        "target": recipes.load("privacy_target", "smoke"),
        "target_dp": recipes.load("privacy_target_dp", "smoke"),
        "shadows": [
            recipes.load(f"privacy_shadow{k}", "smoke") for k in range(len(data["shards"]))
        ],
    }


@pytest.fixture
def privacy(_privacy):
    """A copy of the smoke membership experiment, so one spec cannot spoil another."""
    return copy.deepcopy(_privacy)
