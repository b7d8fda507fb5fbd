"""Command line of the toolkit, behind the Makefile's targets.

mlsafety test WEEK [--impl student|solution|DIR] [--functions f,g]
mlsafety progress [--impl I] [--json F]  every week's specs: one line per week + a JSON report
mlsafety verify WEEK... [--no-claims]  specs pass on the solution, fail on stubs, catch
                               mutants; the claims file's rules hold (mlsafety claims)
mlsafety claims WEEK...        each docstring claim traced to specs; every raise provoked
mlsafety assets [--profile P] [--lock|--check]  build the checkpoints (cached)
mlsafety data [--profile P] [--from DIR] [--standin]  fetch the datasets of a profile
                               (resumable, verified); --standin: a rehearsal's stand-ins
mlsafety standin NAME... --into DIR  write labelled stand-ins (never used as the dataset)
mlsafety doctor [--profile P]  versions, device, assets, port; exits 1 on problems
mlsafety weeks                 list the labs
mlsafety class-report FROM [--out D] [--workers N] [--limit S]  grade a section's clones
mlsafety release DEST          write the student edition (no solutions, no buggy variants)
mlsafety result LAB FUNCTION [--from F]  one graded function's result from a progress report
"""

from __future__ import annotations

import argparse
import sys

from mlsafety import SetupError


def _test(args) -> int:
    from mlsafety.grading import run_specs

    return run_specs(args.week, args.impl, args.functions, args.pytest_args)


def _progress(args) -> int:
    from mlsafety.progress import run_progress

    return run_progress(args.impl, args.weeks or None, args.json)


def _verify(args) -> int:
    from mlsafety.verify import verify_week
    from mlsafety.weeks import all_labs

    weeks = args.weeks or list(all_labs())
    problems = []
    for week in weeks:
        problems += verify_week(week, claims=args.claims)
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return 1 if problems else 0


def _claims(args) -> int:
    from mlsafety.claims import check_claims
    from mlsafety.weeks import all_labs

    problems = []
    for week in args.weeks or list(all_labs()):
        problems += check_claims(week, deletions=not args.static, echo=print)
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return 1 if problems else 0


def _mutant(args) -> int:
    from pathlib import Path

    from mlsafety.verify import mutants, write_mutant
    from mlsafety.weeks import find_week, make_name

    week_dir = find_week(args.week)
    found = {m.name: m for m in mutants(week_dir)}
    if args.name not in found:
        raise SetupError(f"no mutant {args.name!r} for {week_dir.name}; known: {', '.join(found)}")
    folder = write_mutant(week_dir, found[args.name], Path(args.into))
    print(f"{folder}: grade it with  make test-{make_name(week_dir)} IMPL={folder}")
    return 0


def _assets(args) -> int:
    from mlsafety import recipes
    from mlsafety.assets import manifest, write_lock_entries
    from mlsafety.hardware import pick_device, pick_profile

    profile = pick_profile(args.profile)
    device = pick_device() if profile.name == "gpu" else "cpu"
    needed = {c.name: c for c in manifest().for_profile(profile.name)[1]}
    names = args.names or list(needed)
    unknown = [n for n in names if n not in manifest().checkpoints]
    if unknown:
        raise SetupError(
            f"unknown checkpoint {unknown[0]!r}; known: {', '.join(manifest().checkpoints)}"
        )
    built, drifted = {}, []
    for name in names:
        recipe = manifest().checkpoints[name].recipe
        # strict: a damaged, unsafe or not-as-locked file is rebuilt, never trusted
        path = recipes.ensure(recipe, profile, device=device, quiet=True, strict=True)
        status = recipes.lock_status(recipe, profile, path)
        print(f"{name} ({profile.name}): {path}; {status}")
        built[(name, profile.name)] = recipes.lock_record(path)
        if status != "sha256 matches the lock":
            drifted.append(name)
    if args.lock:
        print(f"recorded {len(built)} checkpoint(s) in {write_lock_entries(built)}")
    elif args.check and drifted:
        print(f"not as locked: {', '.join(drifted)}", file=sys.stderr)
        return 1
    return 0


