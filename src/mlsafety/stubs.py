"""Student modules generated from the reference solution.

Each public function keeps its signature and docstring; its body becomes a
NotImplementedError with a TODO. Private helpers (leading underscore) are
dropped. Module docstrings, imports and constants are kept. The progress
report uses the same function to tell an untouched lab from a started one.
"""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path

from mlsafety import SetupError
from mlsafety.paths import repo_root
from mlsafety.weeks import make_name, module_names, solution_dir

# Stubs keep the imports the finished functions need; until then they are unused.
NOQA = "\n# The imports below are for the functions you will write.\n# ruff: noqa: F401\n"


def stub_source(source: str, week: int | str) -> str:
    """The student module: ``source`` with every graded body replaced by a TODO.
    ``week`` is what ``make test-<week>`` takes (``3`` or ``"week3"``, ``"security1"``)."""
    target = f"week{week}" if isinstance(week, int) else week
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    out: list[str] = []
    cursor = 0  # next line index of `source` not yet copied

    def copy_until(end: int) -> None:
        nonlocal cursor
        out.extend(lines[cursor:end])
        cursor = end

    first = tree.body[0] if tree.body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        copy_until(first.end_lineno)  # the module docstring, then the note for linters
        out.append(NOQA)

    for node in tree.body:
        start = (
            node.decorator_list[0].lineno if getattr(node, "decorator_list", None) else node.lineno
        ) - 1
        if isinstance(node, ast.FunctionDef) and node.name.startswith("_"):
            copy_until(start)
            cursor = node.end_lineno
            while cursor < len(lines) and not lines[cursor].strip():
                cursor += 1
            continue
        if isinstance(node, ast.FunctionDef):
            doc = node.body[0]
            if not (isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant)):
                raise SetupError(f"{node.name}: a graded function needs a docstring")
            copy_until(doc.end_lineno)
            indent = " " * (doc.col_offset)
            message = f"TODO: implement {node.name} as the docstring describes, then run `make test-{target}`"
            out.append(
                f"{indent}raise NotImplementedError(\n{indent}    {message!r}\n{indent})\n".replace(
                    "'", '"'
                )
            )
            cursor = node.end_lineno
    copy_until(len(lines))
    return "".join(out)


def expected_stubs(week_dir: Path) -> dict[str, str]:
    """Module name -> the stub text generated from the week's solution."""
    week = make_name(week_dir)
    return {
        name: stub_source((solution_dir(week_dir) / f"{name}.py").read_text(), week)
        for name in module_names(week_dir)
    }


STUBS_MANIFEST = Path("environments") / "stubs.json"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def stub_digests(week_dir: Path) -> dict[str, str]:
    """Module name -> sha256 of its generated stub. Where there is no reference
    (the student edition), from the manifest ``make release`` writes."""
    if solution_dir(week_dir).is_dir():
        return {name: _sha256(text) for name, text in expected_stubs(week_dir).items()}
    manifest = repo_root() / STUBS_MANIFEST
    return json.loads(manifest.read_text()).get(week_dir.name, {}) if manifest.exists() else {}


def untouched(week_dir: Path) -> bool:
    """True when every student module of the week is exactly its generated stub."""
    expected = stub_digests(week_dir)
    for name, digest in expected.items():
        path = week_dir / f"{name}.py"
        if not path.exists() or _sha256(path.read_text()) != digest:
            return False
    return bool(expected)
