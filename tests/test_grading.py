import sys

import pytest

from mlsafety import SetupError
from mlsafety.grading import implementation_dirs, load_module, module_path
from mlsafety.weeks import all_labs, find_week, module_names

from .conftest import BIN, ROOT, run

WEEK3 = ROOT / "labs" / "week03_adversarial"


@pytest.mark.parametrize(
    "spelling", ["3", "03", "week3", "week03", "week03_adversarial", "labs/week03_adversarial"]
)
def test_a_week_is_found_however_it_is_written(spelling):
    assert find_week(spelling) == WEEK3


def test_a_wrong_week_lists_the_valid_ones():
    with pytest.raises(SetupError) as err:
        find_week("99")
    assert "valid weeks:" in str(err.value) and "3 (week03_adversarial)" in str(err.value)


def test_the_switch_picks_student_solution_or_a_folder_with_fallback(tmp_path):
    (tmp_path / "attacks.py").write_text("WHO = 'variant'\n")
    assert implementation_dirs(WEEK3, "student") == [WEEK3]
    assert implementation_dirs(WEEK3, "solution") == [ROOT / "solutions" / WEEK3.name]
    assert module_path("attacks", WEEK3, str(tmp_path)) == tmp_path / "attacks.py"
    assert (
        module_path("robustness", WEEK3, str(tmp_path))
        == ROOT / "solutions" / WEEK3.name / "robustness.py"
    )
    with pytest.raises(SetupError, match="does not exist"):
        implementation_dirs(WEEK3, str(tmp_path / "nowhere"))


def test_the_environment_variable_chooses_the_default(monkeypatch):
    monkeypatch.setenv("MLSAFETY_IMPL", "solution")
    assert implementation_dirs(WEEK3) == [ROOT / "solutions" / WEEK3.name]


def test_each_load_is_a_fresh_module_under_its_own_name(tmp_path):
    (tmp_path / "attacks.py").write_text("VALUE = 1\n")
    first = load_module("attacks", 3, str(tmp_path))
    (tmp_path / "attacks.py").write_text("VALUE = 2\n")
    second = load_module("attacks", 3, str(tmp_path))
    assert (first.VALUE, second.VALUE) == (1, 2)
    assert first.__name__ != second.__name__ and "attacks" not in sys.modules
    solution = load_module("attacks", 3, "solution")
    assert hasattr(solution, "pgd_linf") and solution.__name__ in sys.modules


def test_student_modules_are_the_solution_modules():
    for week_dir in all_labs().values():
        for name in module_names(week_dir):
            assert (week_dir / f"{name}.py").exists(), (
                f"{week_dir.name} lacks the student module {name}.py"
            )


def test_stubs_are_generated_from_the_solution():
    for lab in all_labs():
        result = run([str(BIN / "python"), "scripts/make_stubs.py", lab, "--check"])
        assert result.returncode == 0, result.stderr


def test_make_reports_wrong_weeks_and_prints_help():
    bad = run(["make", "--no-print-directory", "test-week99"])
    assert bad.returncode != 0 and "valid weeks:" in bad.stderr
    assert "3 (week03_adversarial)" in bad.stderr
    help_text = run(["make", "--no-print-directory"]).stdout
    for target in ("setup", "lab", "test-%", "assets", "data", "doctor"):
        assert target in help_text


def test_the_table_names_each_function_with_its_first_failure(tmp_path):
    made = run([str(BIN / "mlsafety"), "mutant", "3", "pgd_linf_no_projection", str(tmp_path)])
    assert made.returncode == 0 and f"IMPL={tmp_path}" in made.stdout
    result = run([str(BIN / "mlsafety"), "test", "3", "--impl", str(tmp_path)])
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    row = next(line for line in lines if line.startswith("pgd_linf "))
    assert (
        "FAIL" in row
        and "perturbation exceeds eps=0.1" in row
        and "project after every step" in row
    )
    assert next(line for line in lines if line.startswith("fgsm ")).split()[2] == "PASS"
    assert "6/7 graded functions pass" in result.stdout


def test_a_file_that_does_not_import_is_named_in_one_line(tmp_path):
    source = (ROOT / "solutions" / WEEK3.name / "attacks.py").read_text()
    (tmp_path / "attacks.py").write_text(source.replace("def fgsm(", "def fgsm(:", 1))
    result = run(
        [str(BIN / "mlsafety"), "test", "3", "--impl", str(tmp_path), "--functions", "fgsm"]
    )
    assert result.returncode == 1
    row = next(line for line in result.stdout.splitlines() if line.startswith("fgsm "))
    assert "attacks.py does not import (SyntaxError line" in row


def test_the_repository_is_the_checkout_the_user_is_in(tmp_path, monkeypatch):
    """Where the toolkit is installed from another copy (the images bake one), a
    terminal in the work folder grades the work folder."""
    from mlsafety.paths import repo_root

    monkeypatch.delenv("MLSAFETY_REPO", raising=False)
    work = tmp_path / "work"
    (work / "labs" / "week03_adversarial").mkdir(parents=True)
    (work / "environments").mkdir()
    (work / "environments" / "assets.toml").write_text("")
    monkeypatch.chdir(work / "labs" / "week03_adversarial")
    assert repo_root() == work.resolve()
    monkeypatch.chdir(tmp_path)
    assert repo_root() == ROOT, "outside any checkout: the one the toolkit came from"
    monkeypatch.setenv("MLSAFETY_REPO", str(tmp_path))
    assert repo_root() == tmp_path.resolve(), "MLSAFETY_REPO wins"
