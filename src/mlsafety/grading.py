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

The table names the bug. A function's row shows its most specific failure,
not the first collected one, ranked:

0. the function changed global state and left it changed (below);
1. a diagnostic spec failed: every spec not marked generic, and any spec
   where the student's code raised (shown as ``KeyError: 'x' raised by your
   code (attacks.py line 12, in f; the spec expected ValueError)``) or timed
   out (naming the innermost graded function that was running: ``timed out
   (>20.0s) in project_l2 (called by pgd_l2)``);
2. a generic comparison failed: a spec marked ``@graded(f, generic=True)``,
   or unmarked and named like ``test_f_matches_torch``,
   ``test_f_against_a_reference``, ``test_f_brute_force``;
3. a spec not run because an earlier one of the function timed out.

Ties go to the spec collected first. With ``--functions f`` the table is
followed by every failing spec of ``f`` with its one-line message.

Isolation: around every spec the plugin snapshots the global state
(:func:`global_state`: torch's default dtype, grad mode, threads,
deterministic and anomaly flags, print options; numpy's print options and
error handling; the torch, numpy and ``random`` generators) and puts it back
afterwards, so no function can make another's specs fail. A change of a
setting (not of a generator: specs seed them, dropout draws from them) fails
the spec against its graded function: ``changed the default dtype
(torch.set_default_dtype): torch.float32 -> torch.float64, and did not
restore it``. A module that changes one when imported fails every spec.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import re
import sys
import textwrap
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pluggy import HookimplMarker

from mlsafety import SetupError
from mlsafety.weeks import find_week, lab_id, make_name, module_names, solution_dir

