"""A throw-away repository with one small lab, for testing the grading plugin
and the claims check on code whose every bug is known."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

from .conftest import BIN, run

SOLUTION = '''
"""Week 1: small functions for testing the self-check."""

import numpy as np


def scale(x, factor=2.0):
    """Multiply ``x`` by ``factor``.

    Raises:
        ValueError: a negative factor.
    """
    if factor < 0:
        raise ValueError(f"factor must be >= 0, got {factor}")
    return np.asarray(x, dtype=float) * factor


def lookup(table, key):
    """The value of ``key`` in ``table``.

    Raises:
        ValueError: a key missing from the table.
    """
    _check_key(table, key)
    return table[key]


def _check_key(table, key):
    if key not in table:
        raise ValueError(f"no key {key!r}")


def inner(n):
    """Count to ``n``."""
    i = 0
    while i < n:
        i += 1
    return i


def outer(n):
    """``inner(n)`` plus one."""
    return inner(n) + 1
'''

SPECS = """
import numpy as np
import pytest

from mlsafety.grading import graded

GRADED = {"scale": "core", "lookup": "core", "inner": "core", "outer": "core"}
pytestmark = pytest.mark.timeout(3)


@graded("scale")
def test_scale_matches_a_reference(small):
    got = small.scale([1.0, 2.0], 3.0)
    assert np.allclose(got, [3.0, 6.0]), f"scale: differs from the reference, got {got}"


@graded("scale")
def test_scale_closed_form(small):
    got = small.scale([1.0], 3.0)
    assert np.allclose(got, [3.0]), f"scale: 1 * 3 should be 3, got {got}; multiply by factor"


@graded("scale")
def test_scale_rejects_a_negative_factor(small):
    with pytest.raises(ValueError):
        small.scale([1.0], -1.0)


@graded("scale")
def test_scale_leaves_numpy_alone(small):
    small.scale([1.0], 2.0)
    assert np.geterr()["divide"] == "warn"


@graded("lookup")
def test_lookup_finds_the_value(small):
    import torch

    assert np.geterr()["divide"] == "warn", "numpy's error handling leaked from another spec"
    assert torch.get_default_dtype() == torch.float32, "the default dtype leaked from another spec"
    assert small.lookup({"a": 1}, "a") == 1


@graded("lookup")
def test_lookup_rejects_a_missing_key(small):
    with pytest.raises(ValueError):
        small.lookup({"a": 1}, "b")


@graded("inner")
def test_inner_counts(small):
    assert small.inner(5) == 5


@graded("outer")
def test_outer_adds_one(small):
    assert small.outer(5) == 6
"""

CONFTEST = """
from mlsafety.grading import module_fixture

small = module_fixture("small")
"""


def make_repo(root: Path, solution: str = SOLUTION, specs: str = SPECS) -> Path:
    """Write a repository with ``labs/week01_small`` (stub, specs) and its solution."""
    lab = root / "labs" / "week01_small"
    lab.mkdir(parents=True)
    (root / "solutions" / "week01_small").mkdir(parents=True)
    (root / "environments").mkdir()
    (root / "environments" / "assets.toml").write_text("")
    (root / "conftest.py").write_text('pytest_plugins = ["mlsafety.grading", "mlsafety.specs"]\n')
    (lab / "README.md").write_text("# Week 1: small\n")
    (lab / "conftest.py").write_text(CONFTEST)
    (lab / "test_small.py").write_text(textwrap.dedent(specs))
    (lab / "small.py").write_text("raise NotImplementedError\n")
    (root / "solutions" / "week01_small" / "small.py").write_text(textwrap.dedent(solution))
    return root


def variant(folder: Path, *replacements: tuple[str, str], solution: str = SOLUTION) -> Path:
    """The solution with each (old, new) replacement applied, written into ``folder``."""
    source = textwrap.dedent(solution)
    for old, new in replacements:
        assert source.count(old) == 1, old
        source = source.replace(old, new)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "small.py").write_text(source)
    return folder


def mlsafety(repo: Path, *args: str, timeout: int = 300):
    """Run the toolkit's command line on ``repo``."""
    env = {"MLSAFETY_REPO": str(repo), "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    return run([str(BIN / "mlsafety"), *args], timeout=timeout, env=env, cwd=repo)
