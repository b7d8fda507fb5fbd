"""Traceability: each claim a graded function's docstring makes, and the specs
that establish it.

Every lab has ``tests/claims/<lab id>.toml``: one table per graded function
(every key of the specs' ``GRADED`` dicts), mapping each claim of its
docstring (every ``Raises`` entry, edge case, default, boundary, range,
dtype/shape/device, state and side effect) to the specs that establish it::

    [pgd_linf]
    "raises ValueError when eps is negative" = ["test_pgd_linf_rejects_negative_eps"]

:func:`check_claims` enforces the rules and returns the problems, one line each:

- one table per graded function, none for an unknown function, no empty claim;
- every spec named is a test function of the lab's ``test_*.py`` marked
  ``@graded`` for that function (a parametrized spec counts by its function
  name);
- every exception in the ``Raises:`` section of the solution's docstring has a
  claim whose text starts with ``raises <ExceptionName>``;
- every ``raise`` statement of the solution's graded function, and of the
  private helpers of its module that it calls, is provoked by a spec of that
  function with an input that triggers only it: the solution with that one
  ``raise`` replaced by ``pass`` must fail the function's own specs. The
  specs the claims file names for the function's ``raises`` claims run first;
  only if they all pass do the function's other specs run.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mlsafety import SetupError
from mlsafety.paths import repo_root
from mlsafety.weeks import find_week, graded_functions, lab_id, solution_dir


def claims_file(week_dir: Path) -> Path:
    return repo_root() / "tests" / "claims" / f"{lab_id(week_dir)}.toml"


def load_claims(week_dir: Path) -> dict:
    """Graded function -> {claim: [spec, ...]}, from the lab's claims file."""
    import tomllib

    path = claims_file(week_dir)
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SetupError(f"{_rel(path)} does not exist") from None
    except tomllib.TOMLDecodeError as err:
        raise SetupError(f"{_rel(path)} is not valid TOML ({err})") from None


# --------------------------------------------------------------------------- #
# What the specs and the solution say.
# --------------------------------------------------------------------------- #


@dataclass
class Spec:
    name: str  # the test function's name
    path: Path  # its file
    functions: set  # the graded functions its @graded markers name


def collect_specs(week_dir: Path) -> dict[str, Spec]:
    """Spec function name -> Spec, as pytest collects the lab (parametrized
    specs once, by their function name, with every function they are graded for)."""
    import pytest

    from mlsafety.grading import spec_args
    from mlsafety.verify import QUICK

    class Collector:
        items: list = []

        def pytest_collection_finish(self, session):
            self.items = list(session.items)

    collector = Collector()
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        code = pytest.main(
            spec_args(week_dir, "solution", extra=["--collect-only", *QUICK]), plugins=[collector]
        )
    if code not in (0, 5):
        raise SetupError(f"the specs of {week_dir.name} do not collect:\n{buffer.getvalue()}")
    specs: dict[str, Spec] = {}
    for item in collector.items:
        name = getattr(item, "originalname", None) or item.name
        spec = specs.setdefault(name, Spec(name, Path(item.path), set()))
        marker = item.get_closest_marker("graded")
        if marker is not None:
            spec.functions.add(marker.args[0])
    return specs


@dataclass
class Raise:
    exception: str  # ValueError, or "re-raise" for a bare raise
    line: int
    end_line: int
    col: int
    end_col: int
    inside: str  # the function whose body holds it


@dataclass
class Definition:
    function: str
    path: Path  # the solution module
    node: ast.FunctionDef
    raises: list  # Raise, in the function and the private helpers it calls


def _exception_name(node: ast.Raise) -> str:
    exc = node.exc
    if exc is None:
        return "re-raise"
    if isinstance(exc, ast.Call):
        exc = exc.func
    if isinstance(exc, ast.Attribute):
        return exc.attr
    if isinstance(exc, ast.Name):
        return exc.id
    return ast.unparse(exc)


def _called_names(node: ast.AST) -> set[str]:
    return {
        n.func.id
        for n in ast.walk(node)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }


