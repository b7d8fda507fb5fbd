"""The class report: a whole section graded from the students' own files.

``make class-report FROM=<folder>`` reads a folder holding, side by side,

- student clones (a folder with ``labs/``, as GitHub Classroom's assistant
  downloads them; a hub volume whose ``work/`` or only subfolder is the
  clone), graded here with this release's specs: the facilitator's
  ``labs/*/test_*.py`` and conftests, never the copies inside the clone;
- progress files (``*.json`` written by ``make progress``), counted only when
  they graded the student's own files (``IMPL=student``, no module taken from
  the reference) at a clean, known commit with the release's specs.

Clones are graded in a bounded pool of worker processes: each imports torch
once and grades many students, lab after lab, each lab in a forked child of
the worker, so nothing a student's module changes reaches the next student.
A module that ends its process (``sys.exit`` at import is a failed spec;
``os._exit`` or a crash ends the child) costs that lab, and the student's
other labs go on. A student past the per-student time limit (an endless loop
the specs' own timeouts cannot stop) gets the lab it was in and the labs
left marked "not graded"; a worker that outlives the limit itself is
replaced. Everything a facilitator needs to trust a row is in its notes.

Writes into ``OUT`` (default ``artifacts/class/``): ``grades.csv`` (one row
per student: a 1/0 column per graded function, a total per lab, core and
stretch totals, notes), ``class.json`` (every detail), ``heatmap.png`` and
``heatmap.html`` (students x graded functions).
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import html
import json
import multiprocessing
import os
import re
import select
import signal
import subprocess
import time
import unicodedata
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path

from mlsafety import SetupError
from mlsafety.paths import REPO_ENV, repo_root

SCHEMA = 1
PASS, FAIL, TODO, MISSING, NOT_GRADED = "PASS", "FAIL", "TODO", "MISSING", "NOT GRADED"
DEFAULT_LIMIT_S = 600
# Characters kept in a name as they are; anything else is replaced and noted.
_ODD = re.compile(r"[^\w .@+()'-]", re.UNICODE)


@dataclass
class Student:
    """One row of the report."""

    name: str
    source: str  # "clone", "progress file" or "unreadable"
    path: str
    counted: bool = True
    notes: list[str] = field(default_factory=list)
    labs: dict = field(default_factory=dict)  # lab id -> {"functions": {f: row}, ...}
    seconds: float = 0.0


# --------------------------------------------------------------------------- #
# What the release grades with.
# --------------------------------------------------------------------------- #


def release_labs() -> dict[str, dict]:
    """Lab id -> {"folder", "functions" (name -> track), "specs_sha256"} of this release."""
    from mlsafety.progress import specs_digest
    from mlsafety.weeks import all_labs, graded_functions

    root = repo_root()
    return {
        lab: {
            "folder": folder.name,
            "functions": graded_functions(folder),
            "specs_sha256": specs_digest(root, [folder]),
        }
        for lab, folder in all_labs().items()
    }


# --------------------------------------------------------------------------- #
# Finding the students.
# --------------------------------------------------------------------------- #


def display_name(raw: str) -> tuple[str, str | None]:
    """A name safe in a CSV, a spreadsheet and a web page, and a note when it
    had to change (control characters, markup, a leading formula sign)."""
    name = unicodedata.normalize("NFC", raw)
    clean = _ODD.sub("_", name).strip() or "_"
    if clean[0] in "=+-@":  # a spreadsheet would run it as a formula
        clean = "_" + clean[1:]
    if clean == raw:
        return clean, None
    return clean, f"name {raw!r} has odd characters; shown as {clean!r}"


def find_clone(folder: Path) -> Path | None:
    """The clone inside ``folder``: itself, its ``work/`` (a hub volume), or its
    only subfolder (an archive unpacked into a folder of its own)."""
    if (folder / "labs").is_dir():
        return folder
    if (folder / "work" / "labs").is_dir():
        return folder / "work"
    subfolders = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if len(subfolders) == 1 and (subfolders[0] / "labs").is_dir():
        return subfolders[0]
    return None


def discover(source: Path) -> tuple[list[Student], list[Path], list[str]]:
    """Every student under ``source``: rows for unusable entries, the clones to
    grade, and the files that are neither clones nor progress files."""
    source = Path(source)
    if not source.is_dir():
        raise SetupError(
            f"{source} is not a folder; FROM=<folder of student clones or progress files>"
        )
    students, clones, ignored = [], [], []
    seen: dict[str, int] = {}
    for entry in sorted(source.iterdir(), key=lambda p: p.name):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.suffix.lower() != ".json":
            ignored.append(entry.name)
            continue
        raw = entry.stem if entry.is_file() else entry.name
        name, odd = display_name(raw)
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name} ({seen[name]})"
        if entry.is_file():
            try:
                student = read_progress(entry, name)
            except (AttributeError, KeyError, TypeError, ValueError) as err:
                student = _uncounted(
                    Student(name, "progress file", str(entry)),
                    f"progress file is malformed ({type(err).__name__}: {err})",
                )
        else:
            try:
                clone = find_clone(entry)
            except OSError:  # a folder we may not read
                clone = None
            student = Student(name, "clone" if clone else "unreadable", str(clone or entry))
            if clone is None:
                student.counted = False
                student.notes.append(
                    "not a clone of the labs (no labs/ folder, nor a work/ or single subfolder with one)"
                )
            else:
                clones.append(clone)
        if odd:
            student.notes.insert(0, odd)
        students.append(student)
    return students, clones, ignored


# --------------------------------------------------------------------------- #
# Progress files a student handed in.
# --------------------------------------------------------------------------- #


def read_progress(path: Path, name: str, labs: dict | None = None) -> Student:
    """A progress file as a row: counted only when it graded the student's own
    files, at a clean known commit, with this release's specs."""
    from mlsafety.progress import SCHEMA as PROGRESS_SCHEMA
    from mlsafety.progress import specs_digest

    labs = labs or release_labs()
    student = Student(name, "progress file", str(path))
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return _uncounted(student, f"progress file does not read as JSON ({type(err).__name__})")
    if not isinstance(data, dict) or data.get("schema") != PROGRESS_SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        return _uncounted(
            student,
            f"progress file of schema {found!r}; this release reads schema {PROGRESS_SCHEMA} "
            f"(ask for a new one: make progress)",
        )
    why = []
    if data.get("implementation") != "student":
        why.append(f"graded IMPL={data.get('implementation')!r}, not the student's own files")
    if data.get("fell_back"):
        why.append(f"fell back to the reference for {', '.join(map(str, data['fell_back']))}")
    if not data.get("commit"):
        why.append("from an unknown commit (not a git checkout?)")
    if data.get("dirty") is not False:
        why.append(
            "from a tree with uncommitted changes" if data.get("dirty") else "tree state unknown"
        )
    release = specs_digest(repo_root())
    if data.get("specs_sha256") != release:
        why.append(
            f"graded with modified specs (sha256 {str(data.get('specs_sha256'))[:12]}, "
            f"release {release[:12]})"
        )
    student.notes.append(f"commit {str(data.get('commit'))[:12]}")
    weeks = {w.get("id"): w for w in data.get("weeks", []) if isinstance(w, dict)}
    for lab, info in labs.items():
        entry = weeks.get(lab)
        rows = {f.get("function"): f for f in (entry or {}).get("functions", [])}
        student.labs[lab] = {
            "functions": {
                function: _cell(rows[function]["status"], rows[function].get("first_failure", ""))
                if function in rows
                else _cell(MISSING, "not in the progress file")
                for function in info["functions"]
            }
        }
    missing = [lab for lab in labs if lab not in weeks]
    if missing:
        student.notes.append(f"no result for {', '.join(missing)}")
    if why:
        return _uncounted(student, "; ".join(why))
    return student