IMPL_ENV = "MLSAFETY_IMPL"
hookimpl = HookimplMarker("pytest")  # pytest.hookimpl, without importing pytest here
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
    the chosen implementation of ``name`` for the week of the calling file.

    A module whose import changes global state (the default dtype, grad mode,
    print options, ...) fails every spec that uses it, and the state is put back."""
    import inspect

    import pytest

    caller = Path(inspect.stack()[1].filename).resolve()

    @pytest.fixture(scope="session", name=name)
    def _module(request):
        before = global_state()
        try:
            module = load_module(name, caller.parent, request.config.getoption("impl"))
        except Exception as err:  # a student's file that does not import: say so in one line
            restore_state(before)
            where = f" line {err.lineno}" if isinstance(err, SyntaxError) else ""
            detail = err.msg if isinstance(err, SyntaxError) else str(err)
            pytest.fail(
                f"{name}.py does not import ({type(err).__name__}{where}: {detail})", pytrace=False
            )
        changed = state_changes(before, global_state())
        restore_state(before)
        if changed:
            pytest.fail(
                f"importing {name}.py {describe_changes(changed)}; change settings inside a "
                f"function and put them back",
                pytrace=False,
            )
        return module

    return _module


def graded(function: str, generic: bool | None = None):
    """Mark a spec as checking the graded function ``function``.

    ``generic=True`` says the spec only compares with a reference ("differs
    from the reference"), so its failure ranks below those of diagnostic specs
    in the table; by default a spec whose name says ``match``, ``reference``
    or ``brute_force`` is generic (see :func:`spec_rank`)."""
    import pytest

    if generic is None:
        return pytest.mark.graded(function)
    return pytest.mark.graded(function, generic=generic)


# --------------------------------------------------------------------------- #
# Global state: every spec starts from the same, and a change is reported.
# --------------------------------------------------------------------------- #


def _torch():
    # Only where torch is already imported: a numpy-only week never pays for it.
    return sys.modules.get("torch")


def _print_options(torch):
    opts = torch._tensor_str.PRINT_OPTS
    return {
        k: getattr(opts, k)
        for k in ("precision", "threshold", "edgeitems", "linewidth", "sci_mode")
    }


# (key, what a student reads, read, write); torch entries read None without torch.
_REPORTED_STATE = [
    (
        "default_dtype",
        "the default dtype (torch.set_default_dtype)",
        lambda t: t.get_default_dtype(),
        lambda t, v: t.set_default_dtype(v),
    ),
    (
        "grad_enabled",
        "grad mode (torch.set_grad_enabled; `with torch.no_grad():` restores it)",
        lambda t: t.is_grad_enabled(),
        lambda t, v: t.set_grad_enabled(v),
    ),
    (
        "threads",
        "torch's thread count (torch.set_num_threads)",
        lambda t: t.get_num_threads(),
        lambda t, v: t.set_num_threads(v),
    ),
    (
        "deterministic",
        "deterministic algorithms (torch.use_deterministic_algorithms)",
        lambda t: (
            t.are_deterministic_algorithms_enabled(),
            t.is_deterministic_algorithms_warn_only_enabled(),
        ),
        lambda t, v: t.use_deterministic_algorithms(v[0], warn_only=v[1]),
    ),
    (
        "cudnn",
        "cuDNN's deterministic/benchmark flags",
        lambda t: (t.backends.cudnn.deterministic, t.backends.cudnn.benchmark),
        lambda t, v: (
            setattr(t.backends.cudnn, "deterministic", v[0]),
            setattr(t.backends.cudnn, "benchmark", v[1]),
        ),
    ),
    (
        "anomaly",
        "anomaly detection (torch.autograd.set_detect_anomaly)",
        lambda t: (t.is_anomaly_enabled(), t.is_anomaly_check_nan_enabled()),
        lambda t, v: t.autograd.set_detect_anomaly(v[0], check_nan=v[1]),
    ),
    (
        "torch_print",
        "torch's print options (torch.set_printoptions)",
        _print_options,
        lambda t, v: t.set_printoptions(**v),
    ),
]


def global_state() -> dict:
    """A snapshot of the process-wide settings code under test could change:
    torch's default dtype, grad mode, threads, deterministic and anomaly flags,
    print options; numpy's print options and error handling; and the global
    random states of torch, numpy and ``random``."""
    import random

    import numpy as np

    torch = _torch()
    state = {
        "numpy_print": np.get_printoptions(),
        "numpy_errors": np.geterr(),
        "numpy_rng": np.random.get_state(),
        "python_rng": random.getstate(),
    }
    for key, _, read, _ in _REPORTED_STATE:
        state[key] = read(torch) if torch is not None else None
    if torch is not None:
        state["torch_rng"] = torch.get_rng_state()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
    return state


_REPORTED_NUMPY = {
    "numpy_print": "numpy's print options (np.set_printoptions)",
    "numpy_errors": "numpy's error handling (np.seterr; `with np.errstate(...):` restores it)",
}


def state_changes(before: dict, after: dict) -> list[str]:
    """What changed between two snapshots, in a student's words ("the default
    dtype (torch.set_default_dtype): torch.float32 -> torch.float64"). The
    random states are not reported (specs seed them, and dropout draws from
    them); they are only put back by :func:`restore_state`."""
    changes = []
    for key, what in _REPORTED_NUMPY.items():
        if before[key] != after[key]:
            diff = ", ".join(
                f"{k} {before[key].get(k)!r} -> {v!r}"
                for k, v in after[key].items()
                if before[key].get(k) != v
            )
            changes.append(f"{what}: {diff}")
    for key, what, _, _ in _REPORTED_STATE:
        if before[key] is None:
            continue  # torch was imported during the spec: nothing to compare with
        if before[key] != after[key]:
            changes.append(f"{what}: {_show(before[key])} -> {_show(after[key])}")
    return changes


def describe_changes(changes: list[str]) -> str:
    """One sentence for :func:`state_changes`' list."""
    them = "it" if len(changes) == 1 else "them"
    return f"changed {'; '.join(changes)}, and did not restore {them}"


def _show(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v!r}" for k, v in value.items())
    return str(value)


def restore_state(state: dict) -> None:
    """Put back every setting of a :func:`global_state` snapshot."""
    import random

    import numpy as np

    torch = _torch()
    if np.get_printoptions() != state["numpy_print"]:
        np.set_printoptions(**state["numpy_print"])
    np.seterr(**state["numpy_errors"])
    np.random.set_state(state["numpy_rng"])
    random.setstate(state["python_rng"])
    if torch is None or state["default_dtype"] is None:
        return
    for key, _, read, write in _REPORTED_STATE:
        if read(torch) != state[key]:
            write(torch, state[key])
    torch.set_rng_state(state["torch_rng"])
    if "cuda_rng" in state:
        torch.cuda.set_rng_state_all(state["cuda_rng"])


# --------------------------------------------------------------------------- #
# Per-function results.
# --------------------------------------------------------------------------- #

# How telling a failure is: the table shows a function's lowest-ranked one.
RANK_STATE = 0  # the function changed global state and left it changed
RANK_DIAGNOSTIC = 1  # a spec that names a cause failed, or the code raised, or timed out
RANK_GENERIC = 2  # a spec that only compares with a reference failed
RANK_NOT_RUN = 3  # skipped after an earlier timeout of the same function

_GENERIC_NAME = re.compile(r"match|reference|brute_force")


def spec_rank(item) -> int:
    """RANK_GENERIC for a spec that only compares with a reference: marked
    ``@graded(f, generic=True)``, or unmarked and named like
    ``test_x_matches_torch``, ``test_x_against_a_reference`` or
    ``test_x_brute_force``; RANK_DIAGNOSTIC for every other spec."""
    marker = item.get_closest_marker("graded")
    generic = marker.kwargs.get("generic") if marker is not None else None
    if generic is None:
        generic = bool(_GENERIC_NAME.search(getattr(item, "originalname", item.name)))
    return RANK_GENERIC if generic else RANK_DIAGNOSTIC


@dataclass
class Failure:
    rank: int
    order: int  # collection order, to break ties
    spec: str  # the spec's name (with its parameters)
    message: str


@dataclass
class FunctionResult:
    function: str
    track: str = "core"
    passed: int = 0
    failed: int = 0
    todo: bool = False
    failures: list[Failure] = field(default_factory=list)
    specs: list[str] = field(default_factory=list)

    @property
    def first_failure(self) -> str:
        """The most telling failure: state changes first, then diagnostic
        specs, then generic comparisons, each in collection order."""
        if not self.failures:
            return ""
        return min(self.failures, key=lambda f: (f.rank, f.order)).message

    @property
    def status(self) -> str:
        if self.failed == 0 and self.passed == 0:
            return "NOT RUN"
        if self.failed == 0:
            return "PASS"
        return "TODO" if self.todo and self.passed == 0 else "FAIL"


# Errors whose message alone does not say what to change; each hint is given
# only where its pattern is in the message.
_HINTS = {
    "does not require grad": "was the gradient taken under torch.no_grad() or of a detached tensor?",
    "Expected all tensors to be on the same device": "create new tensors on the input's device",
}
MAX_MESSAGE = 300


def one_line(text: str) -> str:
    """The first line of ``text``, at most MAX_MESSAGE characters (no tensor dumps)."""
    lines = text.strip().splitlines()
    first = lines[0].strip() if lines else "failed"
    return first if len(first) <= MAX_MESSAGE else first[: MAX_MESSAGE - 3] + "..."


def _failure_message(report) -> tuple[str, bool]:
    """The first line a student needs, and whether it is a NotImplementedError."""
    told = getattr(report, "mlsafety_message", None)
    if told:
        return _hinted(told), False
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    first = one_line(text)
    if first.startswith("NotImplementedError"):
        return "not implemented yet (raises NotImplementedError)", True
    if "Timeout" in first and "pytest-timeout" in first:
        limit = first.split("(")[-1].split(")")[0]
        return f"timed out ({limit}): an endless loop, or far too slow?", False
    for prefix in ("AssertionError: ", "Failed: "):
        first = first.removeprefix(prefix)
    return _hinted(first), False


def _hinted(message: str) -> str:
    for pattern, hint in _HINTS.items():
        if pattern in message:
            message = f"{message} ({hint})"
    return message


def _impl_frames(excinfo) -> list:
    """Traceback entries inside the implementation's modules (loaded by
    :func:`load_module` under ``_mlsafety_impl_*`` names), outermost first."""
    return [
        entry
        for entry in excinfo.traceback
        if str(entry.frame.f_globals.get("__name__", "")).startswith("_mlsafety_impl_")
    ]


def _expected_exceptions(item, excinfo) -> list[str]:
    """The exceptions of the ``pytest.raises(...)`` blocks of the spec that
    enclose the line where it called the code that raised."""
    import ast
    import inspect

    lines = [
        entry.lineno + 1
        for entry in excinfo.traceback
        if Path(str(entry.path)) == Path(item.path) and entry.name == item.obj.__name__
    ]
    if not lines:
        return []
    try:
        source, start = inspect.getsourcelines(item.obj)
        tree = ast.parse(textwrap.dedent("".join(source)))
    except (OSError, TypeError, SyntaxError):
        return []
    line = lines[-1] - start + 1
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.With) or not node.lineno <= line <= node.end_lineno:
            continue
        for with_item in node.items:
            call = with_item.context_expr
            if (
                isinstance(call, ast.Call)
                and ast.unparse(call.func).endswith("raises")
                and call.args
            ):
                found.append(ast.unparse(call.args[0]))
    return found


