"""Fixtures for the week 3 specs: the implementation under test (chosen by
--impl / MLSAFETY_IMPL), the smoke-profile checkpoints and a batch of digits."""

import copy

import pytest

from mlsafety import recipes
from mlsafety.grading import module_fixture

attacks = module_fixture("attacks")
robustness = module_fixture("robustness")


@pytest.fixture(scope="session")
def digits64():
    """64 held-out digits (1x28x28, [0, 1]) and labels, from the offline data."""
    from mlsafety.data import load_tensors

    return load_tensors("digits", train=False, limit=64)


@pytest.fixture(scope="session")
def digits(digits64):
    """The first 32 of them: enough for attack specs, cheap to attack."""
    return digits64[0][:32], digits64[1][:32]


@pytest.fixture(scope="session")
def _robust():
    return recipes.load("adversarial_cnn", "smoke")


@pytest.fixture
def robust_model(_robust):
    return copy.deepcopy(_robust)
