"""Write a week's student modules from its reference solution.

Each public function keeps its signature and docstring; its body becomes a
NotImplementedError with a TODO. Private helpers (leading underscore) are
dropped. Module docstrings, imports and constants are kept.

    python scripts/make_stubs.py 3           # writes labs/week03_*/<module>.py
    python scripts/make_stubs.py 3 --check   # exits 1 if a stub is out of date
"""

from __future__ import annotations

import argparse
import sys

from mlsafety import SetupError
from mlsafety.stubs import expected_stubs
from mlsafety.weeks import find_week


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("week")
    parser.add_argument("--check", action="store_true", help="only report stubs that differ")
    args = parser.parse_args()
    week_dir = find_week(args.week)
    stale = []
    for name, expected in expected_stubs(week_dir).items():
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
    try:
        sys.exit(main())
    except SetupError as err:
        sys.exit(f"make_stubs: {err}")