def _raised_message(item, excinfo, function: str, graded_names) -> tuple[str | None, str | None]:
    """A message for an exception that is not a spec's own verdict: a timeout
    naming the innermost graded function that was running (also returned), or
    an exception raised by the student's code with what the spec expected.
    (None, None) otherwise."""
    import pytest

    frames = _impl_frames(excinfo)
    text = str(excinfo.value)
    if (
        excinfo.errisinstance(pytest.fail.Exception)
        and "Timeout" in text
        and "pytest-timeout" in text
    ):
        limit = text.split("(")[-1].split(")")[0]
        running = [e.name for e in frames if e.name in graded_names]
        if not running:  # not inside the implementation: the spec's own set-up was too slow
            return f"timed out ({limit}) outside your code (a slow machine?)", None
        looped = running[-1]
        where = f" in {looped}" + (f" (called by {function})" if looped != function else "")
        return f"timed out ({limit}){where}: an endless loop, or far too slow?", looped
    if excinfo.errisinstance((AssertionError, NotImplementedError, pytest.fail.Exception)):
        return None, None
    if not frames or not isinstance(excinfo.value, Exception):
        return None, None
    last = frames[-1]
    expected = _expected_exceptions(item, excinfo)
    wanted = (
        f"the spec expected {' or '.join(expected)}"
        if expected
        else ("the spec expected no exception")
    )
    detail = one_line(f"{excinfo.typename}: {text}" if text else excinfo.typename)
    return (
        f"{detail} raised by your code ({Path(str(last.path)).name} line {last.lineno + 1}, "
        f"in {last.name}; {wanted})"
    ), None


