"""`make release`: the student edition holds no answers, its own checks pass,
and its GitHub Classroom workflow is valid and grades with the same specs."""

import ast
import json
import shutil
import subprocess
import sys

import pytest
import yaml

from mlsafety.classroom import SPECS_ENV
from mlsafety.release import LEFT_OUT, answer_leaks, edition_makefile
from mlsafety.weeks import all_labs, graded_functions, module_names, solution_dir

from .conftest import BIN, ROOT, run

WEEK2 = all_labs()["week02"]
pytestmark = pytest.mark.timeout(900)  # the first test also builds the edition


def in_edition(edition, cmd, timeout=600, **env):
    """Run a command in the edition, with the edition's toolkit first on the path."""
    return run(
        cmd,
        timeout=timeout,
        cwd=edition,
        env={
            "MLSAFETY_REPO": str(edition),
            "MLSAFETY_DATA": str(ROOT / "data"),
            "PYTHONPATH": str(edition / "src"),
            **env,
        },
    )


@pytest.fixture(scope="module")
def edition(tmp_path_factory):
    dest = tmp_path_factory.mktemp("release") / "mlsafety-labs"
    done = run(
        [str(BIN / "mlsafety"), "release", str(dest)], env={"MLSAFETY_DATA": str(ROOT / "data")}
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no solutions, no buggy variants" in done.stdout
    (dest / ".tools").symlink_to(ROOT / ".tools")  # what the edition's `make test` installs
    return dest


def solution_bodies():
    """Every solution module-level function's body (the code after its
    docstring: what the stubs replace), as it would appear if copied anywhere."""
    for path in sorted((ROOT / "solutions").glob("*/*.py")):
        source = path.read_text()
        lines = source.splitlines(keepends=True)
        for node in ast.parse(source).body:
            if not isinstance(node, ast.FunctionDef):
                continue
            body = node.body[1:] if isinstance(node.body[0], ast.Expr) else node.body
            if body:
                block = "".join(lines[body[0].lineno - 1 : node.end_lineno])
                if len(block.strip()) > 60:
                    yield f"{path.parent.name}/{path.name}:{node.name}", block


def test_the_edition_leaves_out_solutions_variants_and_maintainer_tools(edition):
    files = {p.relative_to(edition).as_posix() for p in edition.rglob("*") if p.is_file()}
    files = {f for f in files if not f.startswith(".tools/")}
    assert {f for f in files if f.startswith("tests/")} == {"tests/test_edition.py"}
    for left_out in set(LEFT_OUT) - {"tests/"}:
        assert not any(f == left_out or f.startswith(left_out) for f in files), left_out
    assert "tests/test_edition.py" in files and ".github/workflows/classroom.yml" in files
    readme = (edition / "README.md").read_text()
    assert "make test-week3" in readme and "solution" not in readme.lower()
    assert "environments/stubs.json" in files
    for lab in all_labs().values():
        for name in module_names(lab):
            assert f"labs/{lab.name}/{name}.py" in files
        assert f"labs/{lab.name}/lab.ipynb" in files
        assert any(f.startswith(f"labs/{lab.name}/test_") for f in files)
    assert "solutions" not in (edition / "Dockerfile").read_text()
    assert "solutions" not in (edition / "Dockerfile.cuda").read_text()
    assert (edition / "environments/checkpoints/smoke/adversarial_cnn.pt").is_file()
    assert (edition / "environments/checkpoints/smoke/adversarial_cnn.pt.json").is_file()


def test_no_solution_code_is_anywhere_in_the_edition(edition):
    texts = {
        p: p.read_text(errors="replace")
        for p in edition.rglob("*")
        if p.is_file()
        and p.relative_to(edition).parts[0] != ".tools"
        and p.suffix not in (".pt", ".png")
    }
    bodies = list(solution_bodies())
    assert len(bodies) > 50
    for where, block in bodies:
        found = [str(p.relative_to(edition)) for p, text in texts.items() if block in text]
        assert not found, f"the body of {where} is in the edition: {found}"


def test_the_edition_make_targets_are_the_student_ones(edition):
    done = subprocess.run(["make", "-s", "help"], cwd=edition, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for target in ("test-%", "progress", "lab", "doctor", "data", "test "):
        assert f"  {target}" in done.stdout
    for target in ("verify-%", "bench", "test-container", "release", "class-report", "lock"):
        assert f"  {target} " not in done.stdout
    kept = edition_makefile((ROOT / "Makefile").read_text())
    assert "\n\n\n" not in kept and "verify-%: " not in kept and "progress: " in kept


@pytest.mark.timeout(1500)
def test_the_edition_checks_pass(edition):
    done = in_edition(edition, [sys.executable, "-m", "pytest", "-q"], timeout=1500)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "skipped" not in done.stdout


def test_the_edition_uses_the_shipped_checkpoint(edition, tmp_path):
    shutil.copytree(ROOT / "data" / "smoke", tmp_path / "smoke")
    code = "from mlsafety import recipes; print(recipes.find('adversarial_cnn', 'smoke'))"
    done = in_edition(edition, [sys.executable, "-c", code], MLSAFETY_DATA=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(edition / "environments/checkpoints/smoke/adversarial_cnn.pt")


@pytest.mark.timeout(900)
def test_the_classroom_workflow_is_valid_and_its_command_grades(edition, tmp_path):
    workflow = edition / ".github" / "workflows" / "classroom.yml"
    lint = subprocess.run(
        [str(ROOT / ".tools" / "bin" / "actionlint"), str(workflow)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    job = yaml.safe_load(workflow.read_text())["jobs"]["autograding"]
    graders = [s for s in job["steps"] if "autograding-command-grader" in s.get("uses", "")]
    expected = {(lab, f) for lab, d in all_labs().items() for f in graded_functions(d)}
    assert {tuple(s["with"]["command"].split()[2:4]) for s in graders} == expected
    reporter = job["steps"][-1]
    assert reporter["with"]["runners"].split(",") == [s["id"] for s in graders]
    assert set(reporter["env"]) == {f"{s['id'].upper()}_RESULTS" for s in graders}
    assert {s["with"]["max-score"] for s in graders} == {1, 2}

    # a student who solved week 2: the workflow's commands, run in a copy of the edition
    student = tmp_path / "student"
    shutil.copytree(edition, student, symlinks=True)
    for name in module_names(WEEK2):
        shutil.copy(solution_dir(WEEK2) / f"{name}.py", student / "labs" / WEEK2.name)
    report = student / "artifacts" / "progress.json"
    done = in_edition(student, [str(BIN / "mlsafety"), "progress", "2", "--json", str(report)])
    assert done.returncode == 0, done.stdout + done.stderr
    env = {SPECS_ENV: job["env"][SPECS_ENV]}
    commands = {s["with"]["command"] for s in graders}
    for function in graded_functions(WEEK2):
        command = f".venv/bin/mlsafety result week02 {function} --from artifacts/progress.json"
        assert command in commands
        graded = in_edition(student, [str(BIN / "mlsafety"), *command.split()[1:]], 120, **env)
        assert graded.returncode == 0 and ": PASS" in graded.stdout, graded.stdout + graded.stderr
    data = json.loads(report.read_text())
    data["specs_sha256"] = "0" * 64  # graded with edited specs: no points
    report.write_text(json.dumps(data))
    function = next(iter(graded_functions(WEEK2)))
    args = [str(BIN / "mlsafety"), "result", "week02", function, "--from", str(report)]
    graded = in_edition(student, args, 120, **env)
    assert graded.returncode == 1 and "specs differ" in graded.stdout


def test_release_refuses_a_lab_module_that_is_not_its_stub(tmp_path, monkeypatch):
    for part in ("labs", "solutions", "environments"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    name = module_names(WEEK2)[0]
    shutil.copy(solution_dir(WEEK2) / f"{name}.py", tmp_path / "labs" / WEEK2.name)
    notebook = tmp_path / "labs" / WEEK2.name / "lab.ipynb"
    nb = json.loads(notebook.read_text())
    code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["0.42\n"]}]
    notebook.write_text(json.dumps(nb))
    monkeypatch.setenv("MLSAFETY_REPO", str(tmp_path))
    problems = answer_leaks(tmp_path)
    assert problems == [
        f"labs/{WEEK2.name}/{name}.py is not its generated stub",
        f"labs/{WEEK2.name}/lab.ipynb has outputs (nbstripout it)",
    ]
    monkeypatch.delenv("MLSAFETY_REPO")
    assert answer_leaks(ROOT) == []


def test_release_refuses_a_folder_that_is_not_empty(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    done = run([str(BIN / "mlsafety"), "release", str(tmp_path)])
    assert done.returncode == 2 and "is not empty" in done.stderr
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_a_report_that_did_not_grade_the_students_files_earns_nothing(tmp_path, monkeypatch):
    from mlsafety.classroom import result

    monkeypatch.delenv(SPECS_ENV, raising=False)
    function = next(iter(graded_functions(WEEK2)))
    row = {"function": function, "status": "PASS", "specs_passed": 3, "specs_total": 3}
    report = {
        "implementation": "student",
        "fell_back": [],
        "weeks": [{"id": "week02", "make": "week2", "functions": [row]}],
    }
    path = tmp_path / "progress.json"
    path.write_text(json.dumps(report))
    assert result("week02", function, path) == (True, f"week02 {function}: PASS (3/3 specs)")
    for changes in ({"implementation": "solution"}, {"fell_back": ["week02/risk.py"]}):
        path.write_text(json.dumps(report | changes))
        ok, line = result("week02", function, path)
        assert not ok and "did not grade your own files" in line
    path.write_text(json.dumps(report | {"specs_sha256": "1" * 64}))
    monkeypatch.setenv(SPECS_ENV, "2" * 64)
    ok, line = result("week02", function, path)
    assert not ok and "specs differ from the release's" in line
