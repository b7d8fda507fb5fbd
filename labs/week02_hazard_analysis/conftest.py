"""Fixtures for the week 2 specs: the implementation under test (chosen by
--impl / MLSAFETY_IMPL) and seeded numpy generators."""

import numpy as np
import pytest

from mlsafety.grading import module_fixture

risk = module_fixture("risk")
tails = module_fixture("tails")


@pytest.fixture
def rng():
    """rng(seed) -> a fresh numpy.random.Generator seeded with ``seed``."""

    def make(seed: int = 0) -> np.random.Generator:
        return np.random.default_rng(seed)

    return make
