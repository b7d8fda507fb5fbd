"""Fixtures for the security lab 2 specs: the implementation under test (chosen
by --impl / MLSAFETY_IMPL), the smoke-profile victim checkpoint, the
attacker's pool of digits and held-out digits for fidelity."""

import copy

import pytest

from mlsafety import recipes
from mlsafety.grading import module_fixture

blackbox = module_fixture("blackbox")
extraction = module_fixture("extraction")
supply_chain = module_fixture("supply_chain")


@pytest.fixture(scope="session")
def _victim_model():
    return recipes.load("stealing_victim_cnn", "smoke")


@pytest.fixture
def victim_model(_victim_model):
    """A fresh copy of the smoke victim checkpoint, so one spec cannot spoil another."""
    return copy.deepcopy(_victim_model)


@pytest.fixture(scope="session")
def pool():
    """The attacker's unlabelled images: the 1497 training digits (1x28x28, [0, 1])."""
    from mlsafety.data import load_tensors

    return load_tensors("digits", train=True)[0]


@pytest.fixture(scope="session")
def held_out():
    """300 held-out test digits, never in the pool: where fidelity is measured."""
    from mlsafety.data import load_tensors

    return load_tensors("digits", train=False)[0]
