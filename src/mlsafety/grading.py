"""Which implementation the specs grade, and the self-check report.

One place decides what "the implementation" is. ``MLSAFETY_IMPL`` or pytest's
``--impl`` option:

- ``student`` (default): the modules in the lab folder ``labs/weekNN_slug/``;
- ``solution``: the reference in ``solutions/weekNN_slug/``;
- any other value: a folder of modules with the student modules' file names;
  a module missing there falls back to the reference, so a buggy variant can
  be a single file. :func:`fell_back` names such modules (the progress report
  records them: that work is not the student's). With ``MLSAFETY_STRICT_IMPL=1``
  (the class report), or where there is no reference (the student edition), a
  missing module is a one-line error instead.

Specs receive modules through fixtures (:func:`module_fixture`); each load
gets a unique module name, so two implementations never share ``sys.modules``
and an edited file is read afresh by the next run.

This module is also the pytest plugin (registered by the repository's root
``conftest.py``): it adds ``--impl``, ``--functions`` and ``--grading-json``,
ties specs to graded functions with ``@graded("name")`` and ends every run
with a per-function table.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mlsafety import SetupError
from mlsafety.weeks import find_week, lab_id, make_name, module_names, solution_dir

IMPL_ENV = "MLSAFETY_IMPL"
STRICT_ENV = "MLSAFETY_STRICT_IMPL"
_counter = itertools.count()


def chosen_impl(value: str | None = None) -> str:
    return (value or os.environ.get(IMPL_ENV) or "student").strip()


def implementation_dirs(week_dir: Path, impl: str | None = None) -> list[Path]:
    """Folders searched, in order, for the week's modules under ``impl``."""
    impl = chosen_impl(impl)
    reference = solution_dir(week_dir)
    if impl == "student":
        return [week_dir]
    if impl == "solution":
        if not reference.is_dir():
            raise SetupError(
                f"this copy of the labs has no reference solutions ({reference} is missing); "
                f"grade your own files with IMPL=student"
            )
        return [reference]
    folder = Path(impl).expanduser().resolve()
    if not folder.is_dir():
        raise SetupError(
            f"implementation folder {impl!r} does not exist; use IMPL=student, "
            f"IMPL=solution or IMPL=<folder with {', '.join(module_names(week_dir))}.py>"
        )
    strict = os.environ.get(STRICT_ENV, "") not in ("", "0") or not reference.is_dir()
    return [folder] if strict else [folder, reference]


def fell_back(week_dir: Path, impl: str | None = None) -> list[str]:
    """The week's modules that ``impl`` takes from the reference because its
    folder lacks them (empty for ``student`` and ``solution``)."""
    folders = implementation_dirs(week_dir, impl)
    if len(folders) < 2:
        return []
    return [n for n in module_names(week_dir) if not (folders[0] / f"{n}.py").exists()]


def module_path(name: str, week_dir: Path, impl: str | None = None) -> Path:
    for folder in implementation_dirs(week_dir, impl):
        candidate = folder / f"{name}.py"
        if candidate.exists():
            return candidate
    raise SetupError(
        f"module {name}.py not found for {week_dir.name} in "
        f"{', '.join(str(f) for f in implementation_dirs(week_dir, impl))} "
        f"(implementation {chosen_impl(impl)!r})"
    )


def load_module(name: str, week: str | int | Path, impl: str | None = None):
    """Import the week's module ``name`` from the chosen implementation under a
    unique name (a fresh read of the file every call)."""
    week_dir = find_week(week)
    path = module_path(name, week_dir, impl)
    unique = f"_mlsafety_impl_{week_dir.name}_{name}_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(unique, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[unique] = module  # dataclasses and pickling look modules up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[unique]
        raise
    return module


def use_implementation(week: str | int | Path = ".", impl: str | None = None) -> list[str]:
    """For notebooks: put the chosen implementation's folders first on
    ``sys.path`` so ``import attacks`` (with autoreload) picks it up.
    Returns the folders, in order."""
    folders = [str(p) for p in implementation_dirs(find_week(week), impl)]
    for folder in reversed(folders):
        if folder in sys.path:
            sys.path.remove(folder)
        sys.path.insert(0, folder)
    return folders


def module_fixture(name: str):
    """A session-scoped pytest fixture named after the module, handing specs
    the chosen implementation of ``name`` for the week of the calling file."""
    import inspect

    import pytest

    caller = Path(inspect.stack()[1].filename).resolve()

    @pytest.fixture(scope="session", name=name)
    def _module(request):
        try:
            return load_module(name, caller.parent, request.config.getoption("impl"))
        except Exception as err:  # a student's file that does not import: say so in one line
            where = f" line {err.lineno}" if isinstance(err, SyntaxError) else ""
            detail = err.msg if isinstance(err, SyntaxError) else str(err)
            pytest.fail(
                f"{name}.py does not import ({type(err).__name__}{where}: {detail})", pytrace=False
            )

    return _module