def find_definition(week_dir: Path, function: str) -> Definition:
    """The solution's top-level ``def function`` and every ``raise`` it can reach
    in its own body and the private helpers (``_name``) of its module it calls."""
    for path in sorted(solution_dir(week_dir).glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        defs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
        if function not in defs:
            continue
        reached, todo = [], [function]
        while todo:
            name = todo.pop(0)
            if name in reached:
                continue
            reached.append(name)
            todo += sorted(c for c in _called_names(defs[name]) if c.startswith("_") and c in defs)
        raises = [
            Raise(_exception_name(n), n.lineno, n.end_lineno, n.col_offset, n.end_col_offset, name)
            for name in reached
            for n in ast.walk(defs[name])
            if isinstance(n, ast.Raise)
        ]
        return Definition(function, path, defs[function], sorted(raises, key=lambda r: r.line))
    raise SetupError(f"no top-level def {function} in {_rel(solution_dir(week_dir))}/*.py")


def documented_raises(docstring: str | None) -> list[str]:
    """The exception names of a Google-style ``Raises:`` section."""
    lines = (docstring or "").expandtabs().splitlines()
    found, section, entry_indent = [], None, None
    for line in lines:
        indent = len(line) - len(line.lstrip())
        if section is None:
            if line.strip() == "Raises:":
                section = indent
            continue
        if not line.strip():
            continue
        if indent <= section:
            break
        if entry_indent is None:
            entry_indent = indent
        match = re.match(r"([A-Za-z_][\w.]*)\s*:", line.strip())
        if indent == entry_indent and match:
            found.append(match.group(1).rsplit(".", 1)[-1])
    return found


def without_raise(source: str, found: Raise) -> str:
    """``source`` with the one ``raise`` statement replaced by ``pass`` (line
    numbers of everything else kept)."""
    lines = source.splitlines(keepends=True)
    first, last = lines[found.line - 1], lines[found.end_line - 1]
    replaced = first[: found.col] + "pass" + "\n" * (found.end_line - found.line)
    replaced += last[found.end_col :] if found.end_line > found.line else first[found.end_col :]
    return "".join(lines[: found.line - 1]) + replaced + "".join(lines[found.end_line :])


# --------------------------------------------------------------------------- #
# The rules.
# --------------------------------------------------------------------------- #


def check_claims(week, deletions: bool = True, echo=None) -> list[str]:
    """Problems with the lab's claims file and its raises, one line each
    (empty: every rule holds). ``deletions=False`` skips the raise-deletion
    variants (the only rule that runs specs); ``echo`` receives progress lines."""
    week_dir = find_week(week)
    echo = echo or (lambda line: None)
    lab = lab_id(week_dir)
    graded = graded_functions(week_dir)
    try:
        claims = load_claims(week_dir)
    except SetupError as err:
        claims, problems = {}, [f"{lab}: {err}; write one table per graded function"]
    else:
        problems = []
    specs = collect_specs(week_dir)
    where = f"{_rel(week_dir)}/test_*.py"
    for function in claims:
        if function not in graded:
            problems.append(
                f"{lab}: [{function}] in {claims_file(week_dir).name} is not a graded function "
                f"(graded: {', '.join(graded)})"
            )
    for function in graded:
        table = claims.get(function)
        if claims and table is None:
            problems.append(f"{lab}: {claims_file(week_dir).name} has no table [{function}]")
        table = table if isinstance(table, dict) else {}
        for claim, named in table.items():
            if (
                not isinstance(named, list)
                or not named
                or not all(isinstance(s, str) for s in named)
            ):
                problems.append(f"{lab}: {function}: claim {claim!r} must name a list of specs")
                continue
            for spec in named:
                if spec not in specs:
                    problems.append(
                        f"{lab}: {function}: claim {claim!r} names {spec}, which is not a spec "
                        f"in {where}"
                    )
                elif function not in specs[spec].functions:
                    marked = ", ".join(sorted(specs[spec].functions)) or "no function"
                    problems.append(
                        f"{lab}: {function}: claim {claim!r} names {spec}, which is graded for "
                        f"{marked}, not {function}"
                    )
        try:
            definition = find_definition(week_dir, function)
        except SetupError as err:
            problems.append(f"{lab}: {function}: {err}")
            continue
        for exception in documented_raises(ast.get_docstring(definition.node)):
            if not any(c.startswith(f"raises {exception}") for c in table):
                problems.append(
                    f"{lab}: {function}: its docstring's Raises names {exception}, but no claim "
                    f"starts with 'raises {exception}'"
                )
    if deletions:
        problems += raise_deletions(week_dir, graded, claims, specs, echo)
    return problems


def raise_deletions(week_dir: Path, graded, claims: dict, specs: dict, echo) -> list[str]:
    """For each ``raise`` a graded function can reach: the solution without it
    must fail that function's specs."""
    from mlsafety.verify import graded_run

    problems, count, start = [], 0, time.perf_counter()
    for function in graded:
        try:
            definition = find_definition(week_dir, function)
        except SetupError:
            continue  # reported by the static rules
        source = definition.path.read_text()
        table = claims.get(function) if isinstance(claims.get(function), dict) else {}
        first = _node_ids(
            specs,
            [
                s
                for claim, named in table.items()
                if claim.startswith("raises") and isinstance(named, list)
                for s in named
            ],
            function,
        )
        rel = _rel(definition.path)
        for found in definition.raises:
            count += 1
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp)
                (folder / definition.path.name).write_text(without_raise(source, found))
                caught = False
                for targets in ([first] if first else []) + [None]:
                    run = graded_run(
                        week_dir, str(folder), function, stop_early=True, specs=targets
                    )
                    status = run.results.get(function)
                    caught = status in ("FAIL", "TODO") and "does not import" not in (
                        run.failures.get(function, "")
                    )
                    if caught:
                        break
            echo(
                f"  {'provoked' if caught else 'NEVER   '} raise at {rel}:{found.line} "
                f"({found.exception}) in {found.inside}, by a spec of {function}"
            )
            if not caught:
                problems.append(
                    f"raise at {rel}:{found.line} ({found.exception}) is never provoked by a "
                    f"spec of {function} that triggers only it"
                )
    echo(
        f"{week_dir.name}: {count} raise-deletion variants run in "
        f"{time.perf_counter() - start:.1f} s"
    )
    return problems


def _node_ids(specs: dict, names: list[str], function: str) -> list[str]:
    ids = []
    for name in dict.fromkeys(names):
        spec = specs.get(name)
        if spec is not None and function in spec.functions:
            ids.append(f"{spec.path}::{name}")
    return ids


def _rel(path: Path) -> str:
    try:
        return path.resolve().relative_to(repo_root()).as_posix()
    except ValueError:
        return str(path)
