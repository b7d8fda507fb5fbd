"""The course-level progress report: every week's specs on the student's files.

``make progress`` prints one line per week (week, topic, graded functions
passing, status, what to fix next) and writes a JSON report a facilitator can
collect. A week whose modules are exactly the generated stubs is reported as
"not started" without running its specs; so is a started week in which every
function still raises NotImplementedError. All weeks run in this one process
(torch is imported once), each through the same grading plugin as
``make test-weekN``.

The report says what it graded, so a facilitator can trust it or not: the
implementation, the commit and whether the tree had uncommitted changes, the
sha256 of the spec files (the class report compares it with the release's),
and per week the modules taken from the reference because the graded folder
lacked them (``fell_back``): such a report is never the student's own work.
"""

from __future__ import annotations

import datetime
import getpass
import hashlib
import json
import os
import platform
import subprocess
import time
from pathlib import Path

from mlsafety.grading import chosen_impl, fell_back, prepare
from mlsafety.paths import repo_root
from mlsafety.stubs import untouched
from mlsafety.verify import graded_run
from mlsafety.weeks import (
    all_labs,
    find_week,
    graded_functions,
    lab_id,
    make_name,
    track,
    week_number,
    week_title,
)

SCHEMA = 2
NOT_STARTED, IN_PROGRESS, COMPLETE = "not started", "in progress", "complete"


def week_progress(week_dir: Path, impl: str) -> dict:
    """One week's entry of the report."""
    declared = graded_functions(week_dir)
    started = time.perf_counter()
    borrowed = fell_back(week_dir, impl)
    if impl == "student" and untouched(week_dir):
        rows = [
            {"function": f, "track": t, "status": "TODO", "passed": 0, "failed": 0}
            for f, t in declared.items()
        ]
        ran = False
    else:
        prepare(week_dir)
        run = graded_run(week_dir, impl)
        rows = run.rows or [
            {
                "function": f,
                "track": t,
                "status": "FAIL",
                "first_failure": run.output.strip()[-200:],
            }
            for f, t in declared.items()
        ]
        ran = True
    passing = [r for r in rows if r["status"] == "PASS"]
    if len(passing) == len(rows) and rows:
        status = COMPLETE
    elif not passing and all(r["status"] == "TODO" for r in rows):
        status = NOT_STARTED
    else:
        status = IN_PROGRESS
    nxt = _next_to_fix(rows)
    return {
        # the week's number in the course track; the lab's id in the security track
        "week": week_number(week_dir) if track(week_dir) == "course" else lab_id(week_dir),
        "id": lab_id(week_dir),
        "track": track(week_dir),
        "make": make_name(week_dir),
        "lab": week_dir.name,
        "topic": week_title(week_dir),
        "status": status,
        "specs_run": ran,
        "fell_back": borrowed,
        "specs_sha256": specs_digest(repo_root(), [week_dir]),
        "passed": len(passing),
        "total": len(rows),
        "core": _track_count(rows, "core"),
        "stretch": _track_count(rows, "stretch"),
        "next": nxt["function"] if nxt else None,
        "next_failure": nxt.get("first_failure", "") if nxt else "",
        "seconds": round(time.perf_counter() - started, 2),
        "functions": [
            {
                "function": r["function"],
                "track": r["track"],
                "status": r["status"],
                "specs_passed": r.get("passed", 0),
                "specs_total": r.get("passed", 0) + r.get("failed", 0),
                "first_failure": r.get("first_failure", ""),
            }
            for r in rows
        ],
    }


def _next_to_fix(rows: list[dict]) -> dict | None:
    """What a student should look at next: a failing function before one not
    written yet (TODO), and core before stretch."""
    for wanted in (("FAIL", "core"), ("FAIL", "stretch"), ("TODO", "core"), ("TODO", "stretch")):
        for r in rows:
            if (r["status"], r["track"]) == wanted:
                return r
    return None


def _track_count(rows: list[dict], track: str) -> dict:
    chosen = [r for r in rows if r["track"] == track]
    return {"passed": sum(r["status"] == "PASS" for r in chosen), "total": len(chosen)}