def graded(function: str):
    """Mark a spec as checking the graded function ``function``."""
    import pytest

    return pytest.mark.graded(function)


# --------------------------------------------------------------------------- #
# Per-function results.
# --------------------------------------------------------------------------- #


@dataclass
class FunctionResult:
    function: str
    track: str = "core"
    passed: int = 0
    failed: int = 0
    todo: bool = False
    first_failure: str = ""
    specs: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.failed == 0 and self.passed == 0:
            return "NOT RUN"
        if self.failed == 0:
            return "PASS"
        return "TODO" if self.todo and self.passed == 0 else "FAIL"


# Errors whose message alone does not say what to change.
_HINTS = {
    "does not require grad": "was the gradient taken under torch.no_grad() or of a detached tensor?",
    "Expected all tensors to be on the same device": "create new tensors on the input's device",
}


def _failure_message(report) -> tuple[str, bool]:
    """The first line a student needs, and whether it is a NotImplementedError."""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    first = text.strip().splitlines()[0] if text.strip() else "failed"
    if first.startswith("NotImplementedError"):
        return "not implemented yet (raises NotImplementedError)", True
    if "Timeout" in first and "pytest-timeout" in first:
        limit = first.split("(")[-1].split(")")[0]
        return f"timed out ({limit}): an endless loop, or far too slow?", False
    for prefix in ("AssertionError: ", "Failed: "):
        first = first.removeprefix(prefix)
    for pattern, hint in _HINTS.items():
        if pattern in first:
            first = f"{first} ({hint})"
    return first, False


class GradingReport:
    """Collects outcomes per graded function over one pytest session."""

    def __init__(self, config):
        self.config = config
        self.functions: dict[str, FunctionResult] = {}
        self.week_dirs: list[Path] = []
        self.item_function: dict[str, str] = {}
        self.timed_out: set[str] = set()

    # pytest hooks -------------------------------------------------------- #

    def pytest_collection_modifyitems(self, session, config, items):
        import pytest

        wanted = _split(config.getoption("functions"))
        drop = []
        for item in items:
            week = _week_of(item.path)
            marker = item.get_closest_marker("graded")
            if week is None:
                continue  # not a lab spec (the project's own tests)
            if marker is None:
                raise pytest.UsageError(f"{item.nodeid}: a lab spec needs @graded(<function>)")
            function = marker.args[0]
            declared = getattr(item.module, "GRADED", {})
            if function not in declared:
                raise pytest.UsageError(
                    f"{item.nodeid}: graded function {function!r} is not listed in GRADED "
                    f"of {item.path.name}"
                )
            if week not in self.week_dirs:
                self.week_dirs.append(week)
            for name, track in declared.items():
                self.functions.setdefault(name, FunctionResult(name, track))
            if wanted and function not in wanted:
                drop.append(item)
                continue
            self.item_function[item.nodeid] = function
            self.functions[function].specs.append(item.nodeid)
        unknown = wanted - set(self.functions)
        if wanted and self.functions and unknown:
            raise pytest.UsageError(
                f"no graded function named {', '.join(sorted(unknown))}; "
                f"this week grades: {', '.join(self.functions)}"
            )
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = [i for i in items if i not in drop]

    def pytest_runtest_setup(self, item):
        # One endless loop must not cost a timeout for every spec of the function.
        function = self.item_function.get(item.nodeid)
        if function in self.timed_out:
            import pytest

            pytest.fail(f"{function}: not run, an earlier spec of {function} timed out")

    def pytest_runtest_logreport(self, report):
        function = self.item_function.get(report.nodeid)
        if function is None:
            return
        result = self.functions[function]
        if report.failed:
            message, todo = _failure_message(report)
            if message.startswith("timed out"):
                self.timed_out.add(function)
            if result.failed == 0:
                result.first_failure, result.todo = message, todo
            result.failed += 1
        elif report.when == "call" and report.passed:
            result.passed += 1

    def pytest_terminal_summary(self, terminalreporter):
        if not self.item_function:
            return
        for line in self.table_lines():
            terminalreporter.write_line(line)
        target = self.config.getoption("grading_json")
        if target:
            Path(target).write_text(json.dumps(self.as_json(), indent=2) + "\n")

    # output -------------------------------------------------------------- #

    def as_json(self) -> dict:
        return {
            "implementation": self.config.getoption("impl"),
            "weeks": [w.name for w in self.week_dirs],
            "functions": [
                {
                    "function": r.function,
                    "track": r.track,
                    "status": r.status,
                    "passed": r.passed,
                    "failed": r.failed,
                    "first_failure": r.first_failure,
                }
                for r in self.functions.values()
            ],
        }

    def table_lines(self) -> list[str]:
        rows = [r for r in self.functions.values() if r.specs]
        width = max([len("function"), *(len(r.function) for r in rows)])
        weeks = ", ".join(w.name for w in self.week_dirs)
        impl = self.config.getoption("impl")
        lines = [
            "",
            f"Self-check of {weeks} (implementation: {impl})",
            f"{'function':<{width}}  {'track':<7}  {'result':<7}  {'specs':>5}  first failure",
            f"{'-' * width}  {'-' * 7}  {'-' * 7}  {'-' * 5}  {'-' * 13}",
        ]
        for r in rows:
            specs = f"{r.passed}/{r.passed + r.failed}"
            lines.append(
                f"{r.function:<{width}}  {r.track:<7}  {r.status:<7}  {specs:>5}  {r.first_failure}"
            )
        done = sum(r.status == "PASS" for r in rows)
        lines.append(f"{done}/{len(rows)} graded functions pass")
        if done < len(rows):
            week = make_name(self.week_dirs[0]) if self.week_dirs else "weekN"
            lines.append(
                f"Tracebacks for one function: make test-{week} FUNCTIONS=<name> ARGS=--tb=short"
            )
        return lines


