"""The student edition's own checks: what its `make test` and CI run.

No answers ship; every lab's stubs import and raise NotImplementedError; the
specs collect and grade every function as not done yet through the same
command the autograding workflow calls; a missing module is one clear line;
notebooks carry no outputs and parse; the workflow is valid (actionlint) and
grades every function; ruff is clean."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlsafety.grading import load_module
from mlsafety.weeks import all_labs, graded_functions, make_name, module_names

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LABS = all_labs()


def run(cmd, timeout=600):
    env = {**os.environ, "MLSAFETY_REPO": str(ROOT), "MLSAFETY_PROFILE": "smoke"}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_no_answers_ship():
    assert not (ROOT / "solutions").exists(), "the student edition must not hold solutions/"
    assert not (ROOT / "tests" / "mutants").exists(), "nor the buggy variants"
    assert LABS, "no labs found under labs/"


@pytest.mark.parametrize("lab", list(LABS))
def test_stubs_import_and_raise_not_implemented(lab):
    folder = LABS[lab]
    names = module_names(folder)
    assert names, f"{folder.name} has no student module"
    defined = {}
    for name in names:
        load_module(name, folder, "student")  # imports without error
        tree = ast.parse((folder / f"{name}.py").read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                raises = [n for n in ast.walk(node) if isinstance(n, ast.Raise)]
                defined[node.name] = any("NotImplementedError" in ast.unparse(r) for r in raises)
    for function in graded_functions(folder):
        assert function in defined, f"{lab}: graded function {function} is in no student module"
        assert defined[function], f"{lab}: {function} does not raise NotImplementedError"


@pytest.mark.parametrize("lab", list(LABS))
def test_notebook_has_no_outputs_and_parses(lab):
    notebook = LABS[lab] / "lab.ipynb"
    cells = json.loads(notebook.read_text())["cells"]
    for i, cell in enumerate(cells):
        assert not cell.get("outputs"), f"{notebook.name} of {lab}: cell {i} has outputs"
        if cell["cell_type"] == "code":
            lines = "".join(cell["source"]).splitlines()
            code = "\n".join(ln for ln in lines if not ln.lstrip().startswith(("%", "!")))
            ast.parse(code, f"{lab}/lab.ipynb cell {i}")


@pytest.mark.timeout(600)
def test_the_specs_collect():
    done = run([sys.executable, "-m", "pytest", "labs", "--collect-only", "-q"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    for lab in LABS.values():
        assert f"labs/{lab.name}/test_" in done.stdout, f"no spec of {lab.name} collected"


@pytest.mark.timeout(600)
def test_the_specs_fail_on_the_stubs_as_not_done(tmp_path):
    lab = next(iter(LABS))
    report = tmp_path / "grading.json"
    args = ["test", make_name(LABS[lab]), "--", "--grading-json", str(report)]
    done = run([str(BIN / "mlsafety"), *args])
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-2000:]
    rows = json.loads(report.read_text())["functions"]
    assert {r["function"] for r in rows} == set(graded_functions(LABS[lab]))
    assert {r["status"] for r in rows} == {"TODO"}, rows


@pytest.mark.timeout(600)
def test_every_lab_is_reported_as_not_started(tmp_path):
    report = tmp_path / "progress.json"
    done = run([str(BIN / "mlsafety"), "progress", "--json", str(report)])
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(report.read_text())
    assert data["implementation"] == "student" and not data["fell_back"]
    assert [w["id"] for w in data["weeks"]] == list(LABS)
    for week in data["weeks"]:
        assert {f["function"] for f in week["functions"]} == set(graded_functions(LABS[week["id"]]))
        assert week["status"] == "not started", week
    lab = next(iter(LABS))
    function = next(iter(graded_functions(LABS[lab])))
    graded = run([str(BIN / "mlsafety"), "result", lab, function, "--from", str(report)], 60)
    assert graded.returncode == 1 and f"{lab} {function}: " in graded.stdout, graded.stdout


@pytest.mark.timeout(600)
def test_a_missing_module_is_one_clear_line(tmp_path):
    lab = next(iter(LABS))
    done = run([str(BIN / "mlsafety"), "test", make_name(LABS[lab]), "--impl", str(tmp_path)], 300)
    assert done.returncode != 0
    assert "not found" in done.stdout and "solutions" not in done.stdout, done.stdout[-2000:]
    done = run([str(BIN / "mlsafety"), "test", make_name(LABS[lab]), "--impl", "solution"], 120)
    assert done.returncode == 2 and "no reference solutions" in done.stderr, done.stderr


def test_classroom_workflow_grades_every_function():
    import yaml

    path = ROOT / ".github" / "workflows" / "classroom.yml"
    steps = yaml.safe_load(path.read_text())["jobs"]["autograding"]["steps"]
    commands = {
        s["with"]["command"] for s in steps if "autograding-command-grader" in s.get("uses", "")
    }
    for lab, folder in LABS.items():
        for function in graded_functions(folder):
            assert any(
                c.endswith(f"result {lab} {function} --from artifacts/progress.json")
                for c in commands
            ), f"classroom.yml does not grade {lab} {function}"
    linter = ROOT / ".tools" / "bin" / "actionlint"
    assert linter.exists(), (
        ".tools/bin/actionlint is missing: run `make test` (it installs .tools/)"
    )
    done = subprocess.run([str(linter), str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff():
    for args in (["check", "."], ["format", "--check", "."]):
        done = run([str(BIN / "ruff"), *args], 120)
        assert done.returncode == 0, done.stdout
