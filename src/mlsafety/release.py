"""The student edition: the repository a graded class gets, without answers.

``make release DEST=<folder>`` writes the committed files of this checkout
(their working-tree contents) into an empty folder, leaving out what reveals
an answer or only serves the course's maintainers:

- ``solutions/`` and the buggy variants (``tests/mutants/``, with the rest of
  the project's own tests, which grade the solutions);
- the stub generator and the bench (both read the solutions), the benchmark
  pages, the maintainers' CI and image-publishing workflow.

It refuses when a lab module is not exactly its generated stub, or a notebook
carries outputs: either could hold an answer. Kept: the specs, stubs,
notebooks, toolkit, images, dev containers and compose file. The edition
gets its own ``tests/`` (what its ``make test`` and CI run), a README for
students, ``.github/workflows/classroom.yml`` (see :mod:`mlsafety.classroom`)
and the checkpoints whose recipes train with a reference solution (week 3's
adversarially trained model), prebuilt under ``environments/checkpoints/``.
In the edition a module missing from a graded folder is a one-line error,
never a fallback to a reference (there is none).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from mlsafety import SetupError
from mlsafety.paths import repo_root
from mlsafety.stubs import STUBS_MANIFEST

# Tracked paths the edition leaves out (a trailing slash: the whole folder).
LEFT_OUT = (
    "solutions/",
    "tests/",
    ".ci/",
    ".github/workflows/images.yml",
    "scripts/make_stubs.py",
    "scripts/bench.py",
    "scripts/container_test.sh",
    "scripts/lock_requirements.py",
    "docs/benchmarks.md",
    "docs/benchmarks.json",
    "environments/bench.txt",
    "src/mlsafety/edition/",
)
# Makefile rules that need what is left out.
MAKE_RULES_LEFT_OUT = (
    "test-container",
    "verify-%",
    "$(BENCH)/.installed",
    "bench",
    "lock",
    "class-report",
    "release",
)
EDITION_FILES = Path(__file__).parent / "edition"
PREBUILT = Path("environments") / "checkpoints"


def tracked_files(root: Path) -> list[str]:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        raise SetupError(
            f"cannot list the files of {root} with git ({err}); is it a git checkout?"
        ) from None
    return sorted(p for p in out.split("\0") if p)


def kept(path: str) -> bool:
    return not any(path == x or (x.endswith("/") and path.startswith(x)) for x in LEFT_OUT)


def answer_leaks(root: Path) -> list[str]:
    """Lab files that could hold an answer: a module that is not its generated
    stub, a notebook with outputs."""
    from mlsafety.stubs import expected_stubs
    from mlsafety.weeks import all_labs

    problems = []
    for folder in all_labs().values():
        for name, text in expected_stubs(folder).items():
            path = folder / f"{name}.py"
            if not path.exists() or path.read_text() != text:
                problems.append(f"{path.relative_to(root)} is not its generated stub")
        for notebook in sorted(folder.glob("*.ipynb")):
            cells = json.loads(notebook.read_text()).get("cells", [])
            if any(c.get("outputs") for c in cells):
                problems.append(f"{notebook.relative_to(root)} has outputs (nbstripout it)")
    return problems


def stub_manifest() -> dict:
    """Lab folder -> module -> sha256 of its stub: how the edition tells an
    untouched lab (``make progress`` then skips its specs) without a reference."""
    from mlsafety.stubs import stub_digests
    from mlsafety.weeks import all_labs

    return {folder.name: stub_digests(folder) for folder in all_labs().values()}


def edition_makefile(text: str) -> str:
    """The Makefile without the rules of what the edition leaves out (each rule
    runs from its target line to the next blank line)."""
    out, skipping = [], False
    for line in text.splitlines(keepends=True):
        if "(make class-report)" in line:  # a help line about a facilitator's target
            continue
        target = (
            line.split(":", 1)[0] if ":" in line and not line.startswith(("\t", " ", "#")) else None
        )
        if (
            target in MAKE_RULES_LEFT_OUT
            and not line.startswith(target + " ?=")
            and ":=" not in line
        ):
            skipping = True
        if skipping and not line.strip():
            skipping = False
            continue
        if not skipping:
            out.append(line)
    return "".join(out)


def edition_dockerfile(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if "COPY solutions/" not in line)


def edition_tools(text: str) -> str:
    """Only the tools the edition's own tests use."""
    keep = [ln for ln in text.splitlines() if ln.startswith("#") or ln.startswith("actionlint")]
    return "\n".join(keep) + "\n"


