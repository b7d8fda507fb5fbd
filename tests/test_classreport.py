"""`make class-report`: a section graded from the students' own files, with
the release's specs, in a pool of workers; progress files counted only when
they graded the student's own files at a clean commit with the release's
specs; every odd submission gets a row that says why."""

import csv
import json
import shutil
import subprocess

import pytest

from mlsafety.classreport import display_name, read_progress, release_labs
from mlsafety.progress import SCHEMA, specs_digest
from mlsafety.weeks import all_labs, graded_functions, module_names, solution_dir

from .conftest import BIN, ROOT, run

WEEK2 = all_labs()["week02"]
WEEK2_FUNCTIONS = list(graded_functions(WEEK2))


def make_clone(folder, git=False):
    """A student's clone: the labs as committed (stubs), optionally a git repository."""
    shutil.copytree(ROOT / "labs", folder / "labs", ignore=shutil.ignore_patterns("__pycache__"))
    if git:
        for cmd in (
            ["init", "-q"],
            ["add", "-A"],
            ["-c", "user.name=s", "-c", "user.email=s@example.org", "commit", "-qm", "work"],
        ):
            subprocess.run(["git", "-C", str(folder), *cmd], check=True, capture_output=True)
    return folder


def solve_week2(clone, modules=None):
    for name in modules or module_names(WEEK2):
        shutil.copy(solution_dir(WEEK2) / f"{name}.py", clone / "labs" / WEEK2.name / f"{name}.py")


