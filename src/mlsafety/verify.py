"""Specs that prove themselves: for a week, check that the specs pass on the
reference solution, fail for every graded function on the pristine stubs
(read from git HEAD, not from a working copy a student may have edited),
catch every buggy variant listed in ``tests/mutants/weekNN.toml`` (each a
small textual change to the solution, applied to a copy), and, where the lab
has a claims file (``tests/claims/weekNN.toml``), that its rules hold
(:mod:`mlsafety.claims`; ``tests/test_claims.py`` requires the file of every lab).

All runs happen in this one process (torch is imported once); each returns its
per-function results through ``--grading-json``.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlsafety import SetupError
from mlsafety.grading import one_thread, spec_args
from mlsafety.paths import repo_root
from mlsafety.weeks import find_week, module_names, solution_dir, week_prefix

MIN_MUTANTS_PER_FUNCTION = 2
# For the many short in-process runs: pytest's unraisable-exception plugin runs
# gc.collect() at the end of every session, about 1 s with torch loaded.
QUICK = ["-p", "no:unraisableexception"]


@dataclass
class Run:
    exit_code: int
    output: str
    rows: list  # the --grading-json rows: function, track, status, passed, failed, first_failure

    @property
    def results(self) -> dict:
        """Function -> status."""
        return {r["function"]: r["status"] for r in self.rows}

    @property
    def failures(self) -> dict:
        """Function -> first failure message."""
        return {r["function"]: r["first_failure"] for r in self.rows}


@dataclass
class Mutant:
    name: str
    function: str
    bug: str
    module: str
    replace: list  # [{"old": text, "new": text}], each old text unique in the solution


def graded_run(
    week_dir: Path,
    impl: str,
    functions: str | None = None,
    stop_early: bool = False,
    specs: list[str] | None = None,
) -> Run:
    """Grade ``impl`` in this process: the week's specs, or only ``specs``
    (pytest node ids)."""
    import pytest

    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        extra = ["--grading-json", str(report), "--tb=no", *QUICK] + (["-x"] if stop_early else [])
        args = spec_args(week_dir, impl, functions, extra)
        if specs:
            args = [*specs, *args[1:]]
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer), one_thread():
            code = int(pytest.main(args))
        rows = json.loads(report.read_text())["functions"] if report.exists() else []
    return Run(code, buffer.getvalue(), rows)


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


def mutants_file(week_dir: Path) -> Path:
    return repo_root() / "tests" / "mutants" / f"{week_prefix(week_dir)}.toml"


def mutants(week_dir: Path) -> list[Mutant]:
    """The week's buggy variants, from ``tests/mutants/weekNN.toml``."""
    import tomllib

    path = mutants_file(week_dir)
    if not path.exists():
        return []
    return [Mutant(**entry) for entry in tomllib.loads(path.read_text())["mutant"]]


def write_mutant(week_dir: Path, mutant: Mutant, into: Path) -> Path:
    """Write the mutated module into ``into`` (the other modules fall back to the
    reference). Each replacement's old text must occur exactly once in the
    solution, so a mutant that no longer applies says so instead of silently
    testing the unchanged solution."""
    source = (solution_dir(week_dir) / f"{mutant.module}.py").read_text()
    spans = []
    for rep in mutant.replace:
        count = source.count(rep["old"])
        if count != 1:
            raise SetupError(
                f"mutant {mutant.name}: its text to replace occurs {count} times in "
                f"{mutant.module}.py of the solution; update {mutants_file(week_dir).name}"
            )
        start = source.index(rep["old"])
        spans.append((start, start + len(rep["old"]), rep["new"]))
    spans.sort()
    if any(a[1] > b[0] for a, b in zip(spans, spans[1:], strict=False)):
        raise SetupError(f"mutant {mutant.name}: its replacements overlap")
    pieces, cursor = [], 0
    for start, stop, new in spans:
        pieces += [source[cursor:start], new]
        cursor = stop
    mutated = "".join(pieces) + source[cursor:]
    # name the bug at the top of the module docstring
    mutated = mutated.replace(
        '"""', f'"""{mutant.function}: {mutant.bug} (variant {mutant.name})\n\n', 1
    )
    try:
        compile(mutated, f"{mutant.module}.py", "exec")
    except SyntaxError as err:
        raise SetupError(f"mutant {mutant.name} is not valid Python ({err})") from None
    into.mkdir(parents=True, exist_ok=True)
    (into / f"{mutant.module}.py").write_text(mutated)
    return into


def verify_week(week, echo=print, claims: bool = True) -> list[str]:
    """Run every check for ``week``; returns the problems found (empty: all good).
    ``claims=False`` skips the claims file's rules."""
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
    counts = dict.fromkeys(solution.results, 0)
    for mutant in found:
        if mutant.function not in counts:
            problems.append(f"{mutant.name}: names unknown graded function {mutant.function!r}")
            continue
        counts[mutant.function] += 1
        with tempfile.TemporaryDirectory() as tmp:
            folder = write_mutant(week_dir, mutant, Path(tmp) / mutant.name)
            run = graded_run(week_dir, str(folder), mutant.function, stop_early=True)
        # caught by a spec, not by failing to import
        caught = (
            run.exit_code == 1
            and run.results.get(mutant.function) in ("FAIL", "TODO")
            and "does not import" not in run.failures.get(mutant.function, "")
        )
        echo(f"  {'caught ' if caught else 'MISSED '} {mutant.name}: {mutant.bug}")
        echo(f"           -> {run.failures.get(mutant.function, '')[:110]}")
        if not caught:
            problems.append(
                f"{mutant.name} ({mutant.bug}) is not caught (pytest exit {run.exit_code})"
            )
    few = {f: n for f, n in counts.items() if n < MIN_MUTANTS_PER_FUNCTION}
    if few:
        problems.append(f"{week_dir.name}: fewer than {MIN_MUTANTS_PER_FUNCTION} mutants for {few}")
    if claims:
        from mlsafety.claims import check_claims, claims_file

        if claims_file(week_dir).exists():
            found_claims = check_claims(week_dir, echo=echo)
            problems += found_claims
            echo(f"{week_dir.name}: claims file {'holds' if not found_claims else 'has problems'}")
        else:
            echo(f"{week_dir.name}: no claims file {claims_file(week_dir).name} yet (not checked)")
    return problems
