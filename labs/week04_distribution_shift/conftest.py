"""Fixtures for the week 4 specs: the implementation under test (chosen by
--impl / MLSAFETY_IMPL), a batch of digits and the smoke standard checkpoint
(seeded generators `gen` and `rng` come from mlsafety.specs)."""

import copy

import numpy as np
import pytest
import torch

from mlsafety import recipes
from mlsafety.grading import module_fixture

corruptions = module_fixture("corruptions")
augment = module_fixture("augment")


@pytest.fixture(scope="session")
def _digits64():
    from mlsafety.data import load_tensors

    return load_tensors("digits", train=False, limit=64)


@pytest.fixture
def digits(_digits64):
    """64 held-out digits (1x28x28, [0, 1], many pixels exactly 0 or 1) and labels: fresh copies."""
    return _digits64[0].clone(), _digits64[1].clone()


@pytest.fixture(scope="session")
def _standard():
    return recipes.load("standard_cnn", "smoke")


@pytest.fixture
def model(_standard):
    """A fresh copy of the standard checkpoint, so one spec cannot spoil another."""
    return copy.deepcopy(_standard)
