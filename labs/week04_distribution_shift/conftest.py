"""Fixtures for the week 4 specs: the implementation under test (chosen by
--impl / MLSAFETY_IMPL) and a batch of digits (the seeded generators `gen` and
`rng` and the standard checkpoint's `model` come from mlsafety.specs)."""

import pytest

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
