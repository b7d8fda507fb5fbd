"""`make progress`: every week's specs on the student's files, one line per week,
and a JSON report; untouched weeks are "not started", not a wall of errors."""

import json
import shutil

import pytest

from mlsafety.stubs import expected_stubs, untouched
from mlsafety.weeks import all_weeks, graded_functions, week_title

from .conftest import BIN, ROOT, run


@pytest.fixture
def clone(tmp_path):
    """A student's work folder: the labs as committed, graded through MLSAFETY_REPO."""
    for part in ("labs", "solutions", "environments"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("conftest.py", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def progress(clone, *args):
    report = clone / "report.json"
    result = run(
        [str(BIN / "mlsafety"), "progress", *args, "--json", str(report)],
        env={"MLSAFETY_REPO": str(clone), "MLSAFETY_DATA": str(ROOT / "data")},
        cwd=clone,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout, json.loads(report.read_text())


def test_committed_stubs_count_as_untouched():
    for week_dir in all_weeks().values():
        assert untouched(week_dir) == all(
            (week_dir / f"{name}.py").read_text() == text
            for name, text in expected_stubs(week_dir).items()
        )


def test_each_week_has_a_topic_and_graded_functions():
    for number, week_dir in all_weeks().items():
        assert week_title(week_dir) and not week_title(week_dir).startswith("#")
        tracks = graded_functions(week_dir)
        assert tracks and set(tracks.values()) <= {"core", "stretch"}, number


def test_a_mix_of_complete_started_broken_and_untouched_weeks(clone):
    labs = clone / "labs"
    week1, week3, week7 = (all_weeks()[n].name for n in (1, 3, 7))
    for module in (clone / "solutions" / week1).glob("*.py"):
        shutil.copy(module, labs / week1 / module.name)
    shutil.copy(clone / "solutions" / week3 / "attacks.py", labs / week3 / "attacks.py")
    with open(labs / week7 / "ccs.py", "a") as broken:
        broken.write("\ndef half_written(:\n")
    week2 = labs / all_weeks()[2].name
    edited = next(iter(expected_stubs(week2)))
    (week2 / f"{edited}.py").write_text(
        "# my notes\n" + (week2 / f"{edited}.py").read_text()
    )  # touched, but every function still raises NotImplementedError

    out, report = progress(clone, "1", "2", "3", "4", "7")
    weeks = {w["week"]: w for w in report["weeks"]}
    assert weeks[1]["status"] == "complete" and weeks[1]["passed"] == weeks[1]["total"] > 0
    assert weeks[2]["status"] == "not started" and weeks[2]["specs_run"]
    assert weeks[3]["status"] == "in progress" and 0 < weeks[3]["passed"] < weeks[3]["total"]
    assert weeks[3]["next"] in {"robust_accuracy"}, "the core function not written yet comes first"
    assert weeks[4]["status"] == "not started" and not weeks[4]["specs_run"]
    assert weeks[7]["status"] == "in progress" and weeks[7]["passed"] == 0
    assert "ccs.py does not import (SyntaxError" in weeks[7]["next_failure"]
    for w in weeks.values():
        assert w["total"] == len(graded_functions(labs / w["lab"]))
        assert w["core"]["total"] + w["stretch"]["total"] == w["total"]
        assert {f["function"] for f in w["functions"]} == set(graded_functions(labs / w["lab"]))
    assert report["totals"]["weeks_complete"] == 1 and report["student"]["name"]
    assert report["totals"]["functions_passing"] == sum(w["passed"] for w in weeks.values())

    table = out[out.index("Progress of") :]
    assert "Traceback" not in out and "NotImplementedError\n" not in out
    lines = {line.split()[0]: line for line in table.splitlines()[3:8]}
    assert "complete" in lines["1"] and "not started" in lines["4"]
    assert "in progress" in lines["3"] and "robust_accuracy" in lines["3"]
    assert "week 7, ccs_loss: ccs.py does not import" in out
    assert f"{report['totals']['functions_passing']}/{report['totals']['functions']} graded" in out


def test_the_solution_completes_every_week_it_is_asked_for(clone):
    out, report = progress(clone, "2", "--impl", "solution")
    assert [w["status"] for w in report["weeks"]] == ["complete"]
    assert report["implementation"] == "solution"


def test_a_wrong_week_is_one_line(clone):
    result = run(
        [str(BIN / "mlsafety"), "progress", "42"], env={"MLSAFETY_REPO": str(clone)}, cwd=clone
    )
    assert result.returncode == 2 and "valid weeks:" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_make_lists_progress():
    assert "progress" in run(["make", "help"]).stdout
