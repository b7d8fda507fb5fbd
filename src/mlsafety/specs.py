"""Small helpers for writing specs whose failures read well.

A student's function may return the wrong kind of thing (None, a list of
tensors, an array where a number was asked); these turn that into one line
naming the function instead of a traceback from deep inside the spec.
"""

from __future__ import annotations

import numpy as np
import pytest


def number(function: str, value) -> float:
    """``value`` as a float, or a failure naming ``function`` if it is not a single number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        pytest.fail(f"{function}: expected a single number, got {value!r}", pytrace=False)


def python_float(function: str, value, how: str = "") -> float:
    """``value`` itself if it is a Python float, or a failure naming ``function``
    (a numpy scalar or a 0-d tensor is not one; ``how`` says how to convert)."""
    if not isinstance(value, float):
        pytest.fail(
            f"{function}: returned {type(value).__name__} {value!r}, expected a Python float"
            + (f" ({how})" if how else ""),
            pytrace=False,
        )
    return value


def array(function: str, value, shape=None) -> np.ndarray:
    """``value`` as a float array (of ``shape`` if given), or a failure naming ``function``."""
    try:
        out = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        pytest.fail(f"{function}: expected a numpy array, got {value!r}", pytrace=False)
    if shape is not None and out.shape != shape:
        pytest.fail(
            f"{function}: expected an array of shape {shape}, got {type(value).__name__} "
            f"of shape {out.shape}",
            pytrace=False,
        )
    return out


def raises(function, error, call, why):
    """Fail with a message naming ``function`` unless ``call()`` raises ``error``."""
    try:
        call()
    except error:
        return
    except NotImplementedError:
        raise
    except Exception as err:  # any other exception is the wrong signal
        pytest.fail(
            f"{function}: should raise {error.__name__} ({why}), raised {type(err).__name__}: {err}",
            pytrace=False,
        )
    pytest.fail(f"{function}: should raise {error.__name__} ({why})", pytrace=False)


def same_global_draw(call) -> bool:
    """True if ``call()`` leaves the global numpy.random state alone."""
    np.random.seed(12345)
    call()
    after = np.random.random()
    np.random.seed(12345)
    return after == np.random.random()


# Fixtures every week's specs can ask for (this module is a pytest plugin,
# registered by the repository's conftest.py next to mlsafety.grading):
# seeded generators and the standard checkpoint.


@pytest.fixture
def gen():
    """gen(seed) -> a fresh CPU torch.Generator seeded with ``seed``: every
    random tensor of a spec comes from one."""
    import torch

    def make(seed: int = 0):
        return torch.Generator().manual_seed(seed)

    return make


@pytest.fixture
def rng():
    """rng(seed) -> a fresh numpy.random.Generator seeded with ``seed``."""

    def make(seed: int = 0) -> np.random.Generator:
        return np.random.default_rng(seed)

    return make


@pytest.fixture(scope="session")
def _standard():
    from mlsafety import recipes

    return recipes.load("standard_cnn", "smoke")


@pytest.fixture
def model(_standard):
    """A fresh copy of the smoke standard_cnn checkpoint, so one spec cannot
    spoil another."""
    import copy

    return copy.deepcopy(_standard)