def progress_file(path, **changes):
    """A progress report as `make progress` writes it, week 2 complete."""
    weeks = [
        {
            "id": lab,
            "functions": [
                {"function": f, "status": "PASS" if lab == "week02" else "TODO"}
                for f in graded_functions(folder)
            ],
        }
        for lab, folder in all_labs().items()
    ]
    data = {
        "schema": SCHEMA,
        "implementation": "student",
        "commit": "0123456789abcdef0123456789abcdef01234567",
        "dirty": False,
        "specs_sha256": specs_digest(ROOT),
        "fell_back": [],
        "weeks": weeks,
    } | changes
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="module")
def section(tmp_path_factory):
    """Clones (complete week 2, half of it, one that calls os._exit, one that hangs,
    one with edited specs), a folder that is not a clone, progress files, odd names."""
    root = tmp_path_factory.mktemp("section")
    solve_week2(make_clone(root / "ada", git=True))
    first = module_names(WEEK2)[0]
    solve_week2(make_clone(root / "ben"), [first])
    exits = make_clone(root / "cy")
    with open(exits / "labs" / WEEK2.name / f"{first}.py", "a") as f:
        f.write("\nimport os\nos._exit(3)\n")
    hangs = make_clone(root / "dee")  # stuck where the specs' own timeout cannot stop it
    with open(hangs / "labs" / WEEK2.name / f"{first}.py", "a") as f:
        f.write(
            "\nimport signal, time\nsignal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})\n"
        )
        f.write("time.sleep(10**6)\n")
    volume = root / "eve"  # a hub volume: the clone is in work/
    solve_week2(make_clone(volume / "work"))
    spec = next((volume / "work" / "labs" / WEEK2.name).glob("test_*.py"))
    spec.write_text(spec.read_text() + "\n# edited\n")
    make_clone(root / "gil" / "gil-main")  # an archive unpacked into a folder of its own
    solve_week2(make_clone(root / "han"))
    (root / "han" / "labs" / WEEK2.name / f"{module_names(WEEK2)[-1]}.py").unlink()
    (root / "fay").mkdir()
    (root / "fay" / "notes.txt").write_text("not a clone")
    solve_week2(make_clone(root / "=odd,name<b>"))
    progress_file(root / "gus.json")
    progress_file(root / "hal.json", implementation="/tmp/empty", fell_back=["week02/risk.py"])
    progress_file(root / "ivy.json", schema=1)
    progress_file(root / "jo.json", dirty=True, commit=None)
    progress_file(root / "kim.json", specs_sha256="0" * 64)
    (root / "lu.json").write_text("{not json")
    (root / "grades_export.csv").write_text("ignored\n")
    out = root / "out"
    done = run(
        [str(BIN / "mlsafety"), "class-report", str(root), "--out", str(out), "--limit", "60"],
        timeout=1200,
        env={"MLSAFETY_DATA": str(ROOT / "data")},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((out / "class.json").read_text())
    return out, {s["name"]: s for s in report["students"]}, report, done.stdout


def week2(student):
    return {f: c["status"] for f, c in student["labs"]["week02"]["functions"].items()}


@pytest.mark.timeout(1300)
def test_clones_are_graded_with_the_release_specs(section):
    _, rows, report, _ = section
    assert set(week2(rows["ada"]).values()) == {"PASS"}
    assert rows["ada"]["counted"] and rows["ada"]["passed"] == len(WEEK2_FUNCTIONS)
    assert any(n.startswith("commit ") for n in rows["ada"]["notes"])
    assert set(week2(rows["ben"]).values()) == {"PASS", "TODO"}
    assert 0 < rows["ben"]["passed"] < len(WEEK2_FUNCTIONS)
    # untouched labs: not done, without running their specs
    assert set(
        rows["ada"]["labs"]["week03"]["functions"][f]["status"]
        for f in graded_functions(all_labs()["week03"])
    ) == {"TODO"}
    # a missing module: its functions fail, never taken from the reference; the others count
    han = rows["han"]["labs"]["week02"]["functions"]
    assert {c["status"] for c in han.values()} == {"PASS", "FAIL"}
    gone = f"{module_names(WEEK2)[-1]}.py"
    assert all("not found" in c["detail"] for c in han.values() if c["status"] == "FAIL")
    assert f"week02: {gone} missing" in rows["han"]["notes"]
    # edited specs in the clone: graded with the release's and flagged
    assert set(week2(rows["eve"]).values()) == {"PASS"}
    assert any("specs in the clone differ" in n for n in rows["eve"]["notes"])
    assert report["workers"] == 2 and report["release"]["specs_sha256"] == specs_digest(ROOT)


@pytest.mark.timeout(1300)
def test_a_student_that_exits_or_hangs_costs_only_their_row(section):
    _, rows, _, _ = section
    assert set(week2(rows["cy"]).values()) == {"NOT GRADED"}
    assert any("grading process ended (exit code 3)" in n for n in rows["cy"]["notes"])
    assert rows["cy"]["labs"]["week03"]["functions"]  # the other labs went on in a new worker
    assert set(
        rows["cy"]["labs"]["week08"]["functions"][f]["status"]
        for f in graded_functions(all_labs()["week08"])
    ) == {"TODO"}
    assert set(week2(rows["dee"]).values()) == {"NOT GRADED"}
    assert any("time limit of 60 s" in n for n in rows["dee"]["notes"])
    assert any(
        "not graded: the time limit was reached in week02" in n for n in rows["dee"]["notes"]
    )


@pytest.mark.timeout(1300)
def test_unusable_submissions_say_why(section):
    _, rows, report, _ = section
    assert not rows["fay"]["counted"] and "not a clone" in rows["fay"]["notes"][0]
    gil = rows["gil"]  # untouched labs: graded as not done, without running their specs
    assert gil["counted"] and gil["path"].endswith("gil-main") and gil["passed"] == 0
    assert {c["status"] for lab in gil["labs"].values() for c in lab["functions"].values()} == {
        "TODO"
    }
    odd = rows["_odd_name_b_"]
    assert odd["counted"] and "odd characters" in odd["notes"][0]
    assert rows["gus"]["counted"] and rows["gus"]["passed"] == len(WEEK2_FUNCTIONS)
    reasons = {
        "hal": "graded IMPL='/tmp/empty'",
        "ivy": "schema 1",
        "jo": "uncommitted changes",
        "kim": "modified specs",
        "lu": "does not read as JSON",
    }
    for name, why in reasons.items():
        assert not rows[name]["counted"] and why in "; ".join(rows[name]["notes"]), rows[name]
    assert "fell back to the reference for week02/risk.py" in "; ".join(rows["hal"]["notes"])
    assert "unknown commit" in "; ".join(rows["jo"]["notes"])
    assert report["ignored"] == ["grades_export.csv"]


@pytest.mark.timeout(1300)
def test_grades_csv_heat_map_and_page(section):
    out, rows, report, stdout = section
    with open(out / "grades.csv", newline="", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    assert [r["student"] for r in table] == list(rows)
    labs = release_labs()
    expected = ["student", "source", "counted"]
    for lab, info in labs.items():
        expected += [f"{lab}:{f}" for f in info["functions"]] + [f"{lab}:total"]
    assert list(table[0]) == [*expected, "core", "stretch", "total", "notes"]
    by_name = {r["student"]: r for r in table}
    ada = by_name["ada"]
    assert (
        ada["week02:total"] == str(len(WEEK2_FUNCTIONS))
        and ada[f"week02:{WEEK2_FUNCTIONS[0]}"] == "1"
    )
    assert ada["total"] == str(rows["ada"]["passed"]) and ada["week03:fgsm"] == "0"
    core = sum(t == "core" for t in graded_functions(WEEK2).values())
    assert ada["core"] == str(core) and ada["stretch"] == str(len(WEEK2_FUNCTIONS) - core)
    hal = by_name["hal"]  # never counted: no grades, the reason in notes
    assert hal["counted"] == "no" and hal["total"] == "" and hal["week02:total"] == ""
    assert "not counted" in hal["notes"]
    assert (out / "heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "heatmap.html").read_text()
    assert "_odd_name_b_" in page and "=odd,name&lt;b&gt;" in page  # the note quotes the raw name
    assert "<b>" not in page
    assert page.split("<tbody>")[1].count("<tr>") == len(rows)
    assert f'title="ada, week02 {WEEK2_FUNCTIONS[0]}: pass' in page
    assert f"{len(rows)} students, " in stdout


def test_names_that_a_spreadsheet_or_page_would_misread():
    assert display_name("ada")[1] is None
    assert display_name("=HYPERLINK(x)")[0].startswith("_")
    name, note = display_name("a\nb<script>")
    assert "\n" not in name and "<" not in name and "odd characters" in note


def test_a_progress_file_that_borrowed_the_reference_is_never_counted(tmp_path):
    row = read_progress(progress_file(tmp_path / "p.json", implementation="solution"), "p")
    assert not row.counted and "graded IMPL='solution'" in row.notes[-1]
    row = read_progress(progress_file(tmp_path / "q.json"), "q")
    assert row.counted and row.labs["week02"]["functions"][WEEK2_FUNCTIONS[0]]["status"] == "PASS"


def test_make_progress_on_an_empty_folder_says_it_is_not_the_students_work(tmp_path):
    report = tmp_path / "report.json"
    done = run(
        [str(BIN / "mlsafety"), "progress", "2", "--impl", str(tmp_path), "--json", str(report)],
        env={"MLSAFETY_DATA": str(ROOT / "data")},
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(report.read_text())
    names = [f"week02/{m}.py" for m in module_names(WEEK2)]
    assert data["fell_back"] == names and data["weeks"][0]["fell_back"] == module_names(WEEK2)
    assert "Not your work: fell back to the reference" in done.stdout
    assert data["specs_sha256"] == specs_digest(ROOT) and data["commit"]
    assert isinstance(data["dirty"], bool)
    assert not read_progress(report, "x").counted


def test_strict_grading_never_falls_back(tmp_path, monkeypatch):
    from mlsafety import SetupError
    from mlsafety.grading import fell_back, load_module

    monkeypatch.setenv("MLSAFETY_STRICT_IMPL", "1")
    assert fell_back(WEEK2, str(tmp_path)) == []
    with pytest.raises(SetupError, match="not found"):
        load_module(module_names(WEEK2)[0], WEEK2, str(tmp_path))
    monkeypatch.delenv("MLSAFETY_STRICT_IMPL")
    assert fell_back(WEEK2, str(tmp_path)) == module_names(WEEK2)


def test_make_lists_the_facilitator_targets_and_needs_a_folder():
    help_text = run(["make", "--no-print-directory", "help"]).stdout
    assert "class-report" in help_text and "release" in help_text
    done = run(["make", "--no-print-directory", "STAMP=", "class-report"])
    assert done.returncode != 0 and "FROM=<folder" in done.stdout
    done = run([str(BIN / "mlsafety"), "class-report", str(ROOT / "no-such-folder")])
    assert done.returncode == 2 and "is not a folder" in done.stderr


@pytest.mark.timeout(900)
def test_what_one_student_changes_does_not_reach_the_next(tmp_path):
    """One worker grades both; the first student's module breaks builtins and
    torch at import, the second student's correct work still passes."""
    section = tmp_path / "section"
    poison = make_clone(section / "a-poison")
    week1 = all_labs()["week01"]
    module = poison / "labs" / week1.name / f"{module_names(week1)[0]}.py"
    module.write_text(
        module.read_text()
        + "\nimport builtins, math, torch\nbuiltins.abs = lambda x: 0\n"
        + "math.isclose = lambda *a, **k: False\ntorch.allclose = lambda *a, **k: False\n"
        + "torch.set_default_dtype(torch.float64)\n"
    )
    solve_week2(make_clone(section / "b-good"))
    out = tmp_path / "out"
    done = run(
        [str(BIN / "mlsafety"), "class-report", str(section), "--out", str(out), "--workers", "1"],
        timeout=850,
        env={"MLSAFETY_DATA": str(ROOT / "data")},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((out / "class.json").read_text())
    rows = {s["name"]: s for s in report["students"]}
    assert report["processes"] == 1
    assert set(week2(rows["b-good"]).values()) == {"PASS"}, week2(rows["b-good"])