class GradingReport:
    """Collects outcomes per graded function over one pytest session.

    Around every spec it snapshots the global state (:func:`global_state`) and
    puts it back afterwards, so no function can make another's specs fail; a
    spec after which a reported setting changed fails with that change, against
    its graded function. A function's failures are ranked (:func:`spec_rank`):
    the table shows the most telling one, and ``--functions f`` lists them all."""

    def __init__(self, config):
        self.config = config
        self.functions: dict[str, FunctionResult] = {}
        self.week_dirs: list[Path] = []
        self.item_function: dict[str, str] = {}
        self.item_rank: dict[str, int] = {}
        self.item_name: dict[str, str] = {}
        self.timed_out: dict[str, str] = {}  # function -> the function that looped
        self.graded_names: set[str] = set()
        self._before: dict | None = None

    # pytest hooks -------------------------------------------------------- #

    def pytest_collection_modifyitems(self, session, config, items):
        import pytest

        from mlsafety.weeks import graded_functions

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
                self.graded_names |= set(graded_functions(week))
            for name, track in declared.items():
                self.functions.setdefault(name, FunctionResult(name, track))
            if wanted and function not in wanted:
                drop.append(item)
                continue
            self.item_function[item.nodeid] = function
            self.item_rank[item.nodeid] = spec_rank(item)
            self.item_name[item.nodeid] = item.name
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

    @hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        before = global_state() if item.nodeid in self.item_function else None
        self._before = before
        try:
            yield
        finally:
            self._before = None
            if before is not None:
                restore_state(before)

    def pytest_runtest_setup(self, item):
        # One endless loop must not cost a timeout for every spec of the function.
        function = self.item_function.get(item.nodeid)
        if function in self.timed_out:
            import pytest

            looped = self.timed_out[function]
            pytest.fail(f"{function}: not run, an earlier spec timed out in {looped}")

    @hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        function = self.item_function.get(item.nodeid)
        if function is None:
            return
        if call.excinfo is not None and report.failed:
            message, looped = _raised_message(item, call.excinfo, function, self.graded_names)
            if message:
                report.mlsafety_message = message
            if looped:
                report.mlsafety_looped = looped
        if call.when == "call" and self._before is not None:
            changed = state_changes(self._before, global_state())
            if changed:
                message = f"{function}: {describe_changes(changed)}"
                if report.failed:
                    message += f" (the spec also failed: {_failure_message(report)[0]})"
                report.outcome = "failed"
                report.longrepr = message
                report.mlsafety_message = one_line(message)
                report.mlsafety_rank = RANK_STATE

    def pytest_runtest_logreport(self, report):
        function = self.item_function.get(report.nodeid)
        if function is None:
            return
        result = self.functions[function]
        if report.failed:
            message, todo = _failure_message(report)
            rank = getattr(report, "mlsafety_rank", self.item_rank.get(report.nodeid, 1))
            if message.startswith("timed out"):
                looped = getattr(report, "mlsafety_looped", function)
                self.timed_out[function] = looped
                self.timed_out.setdefault(looped, looped)
            elif "not run, an earlier spec timed out" in message:
                rank = RANK_NOT_RUN
            if result.failed == 0:
                result.todo = todo
            result.failures.append(
                Failure(rank, len(result.failures), self.item_name.get(report.nodeid, ""), message)
            )
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
                    "failures": [{"spec": f.spec, "message": f.message} for f in r.failures],
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
            f"{'function':<{width}}  {'track':<7}  {'result':<7}  {'specs':>5}  most specific failure",
            f"{'-' * width}  {'-' * 7}  {'-' * 7}  {'-' * 5}  {'-' * 21}",
        ]
        for r in rows:
            specs = f"{r.passed}/{r.passed + r.failed}"
            lines.append(
                f"{r.function:<{width}}  {r.track:<7}  {r.status:<7}  {specs:>5}  {r.first_failure}"
            )
        done = sum(r.status == "PASS" for r in rows)
        lines.append(f"{done}/{len(rows)} graded functions pass")
        if _split(self.config.getoption("functions")):
            for r in rows:
                if r.failures:
                    lines += ["", f"Failing specs of {r.function}:"]
                    lines += [f"  {f.spec}: {f.message}" for f in r.failures]
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


def prepare(week: str | int | Path, profile: str = "smoke", quiet: bool = False) -> None:
    """Build the checkpoints of the week at ``profile`` (the assets manifest
    lists each checkpoint's weeks) before the specs, or a timed notebook, start,
    so that nothing timed trains one. gpu checkpoints train on the GPU, as
    `make assets` builds them."""
    from mlsafety import recipes
    from mlsafety.assets import manifest
    from mlsafety.hardware import pick_device

    lab = lab_id(find_week(week))
    device = pick_device() if profile == "gpu" else "cpu"
    for checkpoint in manifest().checkpoints.values():
        if lab in checkpoint.labs and profile in checkpoint.profiles:
            recipes.ensure(checkpoint.recipe, profile, device=device, quiet=quiet)


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