def report(impl: str | None = None, weeks: list | None = None, echo=None) -> dict:
    """The whole report; ``echo`` receives each week's entry as it is done."""
    impl = chosen_impl(impl)
    folders = [find_week(w) for w in weeks] if weeks else list(all_labs().values())
    entries = []
    for folder in folders:
        entries.append(week_progress(folder, impl))
        if echo:
            echo(entries[-1])
    return {
        "schema": SCHEMA,
        "generated": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "student": student(),
        "implementation": impl,
        "commit": _git("rev-parse", "HEAD"),
        "dirty": _dirty(),
        "specs_sha256": specs_digest(repo_root()),
        "fell_back": [f"{e['id']}/{m}.py" for e in entries for m in e["fell_back"]],
        "python": platform.python_version(),
        "weeks": entries,
        "totals": {
            "functions_passing": sum(e["passed"] for e in entries),
            "functions": sum(e["total"] for e in entries),
            "weeks_complete": sum(e["status"] == COMPLETE for e in entries),
            "weeks": len(entries),
        },
    }


def spec_files(root: Path, labs: list[Path] | None = None) -> list[Path]:
    """The files that decide a grade: the labs' specs and conftests, the root
    conftest and the grading plugin with the specs' shared helpers."""
    root = Path(root)
    folders = [root / "labs" / lab.name for lab in labs] if labs else [root / "labs" / "*"]
    found = []
    for folder in folders:
        rel = folder.relative_to(root).as_posix()
        found += [*root.glob(f"{rel}/test_*.py"), *root.glob(f"{rel}/conftest.py")]
    if not labs:
        found += [root / "conftest.py", root / "src/mlsafety/grading.py"]
        found.append(root / "src/mlsafety/specs.py")
    return sorted(p for p in found if p.is_file())


def specs_digest(root: Path, labs: list[Path] | None = None) -> str:
    """sha256 over the spec files' paths and contents (line endings normalised,
    so a Windows checkout hashes like a Linux one)."""
    digest = hashlib.sha256()
    for path in spec_files(root, labs):
        content = path.read_bytes().replace(b"\r\n", b"\n")
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(content).digest())
    return digest.hexdigest()


def _dirty() -> bool | None:
    """Whether tracked files differ from the commit (None: not a git checkout)."""
    status = _git_raw("status", "--porcelain", "--untracked-files=no")
    return None if status is None else bool(status.strip())


def student() -> dict:
    """Who this report is about: $MLSAFETY_STUDENT, else git's user, else the login."""
    name = os.environ.get("MLSAFETY_STUDENT") or _git("config", "user.name")
    return {"name": name or getpass.getuser(), "email": _git("config", "user.email")}


def _git(*args: str) -> str | None:
    out = _git_raw(*args)
    return (out.strip() or None) if out is not None else None


def _git_raw(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(repo_root()), *args], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


HEADER = ("week", "topic", "passing", "core", "stretch", "status", "next to fix")


def row(entry: dict) -> tuple[str, ...]:
    def frac(d):
        return f"{d['passed']}/{d['total']}" if d["total"] else "-"

    return (
        str(entry["week"]),
        entry["topic"],
        f"{entry['passed']}/{entry['total']}",
        frac(entry["core"]),
        frac(entry["stretch"]),
        entry["status"],
        entry["next"] if entry["status"] == IN_PROGRESS else "",
    )


def table_lines(result: dict) -> list[str]:
    rows = [HEADER, *(row(e) for e in result["weeks"])]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]

    def fmt(r):
        return "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()

    totals = result["totals"]
    return [
        f"Progress of {result['student']['name']} (implementation: {result['implementation']})",
        fmt(HEADER),
        "  ".join("-" * w for w in widths),
        *(fmt(r) for r in rows[1:]),
        f"{totals['functions_passing']}/{totals['functions']} graded functions pass; "
        f"{totals['weeks_complete']}/{totals['weeks']} weeks complete",
    ]


def _shorten(text: str, width: int = 110) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _label(entry: dict) -> str:
    return f"week {entry['week']}" if entry["track"] == "course" else entry["id"]


def run_progress(
    impl: str | None = None, weeks: list | None = None, json_path: str | None = None
) -> int:
    """Print the table (a line per week as it finishes) and write the JSON report."""
    result = report(impl, weeks, echo=lambda e: print(f"  {_label(e)}: {e['status']}"))
    print()
    for line in table_lines(result):
        print(line)
    target = Path(json_path) if json_path else repo_root() / "artifacts" / "progress.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2) + "\n")
    if result["fell_back"]:
        print(
            f"Not your work: fell back to the reference for {', '.join(result['fell_back'])} "
            f"(missing from {result['implementation']}); a facilitator does not count this report"
        )
    started = [e for e in result["weeks"] if e["status"] == IN_PROGRESS]
    for entry in started:
        print(f"  {_label(entry)}, {entry['next']}: {_shorten(entry['next_failure'])}")
    if started:
        print(f"Every function's result: make test-{started[0]['make']}")
    print(f"Report for your facilitator: {_relative(target)}")
    return 0
