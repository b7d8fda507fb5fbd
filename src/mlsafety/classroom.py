"""GitHub Classroom autograding: the student edition's workflow, and the
command each of its tests runs.

The workflow grades every push once, with the same specs and the same
command as ``make progress`` (torch imported once, every lab in one process),
then gives each graded function its own autograding test:
``mlsafety result week03 pgd_linf`` reads the report and exits 0 when the
function passes, so GitHub Classroom awards its points. Tests are named
``week 3: pgd_linf``, so a lab's functions sit together in the report.

Free runners: a public repository's ``ubuntu-24.04`` runner has 4 cores, a
private one's 2 (GitHub Classroom repositories are private); the whole run
at the smoke profile takes a few minutes there, with the environment
restored from the cache (the first push of a term builds it: about 3
minutes), far inside a job's 6 hours and a minute of each test's timeout.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mlsafety import SetupError
from mlsafety.paths import repo_root

POINTS = {"core": 2, "stretch": 1}
REPORT = "artifacts/progress.json"
TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
# The release's sha256 of the spec files (mlsafety.progress.specs_digest), set by the
# workflow: a report graded with edited specs earns no points.
SPECS_ENV = "MLSAFETY_SPECS_SHA256"


def runner_id(lab: str, function: str) -> str:
    return f"{lab}-{function}".replace("_", "-")


def test_name(lab_dir: Path, function: str) -> str:
    from mlsafety.weeks import lab_id, track, week_number

    if track(lab_dir) == "course":
        return f"week {week_number(lab_dir)}: {function}"
    return f"{lab_id(lab_dir)}: {function}"


def workflow() -> str:
    """The text of ``.github/workflows/classroom.yml`` for this release's labs."""
    from mlsafety.progress import specs_digest
    from mlsafety.weeks import all_labs, graded_functions

    steps, runners, env = [], [], []
    for lab, folder in all_labs().items():
        for function, track in graded_functions(folder).items():
            rid = runner_id(lab, function)
            runners.append(rid)
            env.append(f'          {rid.upper()}_RESULTS: "${{{{ steps.{rid}.outputs.result }}}}"')
            steps.append(
                f"""      - name: "{test_name(folder, function)}"
        id: {rid}
        uses: classroom-resources/autograding-command-grader@v1
        with:
          test-name: "{test_name(folder, function)}"
          command: .venv/bin/mlsafety result {lab} {function} --from {REPORT}
          timeout: 1
          max-score: {POINTS[track]}"""
            )
    return f"""# GitHub Classroom autograding: every push is graded once with the labs' specs
# (`make progress`, the smoke profile), then each graded function is one
# autograding test worth {POINTS["core"]} points (core) or {POINTS["stretch"]} (stretch).
# Written by `make release`; `make progress` shows the same results locally.
name: Autograding

on:
  push:
  repository_dispatch:
  workflow_dispatch:

permissions:
  checks: write
  actions: read
  contents: read

jobs:
  autograding:
    runs-on: ubuntu-24.04
    if: github.actor != 'github-classroom[bot]'
    timeout-minutes: 45
    env:
      MLSAFETY_PROFILE: smoke
      OMP_NUM_THREADS: "1"
      {SPECS_ENV}: {specs_digest(repo_root())}
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        id: python
        with:
          python-version: "3.11"
      - name: Restore the environment
        uses: actions/cache@v4
        with:
          path: .venv
          key: venv-${{{{ runner.os }}}}-${{{{ steps.python.outputs.python-version }}}}-${{{{ hashFiles('environments/requirements.txt', 'pyproject.toml') }}}}
      - name: Restore the smoke checkpoints
        uses: actions/cache@v4
        with:
          path: data
          key: smoke-${{{{ hashFiles('src/mlsafety/recipes.py', 'src/mlsafety/data.py', 'environments/assets.lock.json') }}}}
      - name: Environment (CPU torch wheels)
        run: make setup TORCH_INDEX={TORCH_INDEX}
      - name: Grade every lab
        run: make progress JSON={REPORT}
      - name: Keep the report
        if: always()
        uses: actions/upload-artifact@v4
        with:
          name: progress
          path: {REPORT}
{chr(10).join(steps)}
      - name: Autograding reporter
        uses: classroom-resources/autograding-grading-reporter@v1
        env:
{chr(10).join(env)}
        with:
          runners: {",".join(runners)}
"""


def result(lab: str, function: str, source: str | Path | None = None) -> tuple[bool, str]:
    """Whether ``function`` of ``lab`` passes in a progress report, and the line
    a student reads. A report that did not grade the student's own files never passes."""
    path = Path(source) if source else repo_root() / REPORT
    try:
        report = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise SetupError(
            f"no readable progress report at {path} ({err}); run `make progress`"
        ) from None
    if report.get("implementation") != "student" or report.get("fell_back"):
        return (
            False,
            f"{path} did not grade your own files (implementation {report.get('implementation')!r})",
        )
    expected = os.environ.get(SPECS_ENV)
    if expected and report.get("specs_sha256") != expected:
        return False, (
            f"{lab} {function}: not graded, the specs differ from the release's "
            f"(sha256 {str(report.get('specs_sha256'))[:12]}, release {expected[:12]}); "
            f"restore labs/*/test_*.py and the conftests"
        )
    for week in report.get("weeks", []):
        if lab not in (week.get("id"), week.get("make"), week.get("lab")):
            continue
        for row in week.get("functions", []):
            if row.get("function") == function:
                status = row.get("status")
                specs = f"{row.get('specs_passed', 0)}/{row.get('specs_total', 0)} specs"
                detail = row.get("first_failure") or ""
                line = f"{lab} {function}: {status} ({specs})" + (f": {detail}" if detail else "")
                if status != "PASS":
                    line += f"\nEvery spec's result: make test-{week.get('make', lab)} FUNCTIONS={function}"
                return status == "PASS", line
        names = ", ".join(r.get("function", "?") for r in week.get("functions", []))
        raise SetupError(f"{lab} grades no function {function!r}; it grades: {names}")
    raise SetupError(f"{path} has no lab {lab!r}; run `make progress` for every lab")


def run_result(lab: str, function: str, source: str | None = None) -> int:
    ok, line = result(lab, function, source)
    print(line)
    return 0 if ok else 1
