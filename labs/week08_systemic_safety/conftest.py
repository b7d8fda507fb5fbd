"""Fixtures for the week 8 specs: the implementation under test (chosen by
--impl / MLSAFETY_IMPL) and small seeded network-flow records."""

import pytest

from mlsafety.grading import module_fixture

forecasting = module_fixture("forecasting")
cooperation = module_fixture("cooperation")
cyber = module_fixture("cyber")


@pytest.fixture(scope="session")
def flow_data():
    """Seeded flows from mlsafety.flows: 600 normal ones to fit on, and a test
    set of 400 normal flows and 90 attacks (30 of each kind)."""
    from mlsafety import flows

    return flows.generate(600, seed=11), flows.generate(400, 90, seed=12)