def edition_readme() -> str:
    from mlsafety.weeks import all_labs, make_name, week_title

    labs = "\n".join(
        f"| `make test-{make_name(f)}` | [{f.name}](labs/{f.name}/README.md) | {week_title(f)} |"
        for f in all_labs().values()
    )
    template = (EDITION_FILES / "README.md").read_text()
    return template.replace("{labs}", labs)


def prebuilt_checkpoints(into: Path, echo=print) -> list[str]:
    """Copy the checkpoints whose recipes train with a reference solution into
    the edition (built at the smoke profile if missing here; the cpu and gpu
    ones when built here). Returns what was left out, and why."""
    from mlsafety import recipes
    from mlsafety.checkpoints import record_path

    missing = []
    for name in recipes.REFERENCE_RECIPES:
        for profile in ("smoke", "cpu", "gpu"):
            path = (
                recipes.ensure(name, profile, quiet=True)
                if profile == "smoke"
                else recipes.find(name, profile)
            )
            if path is None:
                missing.append(
                    f"{name} ({profile}) is not built here: `make assets PROFILE={profile}` before "
                    f"`make release` ships it; without it the edition's {profile} profile cannot build it"
                )
                continue
            target = into / PREBUILT / profile / f"{name}.pt"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            shutil.copyfile(record_path(path), record_path(target))
            echo(f"  prebuilt {name} ({profile}): {target.relative_to(into)}")
    return missing


def write_edition(dest: Path, force: bool = False, echo=print) -> dict:
    """Write the student edition into ``dest``; a summary of what it holds."""
    from mlsafety.classroom import workflow

    root = repo_root()
    dest = Path(dest).expanduser().resolve()
    if dest == root or root in dest.parents:
        raise SetupError(f"{dest} is inside the course repository; choose a folder outside it")
    if dest.exists() and any(dest.iterdir()):
        if not force:
            raise SetupError(
                f"{dest} is not empty; choose an empty folder (or --force to replace it)"
            )
        shutil.rmtree(dest)
    problems = answer_leaks(root)
    if problems:
        raise SetupError("the edition would leak answers: " + "; ".join(problems))
    files = [p for p in tracked_files(root) if kept(p) and (root / p).is_file()]
    dest.mkdir(parents=True, exist_ok=True)
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)
    rewrites = {
        "Makefile": edition_makefile,
        "Dockerfile": edition_dockerfile,
        "Dockerfile.cuda": edition_dockerfile,
        "environments/tools.txt": edition_tools,
    }
    for rel, rewrite in rewrites.items():
        if (dest / rel).exists():
            (dest / rel).write_text(rewrite((dest / rel).read_text()))
    (dest / "README.md").write_text(edition_readme())
    (dest / STUBS_MANIFEST).write_text(json.dumps(stub_manifest(), indent=2, sort_keys=True) + "\n")
    (dest / "tests").mkdir(exist_ok=True)
    shutil.copyfile(EDITION_FILES / "test_edition.py", dest / "tests" / "test_edition.py")
    (dest / ".github" / "workflows").mkdir(parents=True, exist_ok=True)
    (dest / ".github" / "workflows" / "classroom.yml").write_text(workflow())
    missing = prebuilt_checkpoints(dest, echo)
    return {"dest": str(dest), "files": len(files) + 3, "not_prebuilt": missing}


def run_release(dest: str, force: bool = False) -> int:
    summary = write_edition(Path(dest), force)
    print(
        f"Student edition: {summary['dest']} ({summary['files']} files, no solutions, no buggy variants)"
    )
    for line in summary["not_prebuilt"]:
        print(f"  note: {line}")
    print(
        "Next: push it as the GitHub Classroom template repository; its autograding "
        "workflow is .github/workflows/classroom.yml, its own checks `make test`"
    )
    return 0
