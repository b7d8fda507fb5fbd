"""The weeks of the course: finding a lab folder from what a user typed."""

from __future__ import annotations

import re
from pathlib import Path

from mlsafety import SetupError
from mlsafety.paths import repo_root

_WEEK_DIR = re.compile(r"^week(\d\d)_[a-z0-9_]+$")


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


def find_week(spec: str | int | Path) -> Path:
    """The lab folder for ``3``, ``"03"``, ``"week3"``, ``"week03"``,
    ``"week03_adversarial"`` or a path inside it."""
    weeks = all_weeks()
    text = str(spec).strip()
    as_path = Path(text)
    if as_path.exists():
        for folder in [as_path.resolve(), *as_path.resolve().parents]:
            if _WEEK_DIR.match(folder.name):
                return folder
    match = re.fullmatch(r"(?:week)?0*(\d+)(?:_[a-z0-9_]+)?", text.lower())
    if match and int(match.group(1)) in weeks:
        return weeks[int(match.group(1))]
    valid = ", ".join(f"{n} ({p.name})" for n, p in weeks.items()) or "none yet"
    raise SetupError(f"no lab for week {text!r}; valid weeks: {valid}")


def week_number(week_dir: Path) -> int:
    """3 for ``labs/week03_adversarial``."""
    return int(_WEEK_DIR.match(week_dir.name).group(1))


def week_prefix(week_dir: Path) -> str:
    """``week03`` for ``labs/week03_adversarial``: how recipes and mutant files are named."""
    return f"week{week_number(week_dir):02d}"


def solution_dir(week_dir: Path) -> Path:
    return solutions_dir() / week_dir.name


def module_names(week_dir: Path) -> list[str]:
    """The student modules of a week: the reference solution's module files."""
    return sorted(p.stem for p in solution_dir(week_dir).glob("*.py") if not p.stem.startswith("_"))


def week_title(week_dir: Path) -> str:
    """The topic from the week README's first heading: ``# Week 3: <topic>``."""
    readme = week_dir / "README.md"
    first = readme.read_text().splitlines()[0] if readme.exists() else ""
    match = re.fullmatch(r"#\s*Week\s+\d+\s*:\s*(.+)", first.strip())
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