def _uncounted(student: Student, why: str) -> Student:
    student.counted = False
    student.notes.append(f"not counted: {why}")
    return student


def _cell(status: str, detail: str = "") -> dict:
    return {"status": status, "detail": " ".join(str(detail).split())[:300]}


# --------------------------------------------------------------------------- #
# Grading a clone (in a worker process).
# --------------------------------------------------------------------------- #


def grade_lab(clone: Path, lab: str) -> dict:
    """The release's specs of ``lab`` on the clone's modules of that lab."""
    from mlsafety.grading import prepare
    from mlsafety.progress import specs_digest
    from mlsafety.stubs import stub_digests
    from mlsafety.verify import graded_run
    from mlsafety.weeks import all_labs, graded_functions, module_names

    release = all_labs()[lab]
    declared = graded_functions(release)
    mine = clone / "labs" / release.name
    started = time.perf_counter()
    result = {"functions": {}, "notes": []}
    names = module_names(release)
    missing = [m for m in names if not (mine / f"{m}.py").is_file()]
    if len(missing) == len(names):
        what = f"labs/{release.name}" if not mine.is_dir() else "every module"
        result["functions"] = {f: _cell(MISSING, f"{what} missing") for f in declared}
        result["notes"].append(f"{lab}: {what} missing")
        return result
    if missing:  # their functions fail with "not found"; the others are graded
        result["notes"].append(f"{lab}: {', '.join(f'{m}.py' for m in missing)} missing")
    if specs_digest(clone, [mine]) != specs_digest(release.parents[1], [release]):
        result["notes"].append(
            f"{lab}: specs in the clone differ from the release (graded with the release's)"
        )
    stubs = stub_digests(release)
    if stubs and all(
        not missing and _sha256((mine / f"{m}.py").read_text(errors="replace")) == digest
        for m, digest in stubs.items()
    ):
        result["functions"] = {f: _cell(TODO, "untouched stub") for f in declared}
        return result
    prepare(release)
    run = graded_run(release, str(mine))
    rows = {r["function"]: r for r in run.rows}
    for function in declared:
        row = rows.get(function)
        if row is None:
            result["functions"][function] = _cell(
                FAIL, run.output.strip()[-200:] or "specs did not run"
            )
        else:
            result["functions"][function] = _cell(row["status"], row.get("first_failure", ""))
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def clone_facts(clone: Path) -> dict:
    """The clone's commit and whether it has uncommitted changes (None: not git)."""

    def git(*args):
        try:
            out = subprocess.run(
                ["git", "-C", str(clone), *args], capture_output=True, text=True, timeout=20
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": commit.strip() if commit else None,
        "dirty": None if status is None else bool(status.strip()),
    }


