"""Fixtures for the security lab 3 specs: the implementation under test (chosen
by --impl / MLSAFETY_IMPL), the real instruct model (SmolLM2-135M-Instruct,
where behaviour matters) and a tiny random model of the same architecture and
tokenizer (where speed matters)."""

import pytest
import torch

from mlsafety import llm
from mlsafety.grading import module_fixture

injection = module_fixture("injection")
gcg = module_fixture("gcg")
perplexity = module_fixture("perplexity")
directions = module_fixture("directions")


@pytest.fixture(scope="session")
def real_model():
    """SmolLM2-135M-Instruct on the CPU, parameters frozen (shared: never modify it)."""
    return llm.load(llm.REAL, "smoke")


@pytest.fixture(scope="session")
def tiny_model():
    """A random 2-layer, width-64 model with SmolLM2's tokenizer, frozen, float32."""
    return llm.load(llm.TINY, "smoke")


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(0)