def _week_of(path: Path) -> Path | None:
    try:
        return find_week(path)
    except SetupError:
        return None


def _split(value: str | None) -> set[str]:
    return {v.strip() for v in (value or "").split(",") if v.strip()}


def pytest_addoption(parser):
    group = parser.getgroup("mlsafety", "ML Safety labs self-check")
    group.addoption(
        "--impl",
        default=None,
        help="implementation to grade: student (default), solution, or a folder "
        f"(default from ${IMPL_ENV})",
    )
    group.addoption(
        "--functions", default="", help="comma-separated graded functions: run only their specs"
    )
    group.addoption("--grading-json", default=None, help="write the per-function results here")


def pytest_configure(config):
    config.option.impl = chosen_impl(config.getoption("impl"))
    config.addinivalue_line("markers", "graded(function): graded function this spec checks")
    config.pluginmanager.register(GradingReport(config), "mlsafety-grading-report")


# --------------------------------------------------------------------------- #
# Running the specs of a week.
# --------------------------------------------------------------------------- #


def spec_args(
    week: str | int | Path,
    impl: str | None = None,
    functions: str | list | None = None,
    extra: list[str] | None = None,
) -> list[str]:
    """Arguments for ``pytest.main`` that grade ``week`` with ``impl``."""
    week_dir = find_week(week)
    if isinstance(functions, (list, tuple, set)):
        functions = ",".join(functions)
    args = [
        str(week_dir),
        "--impl",
        chosen_impl(impl),
        "-q",
        "--no-header",
        "-rN",
        "--tb=no",
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
        "--rootdir",
        str(week_dir.parents[1]),
    ]
    if functions:
        args += ["--functions", functions]
    return args + list(extra or [])


def prepare(week: str | int | Path) -> None:
    """Build the smoke checkpoints of the week (the assets manifest lists each
    checkpoint's weeks) before the specs start, so no timed spec trains one."""
    from mlsafety import recipes
    from mlsafety.assets import manifest

    lab = lab_id(find_week(week))
    for checkpoint in manifest().checkpoints.values():
        if lab in checkpoint.labs and "smoke" in checkpoint.profiles:
            recipes.ensure(checkpoint.recipe, "smoke")


@contextmanager
def one_thread():
    """Run the specs with one intra-op torch thread, then restore the setting.

    Specs are many tiny tensor operations. On an idle 2-core machine one thread
    is about as fast as two (3.8 s against 3.3 s for week 3); on a busy one
    (a notebook training next to the self-check) two threads waiting on each
    other made the same run take 88 s against 4 s."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_specs(
    week: str | int | Path = ".",
    impl: str | None = None,
    functions: str | list | None = None,
    extra: list[str] | None = None,
) -> int:
    """Grade ``week`` in this process; pytest's exit code (0: every spec passes)."""
    import pytest

    implementation_dirs(find_week(week), impl)  # a wrong IMPL: one line, not an error per spec
    prepare(week)
    with one_thread():
        return int(pytest.main(spec_args(week, impl, functions, extra)))


def check(
    function: str | list | None = None, week: str | int | Path = ".", impl: str | None = None
) -> None:
    """For a notebook cell: run the week's specs (all, or one function's) in
    this process and print the per-function table of ``make test-weekN``."""
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        run_specs(week, impl, function, ["--color=no"])
    text = buffer.getvalue()
    start = text.find("\nSelf-check of")
    print(text[start + 1 :] if start >= 0 else text)
