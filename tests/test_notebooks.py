"""Every lab notebook runs top to bottom with the reference solution at the
smoke profile (offline data), in a real Jupyter kernel."""

import time

import pytest

from mlsafety.weeks import all_labs

NOTEBOOKS = [p / "lab.ipynb" for p in all_labs().values()]


# A guard against a hung kernel, not a speed goal (the bench times the notebooks):
# on a busy 2-core machine a smoke notebook can take several times its quiet time.
@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.parent.name)
def test_notebook_runs_with_the_solution_at_smoke(path, monkeypatch, capsys):
    import nbclient
    import nbformat

    monkeypatch.setenv("MLSAFETY_PROFILE", "smoke")
    monkeypatch.setenv("MLSAFETY_IMPL", "solution")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    started = time.perf_counter()
    client = nbclient.NotebookClient(
        nb, timeout=480, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    seconds = time.perf_counter() - started
    outputs = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "profile=smoke" in outputs, "the notebook should print the profile it runs at"
    assert "graded functions pass" in outputs, "the notebook should end with the inline self-check"
    with capsys.disabled():
        print(f"\n{path.parent.name}/lab.ipynb ran in {seconds:.1f} s at the smoke profile")


def test_notebooks_are_committed_without_outputs():
    import nbformat

    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        dirty = [
            i
            for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and (c.outputs or c.execution_count)
        ]
        assert not dirty, f"{path} has outputs in cells {dirty}: run `make format` (nbstripout)"


def test_every_notebook_checks_its_own_graded_functions():
    """The inline self-check: each notebook ends with check() for the whole week,
    and every check("name") cell names a function that week grades (a typo would
    only print a usage error in the student's notebook)."""
    import re

    import nbformat

    from mlsafety.weeks import graded_functions

    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        code = [c.source for c in nb.cells if c.cell_type == "code"]
        assert code[-1].strip() == "check()", f"{path}: the last code cell should be check()"
        graded = graded_functions(path.parent)
        named = set()
        for source in code:
            for call in re.findall(r"\bcheck\(([^)]*)\)", source):
                named |= set(re.findall(r"[\"'](\w+)[\"']", call))
        unknown = named - set(graded)
        assert not unknown, f"{path}: check() names functions the week does not grade: {unknown}"