def _data(args) -> int:
    from mlsafety.assets import fetch_dataset, manifest
    from mlsafety.hardware import pick_profile
    from mlsafety.standin import STANDINS, install_standin

    profile = pick_profile(args.profile)
    names = args.names or [d.name for d in manifest().for_profile(profile.name)[0]]
    options = {"timeout": args.timeout} if args.timeout else {}
    if args.source:
        options = {"source": args.source}
    failed = []
    for name in names:
        try:
            if args.standin and name in STANDINS:
                folder, what = install_standin(name, args.source)
                print(f"{name}: STAND-IN {what}, not the published data ({folder})")
                continue
            folder, what = fetch_dataset(name, progress=not args.quiet, **options)
            print(f"{name}: {what}, verified ({folder})")
        except SetupError as err:
            text = str(err)
            print(text if text.startswith(f"{name}: ") else f"{name}: {text}", file=sys.stderr)
            failed.append(name)
    if failed:
        print(f"mlsafety: could not fetch {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def _standin(args) -> int:
    from mlsafety.standin import write_standin

    for name in args.names:
        folder = write_standin(name, args.into, args.examples)
        print(
            f"{name}: STAND-IN written to {folder} (not the published data; `make data` refuses it)"
        )
    return 0


def _doctor(args) -> int:
    from mlsafety.doctor import run_doctor

    return run_doctor(args.profile, deep=args.deep, port=args.port)


def _lab(args) -> int:
    from mlsafety.lab import run_lab

    return run_lab(args.port, args.ip, args.notebook)


def _weeks(args) -> int:
    from mlsafety.weeks import all_labs, make_name

    for folder in all_labs().values():
        print(f"{make_name(folder)}\t{folder.name}")
    return 0


def _class_report(args) -> int:
    from mlsafety.classreport import run_class_report

    return run_class_report(args.source, args.out, args.workers, args.limit)


def _release(args) -> int:
    from mlsafety.release import run_release

    return run_release(args.dest, force=args.force)


def _result(args) -> int:
    from mlsafety.classroom import run_result

    return run_result(args.lab, args.function, args.source)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlsafety", description="ML Safety labs toolkit")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("test", help="grade a week's functions and print the per-function table")
    p.add_argument("week")
    p.add_argument("--impl", default=None, help="student (default), solution, or a folder")
    p.add_argument(
        "--functions", default=None, help="only these graded functions (comma-separated)"
    )
    p.set_defaults(run=_test)
    p = sub.add_parser("progress", help="grade every week: a line per week and a JSON report")
    p.add_argument("weeks", nargs="*", help="only these weeks (default: all)")
    p.add_argument("--impl", default=None, help="student (default), solution, or a folder")
    p.add_argument(
        "--json", default=None, help="where to write the report (artifacts/progress.json)"
    )
    p.set_defaults(run=_progress)
    p = sub.add_parser(
        "verify", help="prove the specs: solution passes, stubs fail, mutants caught"
    )
    p.add_argument("weeks", nargs="*")
    p.add_argument(
        "--no-claims", dest="claims", action="store_false", help="skip the claims file's rules"
    )
    p.set_defaults(run=_verify)
    p = sub.add_parser(
        "claims",
        help="check the claims file: each docstring claim traced to specs, raises provoked",
    )
    p.add_argument("weeks", nargs="*")
    p.add_argument(
        "--static",
        action="store_true",
        help="only the rules that run no specs (no raise deletions)",
    )
    p.set_defaults(run=_claims)
    p = sub.add_parser("mutant", help="write a buggy variant of the solution into a folder")
    p.add_argument("week")
    p.add_argument("name")
    p.add_argument("into")
    p.set_defaults(run=_mutant)
    p = sub.add_parser("assets", help="build the checkpoints of a profile (cached)")
    p.add_argument("names", nargs="*")
    p.add_argument("--profile", default=None)
    p.add_argument("--lock", action="store_true", help="record the builds in the lock file")
    p.add_argument("--check", action="store_true", help="fail when a build differs from the lock")
    p.set_defaults(run=_assets)
    p = sub.add_parser("data", help="fetch the datasets of a profile (verified, resumable)")
    p.add_argument("names", nargs="*")
    p.add_argument("--profile", default=None)
    p.add_argument("--timeout", type=float, default=None, help="seconds without data (30)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--from",
        dest="source",
        default=None,
        help="take the files from this folder instead of the network (same sha256 checks)",
    )
    p.add_argument(
        "--standin",
        action="store_true",
        help="rehearsal: install labelled stand-ins of Fashion-MNIST, CIFAR-10 and SVHN "
        "(from --from, else written) under <data root>/standin, read only with MLSAFETY_STANDIN=1",
    )
    p.set_defaults(run=_data)
    p = sub.add_parser(
        "standin", help="write labelled stand-ins in the published formats (for rehearsals)"
    )
    p.add_argument("names", nargs="+", help="fashion-mnist, cifar10 or svhn")
    p.add_argument("--into", required=True, help="folder; each dataset goes in <into>/<name>/")
    p.add_argument(
        "--examples", type=int, default=None, help="at most this many per file (published sizes)"
    )
    p.set_defaults(run=_standin)
    p = sub.add_parser("doctor", help="check versions, device, assets, port; list problems")
    p.add_argument("--profile", default=None)
    p.add_argument("--deep", action="store_true", help="re-hash every dataset file")
    p.add_argument("--port", type=int, default=8888)
    p.set_defaults(run=_doctor)
    p = sub.add_parser("lab", help="start JupyterLab on 127.0.0.1 with a token")
    p.add_argument("--port", type=int, default=8888)
    p.add_argument("--ip", default="127.0.0.1")
    p.add_argument(
        "--notebook", default=None, help="path of a notebook to open, from the repository root"
    )
    p.set_defaults(run=_lab)
    p = sub.add_parser("weeks", help="list the labs")
    p.set_defaults(run=_weeks)
    p = sub.add_parser("class-report", help="grade a folder of student clones and progress files")
    p.add_argument("source", help="folder of student clones and/or progress files")
    p.add_argument("--out", default=None, help="where to write (artifacts/class/)")
    p.add_argument("--workers", type=int, default=None, help="processes (min(2, cpus))")
    p.add_argument("--limit", type=float, default=None, help="seconds per student (600)")
    p.set_defaults(run=_class_report)
    p = sub.add_parser("release", help="write the student edition into an empty folder")
    p.add_argument("dest")
    p.add_argument("--force", action="store_true", help="replace what DEST holds")
    p.set_defaults(run=_release)
    p = sub.add_parser("result", help="exit 0 when a graded function passes in a progress report")
    p.add_argument("lab")
    p.add_argument("function")
    p.add_argument("--from", dest="source", default=None, help="report (artifacts/progress.json)")
    p.set_defaults(run=_result)
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "test":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.pytest_args = [a for a in extra if a != "--"]
    try:
        return args.run(args)
    except SetupError as err:
        print(f"mlsafety: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
