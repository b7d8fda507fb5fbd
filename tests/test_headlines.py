"""The lessons' headlines at the cpu profile hold on real MNIST (mlsafety.headlines).

The measurement needs real MNIST and the cpu checkpoints (`make data PROFILE=cpu`,
`make assets PROFILE=cpu`); without them it is skipped, saying which is missing.
`make bench` records the same numbers in docs/benchmarks.md.
"""

from __future__ import annotations

import json
import re

import pytest

from mlsafety import headlines
from mlsafety.weeks import find_week


def notebook_source(week: str) -> str:
    cells = json.loads((find_week(week) / "lab.ipynb").read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def test_neural_cleanse_settings_are_the_notebooks():
    """The headline measures Neural Cleanse as week 6's notebook runs it at cpu."""
    source = notebook_source("week06")
    cpu = re.search(r'"cpu": dict\((.*?)\n    \)', source, re.S).group(1)
    sizes = dict(re.findall(r"(\w+)=([\w.]+)", cpu))
    assert int(sizes["nc_images"]) == headlines.NEURAL_CLEANSE["images"]
    assert int(sizes["nc_steps"]) == headlines.NEURAL_CLEANSE["steps"]
    nc = re.search(r"NC = dict\(steps=SIZES\[\"nc_steps\"\], lr=([\d.]+), lam=([\d.]+)\)", source)
    assert nc, "week 6's notebook no longer sets NC = dict(steps=..., lr=..., lam=...)"
    assert float(nc.group(1)) == headlines.NEURAL_CLEANSE["lr"]
    assert float(nc.group(2)) == headlines.NEURAL_CLEANSE["lam"]


def test_headlines_hold_on_real_mnist():
    why = headlines.ready()
    if why:
        pytest.skip(why)
    rows = headlines.measure(progress=lambda line: None)
    print("\n" + headlines.table(rows))
    failed = [
        f"week {r.week}, {r.name}: {r.value} (goal: {r.goal})"
        for r in rows
        if r.asserted and not r.met
    ]
    assert not failed, "headlines that do not hold:\n" + "\n".join(failed)
