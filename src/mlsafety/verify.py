"""Specs that prove themselves: for a week, check that the specs pass on the
reference solution, fail for every graded function on the pristine stubs
(read from git HEAD, not from a working copy a student may have edited), and
catch every buggy variant under ``tests/mutants/weekNN/``.

All runs happen in this one process (torch is imported once); each returns its
per-function results through ``--grading-json``.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlsafety import SetupError
from mlsafety.grading import spec_args
from mlsafety.paths import repo_root
from mlsafety.weeks import find_week, module_names

MIN_MUTANTS_PER_FUNCTION = 2


@dataclass
class Run:
    exit_code: int
    results: dict  # function -> status
    output: str


@dataclass
class Mutant:
    folder: Path
    function: str
    description: str


def graded_run(
    week_dir: Path, impl: str, functions: str | None = None, stop_early: bool = False
) -> Run:
    import pytest

    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        extra = ["--grading-json", str(report), "--tb=no"] + (["-x"] if stop_early else [])
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            code = int(pytest.main(spec_args(week_dir, impl, functions, extra)))
        results = {}
        if report.exists():
            results = {
                f["function"]: f["status"] for f in json.loads(report.read_text())["functions"]
            }
    return Run(code, results, buffer.getvalue())


def pristine_stubs(week_dir: Path, into: Path) -> Path:
    """Write the committed (HEAD) versions of the week's student modules into ``into``."""
    root = repo_root()
    for name in module_names(week_dir):
        rel = (week_dir / f"{name}.py").relative_to(root).as_posix()
        try:
            text = subprocess.run(
                ["git", "-C", str(root), "show", f"HEAD:{rel}"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        except (OSError, subprocess.CalledProcessError) as err:
            raise SetupError(
                f"cannot read the committed stub {rel} from git ({err}); is this a git checkout?"
            ) from None
        (into / f"{name}.py").write_text(text)
    return into


def mutants(week_dir: Path) -> list[Mutant]:
    """Buggy variants: one folder each, whose module's docstring starts with
    ``<graded function>: <the bug>``."""
    found = []
    for folder in sorted((repo_root() / "tests" / "mutants" / week_dir.name[:6]).glob("*/")):
        files = sorted(folder.glob("*.py"))
        if not files:
            continue
        doc = ast.get_docstring(ast.parse(files[0].read_text())) or ""
        first = doc.strip().splitlines()[0] if doc.strip() else ""
        function, _, description = first.partition(":")
        if not description.strip():
            raise SetupError(f"{files[0]}: docstring must start with '<function>: <the bug>'")
        found.append(Mutant(folder, function.strip(), description.strip()))
    return found


def verify_week(week, echo=print) -> list[str]:
    """Run every check for ``week``; returns the problems found (empty: all good)."""
    week_dir = find_week(week)
    problems = []

    solution = graded_run(week_dir, "solution")
    bad = [f for f, s in solution.results.items() if s != "PASS"]
    if solution.exit_code != 0 or bad or not solution.results:
        problems.append(
            f"{week_dir.name}: the reference solution fails specs of {bad or 'the week'}"
        )
        echo(solution.output)
    echo(
        f"{week_dir.name}: solution passes {len(solution.results) - len(bad)}/{len(solution.results)} functions"
    )

    with tempfile.TemporaryDirectory() as tmp:
        stubs = graded_run(week_dir, str(pristine_stubs(week_dir, Path(tmp))))
    passing = [f for f, s in stubs.results.items() if s not in ("FAIL", "TODO")]
    if passing or stubs.exit_code != 1:
        problems.append(
            f"{week_dir.name}: on the untouched stubs these functions do not fail: {passing}"
        )
    echo(
        f"{week_dir.name}: stubs fail {len(stubs.results) - len(passing)}/{len(stubs.results)} functions"
    )

    found = mutants(week_dir)
    counts = {f: 0 for f in solution.results}
    for mutant in found:
        if mutant.function not in counts:
            problems.append(
                f"{mutant.folder.name}: names unknown graded function {mutant.function!r}"
            )
            continue
        counts[mutant.function] += 1
        run = graded_run(week_dir, str(mutant.folder), mutant.function, stop_early=True)
        caught = run.exit_code == 1 and run.results.get(mutant.function) in ("FAIL", "TODO")
        echo(
            f"  {'caught ' if caught else 'MISSED '} {mutant.folder.name}: {mutant.function}: {mutant.description}"
        )
        if not caught:
            problems.append(
                f"{mutant.folder.name} ({mutant.description}) is not caught (pytest exit {run.exit_code})"
            )
    few = {f: n for f, n in counts.items() if n < MIN_MUTANTS_PER_FUNCTION}
    if few:
        problems.append(f"{week_dir.name}: fewer than {MIN_MUTANTS_PER_FUNCTION} mutants for {few}")
    return problems
