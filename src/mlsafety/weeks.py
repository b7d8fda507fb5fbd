"""The labs: finding a lab folder from what a user typed.

Two tracks share one front door. The course's weeks live in
``labs/weekNN_slug`` (track "course"); the security track's labs in
``labs/securityN_slug`` (track "security"). A lab's id is ``week03`` or
``security1``; its make name, what ``make test-<name>`` takes, is ``week3`` or
``security1``."""

from __future__ import annotations

import re
from pathlib import Path

from mlsafety import SetupError
from mlsafety.paths import repo_root

_WEEK_DIR = re.compile(r"^week(\d\d)_[a-z0-9_]+$")
_SECURITY_DIR = re.compile(r"^security(\d+)_[a-z0-9_]+$")
TRACKS = {"course": "Introduction to ML Safety", "security": "ML security"}


def labs_dir() -> Path:
    return repo_root() / "labs"


def solutions_dir() -> Path:
    return repo_root() / "solutions"


def all_weeks() -> dict[int, Path]:
    """Week number -> lab folder, for every ``labs/weekNN_slug`` present."""
    found = {}
    for folder in sorted(labs_dir().glob("week*")):
        match = _WEEK_DIR.match(folder.name)
        if match and folder.is_dir():
            found[int(match.group(1))] = folder
    return found


def security_labs() -> dict[int, Path]:
    """Lab number -> folder, for every ``labs/securityN_slug`` present."""
    found = {}
    for folder in sorted(labs_dir().glob("security*")):
        match = _SECURITY_DIR.match(folder.name)
        if match and folder.is_dir():
            found[int(match.group(1))] = folder
    return dict(sorted(found.items()))


def all_labs() -> dict[str, Path]:
    """Lab id -> folder: the course's weeks in order, then the security track."""
    labs = {f"week{n:02d}": p for n, p in all_weeks().items()}
    labs.update({f"security{n}": p for n, p in security_labs().items()})
    return labs


def is_lab_dir(folder: Path) -> bool:
    return bool(_WEEK_DIR.match(folder.name) or _SECURITY_DIR.match(folder.name))


def find_week(spec: str | int | Path) -> Path:
    """The lab folder for ``3``, ``"03"``, ``"week3"``, ``"week03"``,
    ``"week03_adversarial"``, ``"security1"``, ``"sec1"``,
    ``"security1_privacy"`` or a path inside one."""
    weeks = all_weeks()
    text = str(spec).strip()
    as_path = Path(text)
    if as_path.exists():
        for folder in [as_path.resolve(), *as_path.resolve().parents]:
            if is_lab_dir(folder):
                return folder
    match = re.fullmatch(r"(?:week)?0*(\d+)(?:_[a-z0-9_]+)?", text.lower())
    if match and int(match.group(1)) in weeks:
        return weeks[int(match.group(1))]
    match = re.fullmatch(r"sec(?:urity)?-?0*(\d+)(?:_[a-z0-9_]+)?", text.lower())
    if match and int(match.group(1)) in security_labs():
        return security_labs()[int(match.group(1))]
    raise SetupError(f"no lab {text!r}; {valid_labs()}")


find_lab = find_week


def valid_labs() -> str:
    """One line naming every lab a user can ask for."""
    weeks = ", ".join(f"{n} ({p.name})" for n, p in all_weeks().items()) or "none yet"
    line = f"valid weeks: {weeks}"
    security = security_labs()
    if security:
        line += "; security track: " + ", ".join(
            f"security{n} ({p.name})" for n, p in security.items()
        )
    return line


def track(lab_dir: Path) -> str:
    """ "course" for the weeks, "security" for the security track."""
    return "security" if _SECURITY_DIR.match(lab_dir.name) else "course"


def week_number(week_dir: Path) -> int:
    """3 for ``labs/week03_adversarial``, 1 for ``labs/security1_privacy``
    (a number within its track: see ``lab_id`` for a unique name)."""
    match = _WEEK_DIR.match(week_dir.name) or _SECURITY_DIR.match(week_dir.name)
    return int(match.group(1))


def lab_id(lab_dir: Path) -> str:
    """``week03`` for ``labs/week03_adversarial``, ``security1`` for
    ``labs/security1_privacy``: how recipes, mutant files and reports name a lab."""
    if track(lab_dir) == "security":
        return f"security{week_number(lab_dir)}"
    return f"week{week_number(lab_dir):02d}"


week_prefix = lab_id


def make_name(lab_dir: Path) -> str:
    """What ``make test-<name>`` takes: ``week3``, ``security1``."""
    if track(lab_dir) == "security":
        return f"security{week_number(lab_dir)}"
    return f"week{week_number(lab_dir)}"


def solution_dir(week_dir: Path) -> Path:
    return solutions_dir() / week_dir.name


def module_names(week_dir: Path) -> list[str]:
    """The student modules of a week: the reference solution's module files,
    or, where there is no reference (the student edition), the lab folder's
    modules other than specs and conftest."""
    reference = solution_dir(week_dir)
    if reference.is_dir():
        return sorted(p.stem for p in reference.glob("*.py") if not p.stem.startswith("_"))
    return sorted(
        p.stem
        for p in week_dir.glob("*.py")
        if not p.stem.startswith(("_", "test_")) and p.stem != "conftest"
    )


def week_title(week_dir: Path) -> str:
    """The topic from the lab README's first heading: ``# Week 3: <topic>``
    or ``# Security lab 1: <topic>``."""
    readme = week_dir / "README.md"
    first = readme.read_text().splitlines()[0] if readme.exists() else ""
    match = re.fullmatch(r"#\s*(?:Week|Security lab)\s+\d+\s*:\s*(.+)", first.strip())
    return match.group(1) if match else week_dir.name.split("_", 1)[1].replace("_", " ")


def graded_functions(week_dir: Path) -> dict[str, str]:
    """Graded function -> track ("core" or "stretch"), from the ``GRADED``
    dictionaries of the week's specs, read without importing them."""
    import ast

    found: dict[str, str] = {}
    for spec in sorted(week_dir.glob("test_*.py")):
        for node in ast.parse(spec.read_text()).body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "GRADED" for t in node.targets
            ):
                found.update(ast.literal_eval(node.value))
    return found
