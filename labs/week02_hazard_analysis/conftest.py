"""Fixtures for the week 2 specs: the implementation under test (chosen by
--impl / MLSAFETY_IMPL). The seeded generators `gen` and `rng` come from
mlsafety.specs, shared by every week."""

from mlsafety.grading import module_fixture

risk = module_fixture("risk")
tails = module_fixture("tails")