def _worker_main(conn, root: str) -> None:
    """A worker: import torch and the grading machinery once, then grade
    (clone, lab) tasks, each in a forked child, until told to stop."""
    os.environ[REPO_ENV] = root
    os.environ["MLSAFETY_STRICT_IMPL"] = "1"  # a missing module is an error, never the reference
    os.chdir(root)
    import pytest  # noqa: F401
    import torch  # noqa: F401  (once per worker, not once per student)

    import mlsafety.verify  # noqa: F401

    conn.send("ready")
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        clone, lab, seconds, limit_s = task
        result = _grade_in_child(Path(clone), lab, seconds, limit_s)
        try:
            conn.send(result)
        except (OSError, ValueError):
            return


def _grade_lab_quietly(clone: Path, lab: str) -> dict:
    import contextlib
    import io

    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return grade_lab(clone, lab)
    except BaseException as err:  # the student's code must not end the grading
        return {"error": f"{type(err).__name__}: {' '.join(str(err).split())[:200]}"}


def _grade_in_child(clone: Path, lab: str, seconds: float, limit_s: float) -> dict:
    """Grade one lab in a forked child of the worker: torch is imported already,
    and nothing a student's module changes (globals, torch settings, imported
    modules) outlives the lab, nor can an exit or a hang end the worker."""
    if not hasattr(os, "fork"):  # no fork (Windows): in the worker itself
        return _grade_lab_quietly(clone, lab)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            _die_with_parent()
            data = json.dumps(_grade_lab_quietly(clone, lab)).encode()
            with os.fdopen(write, "wb") as out:
                out.write(data)
        finally:
            os._exit(0)
    os.close(write)
    chunks, deadline = [], time.monotonic() + seconds
    with os.fdopen(read, "rb", buffering=0) as pipe:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([pipe], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                why = f"time limit of {limit_s:g} s reached in this lab (an endless loop?)"
                return {"error": why, "timed_out": True}
            chunk = pipe.read(1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    try:
        return json.loads(b"".join(chunks))
    except ValueError:
        code = os.waitstatus_to_exitcode(status)
        return {
            "error": f"the grading process ended (exit code {code}) in this lab: "
            "does a module call os._exit, or crash the interpreter?"
        }


def _die_with_parent() -> None:
    """Linux: the child is killed with its worker (a worker killed for
    overrunning must not leave a student's endless loop behind)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class _Worker:
    """A worker process and its end of the pipe; it says "ready" once torch is imported."""

    def __init__(self, ctx, root: Path):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, str(root)), daemon=True)
        self.process.start()
        child.close()

    def stop(self, kill: bool = False) -> None:
        if not kill:
            try:
                self.conn.send(None)
            except (OSError, ValueError):
                kill = True
            self.process.join(10)
        if kill or self.process.is_alive():
            self.process.kill()
            self.process.join(10)
        self.conn.close()


@dataclass
class _Task:
    index: int  # which student
    clone: Path
    labs: deque  # lab ids still to grade
    deadline: float = 0.0


START_LIMIT_S = 300
GRACE_S = 30  # past a student's limit, the worker itself is replaced


def grade_clones(
    clones: list[Path],
    workers: int = 2,
    limit_s: float = DEFAULT_LIMIT_S,
    echo=None,
    stats: dict | None = None,
) -> list[dict]:
    """Grade every clone lab by lab in at most ``workers`` processes; per clone,
    {"labs": {lab: result}, "notes": [...], "seconds": s}. A lab whose child
    process ends, or a clone past ``limit_s`` (counted from its first lab,
    after the worker's start), is recorded and the report goes on.
    ``stats["processes"]`` counts the worker processes started (each imported
    torch once)."""
    from mlsafety.weeks import all_labs

    root = repo_root()
    ctx = multiprocessing.get_context("spawn")
    labs = list(all_labs())
    results = [{"labs": {}, "notes": [], "seconds": 0.0} for _ in clones]
    queue = deque(_Task(i, c, deque(labs)) for i, c in enumerate(clones))
    started: list[float | None] = [None] * len(clones)
    idle: list[_Worker] = []
    starting: dict[_Worker, float] = {}  # worker -> when it was started
    busy: dict[_Worker, _Task] = {}

    def finish(task: _Task) -> None:
        results[task.index]["seconds"] = round(time.monotonic() - started[task.index], 1)
        if echo:
            echo(task.index, results[task.index])

    def send(worker: _Worker, task: _Task) -> None:
        if started[task.index] is None:
            started[task.index] = time.monotonic()
            task.deadline = started[task.index] + limit_s
        left = task.deadline - time.monotonic()
        worker.conn.send((str(task.clone), task.labs[0], max(left, 0.0), limit_s))
        busy[worker] = task

    def retire(worker: _Worker) -> None:
        worker.stop(kill=True)

    try:
        while queue or busy:
            while queue and idle:
                send(idle.pop(), queue.popleft())
            while len(queue) > len(starting) and len(busy) + len(starting) < workers:
                starting[_Worker(ctx, root)] = time.monotonic()
                if stats is not None:
                    stats["processes"] = stats.get("processes", 0) + 1
            limits = [t.deadline + GRACE_S for t in busy.values()]
            limits += [t + START_LIMIT_S for t in starting.values()]
            ready = wait(
                [w.conn for w in [*busy, *starting]],
                timeout=max(0.0, min(limits) - time.monotonic()),
            )
            for worker in [w for w in starting if w.conn in ready]:
                del starting[worker]
                try:
                    worker.conn.recv()
                except (EOFError, OSError):
                    retire(worker)
                    raise SetupError(
                        f"a grading process ended while importing the toolkit (exit code "
                        f"{worker.process.exitcode}); does `make test-week1` work here?"
                    ) from None
                idle.append(worker)
            for worker in [w for w in busy if w.conn in ready]:
                task = busy.pop(worker)
                lab = task.labs.popleft()
                try:
                    result = worker.conn.recv()
                except (EOFError, OSError):
                    worker.process.join(5)
                    code = worker.process.exitcode
                    retire(worker)
                    result = {
                        "error": f"the grading process ended (exit code {code}) in this lab: "
                        "does a module call os._exit, or crash the interpreter?"
                    }
                else:
                    idle.append(worker)
                timed_out = result.pop("timed_out", False)
                _record(results[task.index], lab, result)
                if timed_out:
                    _not_graded(results[task.index], task, lab)
                if task.labs:
                    queue.appendleft(task)  # the same student goes on first
                else:
                    finish(task)
            now = time.monotonic()
            if any(now >= since + START_LIMIT_S for since in starting.values()):
                raise SetupError(
                    f"a grading process did not start within {START_LIMIT_S} s "
                    f"(importing torch); is the machine overloaded?"
                )
            for worker, task in list(busy.items()):
                if now >= task.deadline + GRACE_S:  # the worker itself is stuck
                    del busy[worker]
                    retire(worker)
                    lab = task.labs.popleft()
                    why = f"time limit of {limit_s:g} s reached in this lab (an endless loop?)"
                    _record(results[task.index], lab, {"error": why})
                    _not_graded(results[task.index], task, lab)
                    finish(task)
    finally:
        for worker in [*idle, *starting]:
            worker.stop(kill=worker in starting)
        for worker in busy:
            worker.stop(kill=True)
    return results


def _not_graded(result: dict, task: _Task, lab: str) -> None:
    """The labs left when the student's time ran out in ``lab``."""
    for rest in task.labs:
        _record(result, rest, {"error": f"not graded: the time limit was reached in {lab}"})
    task.labs.clear()


def _record(result: dict, lab: str, lab_result: dict) -> None:
    from mlsafety.weeks import all_labs, graded_functions

    if "error" in lab_result:
        declared = graded_functions(all_labs()[lab])
        lab_result = {
            "functions": {f: _cell(NOT_GRADED, lab_result["error"]) for f in declared},
            "notes": [f"{lab}: {lab_result['error']}"],
        }
    result["notes"] += lab_result.pop("notes", [])
    result["labs"][lab] = lab_result


# --------------------------------------------------------------------------- #
# The whole report.
# --------------------------------------------------------------------------- #


def class_report(
    source: Path, workers: int | None = None, limit_s: float = DEFAULT_LIMIT_S, echo=None
) -> dict:
    """Grade everyone under ``source``; the report as a dictionary."""
    labs = release_labs()
    students, clones, ignored = discover(Path(source))
    workers = max(1, workers or min(2, os.cpu_count() or 1))
    by_path = {s.path: s for s in students if s.source == "clone"}

    def done(index, result):
        if echo:
            echo(by_path[str(clones[index])], result)

    if clones:  # build the smoke checkpoints once, before the workers need them
        from mlsafety.grading import prepare
        from mlsafety.weeks import all_labs

        for folder in all_labs().values():
            prepare(folder)
    stats = {"processes": 0}
    graded = grade_clones(clones, workers, limit_s, done, stats) if clones else []
    for clone, result in zip(clones, graded, strict=True):
        student = by_path[str(clone)]
        student.labs = {lab: {"functions": r["functions"]} for lab, r in result["labs"].items()}
        student.notes += result["notes"]
        student.seconds = result["seconds"]
        facts = clone_facts(clone)
        student.notes.append(
            f"commit {facts['commit'][:12]}"
            + (" with uncommitted changes" if facts["dirty"] else "")
            if facts["commit"]
            else "not a git checkout (graded the files as found)"
        )
    return {
        "schema": SCHEMA,
        "generated": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "source": str(Path(source).resolve()),
        "release": {
            "root": str(repo_root()),
            "specs_sha256": _release_digest(),
            "labs": labs,
        },
        "workers": workers,
        "processes": stats["processes"],
        "limit_s": limit_s,
        "ignored": ignored,
        "students": [_student_json(s, labs) for s in students],
    }


def _release_digest() -> str:
    from mlsafety.progress import specs_digest

    return specs_digest(repo_root())


def _student_json(student: Student, labs: dict) -> dict:
    totals = {"core": [0, 0], "stretch": [0, 0]}
    per_lab = {}
    for lab, info in labs.items():
        cells = student.labs.get(lab, {}).get("functions", {})
        passed = 0
        for function, track in info["functions"].items():
            ok = cells.get(function, {}).get("status") == PASS
            passed += ok
            totals[track][0] += ok
            totals[track][1] += 1
        per_lab[lab] = {"passed": passed, "total": len(info["functions"])}
    return {
        "name": student.name,
        "source": student.source,
        "path": student.path,
        "counted": student.counted,
        "notes": student.notes,
        "seconds": student.seconds,
        "labs": {
            lab: {**per_lab[lab], "functions": student.labs.get(lab, {}).get("functions", {})}
            for lab in labs
        },
        "core": {"passed": totals["core"][0], "total": totals["core"][1]},
        "stretch": {"passed": totals["stretch"][0], "total": totals["stretch"][1]},
        "passed": totals["core"][0] + totals["stretch"][0],
        "total": totals["core"][1] + totals["stretch"][1],
    }


# --------------------------------------------------------------------------- #
# Outputs.
# --------------------------------------------------------------------------- #


def columns(report: dict) -> list[tuple[str, str]]:
    """(lab, function) of every graded function, in the release's order."""
    return [(lab, f) for lab, info in report["release"]["labs"].items() for f in info["functions"]]


def write_csv(report: dict, path: Path) -> None:
    """One row per student: 1/0 per graded function, per-lab totals, core,
    stretch and total; an uncounted row has empty grades and says why in notes."""
    labs = report["release"]["labs"]
    header = ["student", "source", "counted"]
    for lab, info in labs.items():
        header += [f"{lab}:{f}" for f in info["functions"]] + [f"{lab}:total"]
    header += ["core", "stretch", "total", "notes"]
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        for s in report["students"]:
            row = [s["name"], s["source"], "yes" if s["counted"] else "no"]
            for lab, info in labs.items():
                cells = s["labs"][lab]["functions"]
                grades = [int(cells.get(f, {}).get("status") == PASS) for f in info["functions"]]
                row += [*grades, s["labs"][lab]["passed"]]
            row += [s["core"]["passed"], s["stretch"]["passed"], s["passed"]]
            if not s["counted"]:
                row = row[:3] + [""] * (len(row) - 3)
            writer.writerow([*row, "; ".join(s["notes"])])


COLOURS = {
    PASS: "#2e7d32",
    FAIL: "#c62828",
    TODO: "#bdbdbd",
    MISSING: "#757575",
    NOT_GRADED: "#6a1b9a",
    "NOT COUNTED": "#fff59d",
}


def _status(student: dict, lab: str, function: str) -> str:
    if not student["counted"]:
        return "NOT COUNTED"
    return student["labs"][lab]["functions"].get(function, {}).get("status", MISSING)


def write_png(report: dict, path: Path) -> None:
    """The heat map: a row per student, a column per graded function."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    cols = columns(report)
    students = report["students"]
    order = list(COLOURS)
    grid = [[order.index(_status(s, lab, f)) for lab, f in cols] for s in students] or [
        [0] * len(cols)
    ]
    fig, ax = plt.subplots(
        figsize=(max(8, 0.16 * len(cols) + 3), max(3, 0.28 * len(students) + 2.5))
    )
    ax.imshow(
        grid,
        cmap=ListedColormap(list(COLOURS.values())),
        vmin=0,
        vmax=len(order) - 1,
        aspect="auto",
        interpolation="nearest",
    )
    ax.set_yticks(range(len(students)), [s["name"] for s in students], fontsize=7)
    ax.set_xticks(range(len(cols)), [f for _, f in cols], rotation=90, fontsize=5)
    edges = [i for i in range(1, len(cols)) if cols[i][0] != cols[i - 1][0]]
    for x in edges:
        ax.axvline(x - 0.5, color="white", linewidth=2)
    starts = [0, *edges]
    for start, end in zip(starts, [*edges, len(cols)], strict=True):
        ax.text((start + end - 1) / 2, -0.8, cols[start][0], ha="center", fontsize=7)
    ax.legend(
        handles=[Patch(color=c, label=k.lower()) for k, c in COLOURS.items()],
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        fontsize=7,
    )
    ax.set_title(f"Class report, {report['generated']}", pad=18, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_html(report: dict, path: Path) -> None:
    """The same heat map as a self-contained page: hover a cell for the first failure."""
    cols = columns(report)
    labs = report["release"]["labs"]
    e = html.escape
    head = "".join(
        f'<th colspan="{len(i["functions"]) + 1}">{e(lab)}</th>' for lab, i in labs.items()
    )
    names = "".join(
        "".join(f'<th class="f">{e(f)}</th>' for f in i["functions"]) + '<th class="f">total</th>'
        for i in labs.values()
    )
    body = []
    for s in report["students"]:
        cells = []
        for lab, info in labs.items():
            for f in info["functions"]:
                status = _status(s, lab, f)
                detail = s["labs"][lab]["functions"].get(f, {}).get("detail", "")
                title = e(f"{s['name']}, {lab} {f}: {status.lower()} {detail}".strip(), quote=True)
                cells.append(f'<td style="background:{COLOURS[status]}" title="{title}"></td>')
            total = s["labs"][lab]["passed"] if s["counted"] else ""
            cells.append(f'<td class="n">{total}</td>')
        total = f"{s['passed']}/{s['total']}" if s["counted"] else "not counted"
        body.append(
            f"<tr><th>{e(s['name'])}</th>{''.join(cells)}<td class='n'>{total}</td>"
            f"<td class='notes'>{e('; '.join(s['notes']))}</td></tr>"
        )
    legend = " ".join(
        f'<span style="background:{c}">&nbsp;&nbsp;&nbsp;</span> {e(k.lower())}'
        for k, c in COLOURS.items()
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Class report</title>
<style>
body {{ font: 13px system-ui, sans-serif; }}
table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #fff; padding: 2px; }}
td {{ width: 12px; height: 16px; }}
th.f {{ writing-mode: vertical-rl; font-weight: normal; font-size: 11px; }}
td.n {{ width: auto; text-align: right; }}
td.notes {{ width: auto; font-size: 11px; color: #555; }}
</style></head><body>
<h1>Class report</h1>
<p>{e(report["generated"])}; {len(report["students"])} students from {e(report["source"])};
{len(cols)} graded functions. {legend}</p>
<table><thead><tr><th></th>{head}<th></th><th></th></tr>
<tr><th>student</th>{names}<th>total</th><th>notes</th></tr></thead>
<tbody>
{chr(10).join(body)}
</tbody></table></body></html>
"""
    Path(path).write_text(page, encoding="utf-8")


def write_outputs(report: dict, out: Path) -> dict[str, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "csv": out / "grades.csv",
        "json": out / "class.json",
        "png": out / "heatmap.png",
        "html": out / "heatmap.html",
    }
    write_csv(report, paths["csv"])
    paths["json"].write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    write_png(report, paths["png"])
    write_html(report, paths["html"])
    return paths


def run_class_report(
    source: str, out: str | None = None, workers: int | None = None, limit_s: float | None = None
) -> int:
    """``make class-report``: grade the folder, print a line per student, write the files."""
    started = time.monotonic()

    def echo(student, result):
        print(f"  graded {student.name} in {result['seconds']:.0f} s", flush=True)

    report = class_report(Path(source), workers, limit_s or DEFAULT_LIMIT_S, echo)
    target = Path(out) if out else repo_root() / "artifacts" / "class"
    paths = write_outputs(report, target)
    counted = [s for s in report["students"] if s["counted"]]
    print(
        f"\n{len(report['students'])} students, {len(counted)} counted, "
        f"in {time.monotonic() - started:.0f} s with {report['workers']} workers "
        f"({report['processes']} processes started)"
    )
    for s in report["students"]:
        score = f"{s['passed']}/{s['total']}" if s["counted"] else "not counted"
        note = f"  ({'; '.join(s['notes'])})" if s["notes"] else ""
        print(f"  {s['name']}: {score}{note}"[:240])
    if report["ignored"]:
        print(f"ignored (neither a clone nor a progress file): {', '.join(report['ignored'])}")
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0
