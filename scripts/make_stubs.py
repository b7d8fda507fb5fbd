"""Write a week's student modules from its reference solution.

Each public function keeps its signature and docstring; its body becomes a
NotImplementedError with a TODO. Private helpers (leading underscore) are
dropped. Module docstrings, imports and constants are kept.

    python scripts/make_stubs.py 3           # writes labs/week03_*/<module>.py
    python scripts/make_stubs.py 3 --check   # exits 1 if a stub is out of date
"""

from __future__ import annotations

import argparse
import ast
import sys

from mlsafety.weeks import find_week, module_names, solution_dir, week_number


def stub_source(source: str, week: int) -> str:
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    out: list[str] = []
    cursor = 0  # next line index of `source` not yet copied

    def copy_until(end: int) -> None:
        nonlocal cursor
        out.extend(lines[cursor:end])
        cursor = end

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
                raise SystemExit(f"{node.name}: a graded function needs a docstring")
            copy_until(doc.end_lineno)
            indent = " " * (doc.col_offset)
            message = f"TODO: implement {node.name} as the docstring describes, then run `make test-week{week}`"
            out.append(
                f"{indent}raise NotImplementedError(\n{indent}    {message!r}\n{indent})\n".replace(
                    "'", '"'
                )
            )
            cursor = node.end_lineno
    copy_until(len(lines))
    return "".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("week")
    parser.add_argument("--check", action="store_true", help="only report stubs that differ")
    args = parser.parse_args()
    week_dir = find_week(args.week)
    week = week_number(week_dir)
    stale = []
    for name in module_names(week_dir):
        expected = stub_source((solution_dir(week_dir) / f"{name}.py").read_text(), week)
        target = week_dir / f"{name}.py"
        if args.check:
            if not target.exists() or target.read_text() != expected:
                stale.append(str(target))
        else:
            target.write_text(expected)
            print(f"wrote {target}")
    if stale:
        print("out of date with the solution: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
