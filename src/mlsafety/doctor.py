"""`make doctor`: is this machine ready for the labs, and if not, what to run.

Prints versions, the CUDA build and driver, the device and profile chosen,
free disk, every asset the profile needs (verified, corrupt or missing), the
Jupyter port and the user. Exits 1 with a list of problems when something the
labs need is wrong; warnings (a busy port, little disk) do not fail it.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field

from mlsafety import SetupError

MIN_FREE_GB = 2.0
ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
IMAGE_ARCH_FILE = "image-arch"  # written into $MLSAFETY_HOME by docker/build.sh


@dataclass
class Report:
    lines: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def add(self, what: str, value: str) -> None:
        self.lines.append((what, value))


def _pins() -> dict[str, str]:
    from mlsafety.paths import repo_root

    pins = {}
    path = repo_root() / "environments" / "requirements.txt"
    for line in path.read_text().splitlines() if path.exists() else []:
        name, sep, version = line.partition("==")
        if sep:
            pins[name.strip().lower()] = version.strip()
    return pins


def _driver_version() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout else None


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _check_versions(report: Report) -> None:
    import torch
    import torchvision

    py = platform.python_version()
    report.add("python", f"{py} ({sys.executable})")
    pins = _pins()
    for name, module in (("torch", torch), ("torchvision", torchvision)):
        have, want = module.__version__.split("+")[0], pins.get(name)
        report.add(name, f"{module.__version__}" + (f" (pinned {want})" if want else ""))
        if want and have != want:
            report.problems.append(
                f"{name} {have} is installed but environments/ pins {want}: run `make setup`"
            )
    built = torch.version.cuda
    driver = _driver_version()
    report.add(
        "cuda",
        f"torch built with CUDA {built}" if built else "torch built without CUDA (CPU wheel)",
    )
    report.add("nvidia driver", driver or "none found (nvidia-smi absent or no GPU)")


def _check_device(report: Report, profile_name: str | None):
    from mlsafety.hardware import pick_device, pick_profile

    try:
        device = pick_device()
    except SetupError as err:
        report.problems.append(str(err))
        device = "cpu"
    profile = pick_profile(profile_name, device=device)
    source = (
        "--profile"
        if profile_name
        else "MLSAFETY_PROFILE"
        if os.environ.get("MLSAFETY_PROFILE")
        else "the device"
    )
    report.add("device", str(device))
    report.add("profile", f"{profile.name} (from {source})")
    if profile.name == "gpu" and getattr(device, "type", str(device)) != "cuda":
        report.warnings.append(
            "the gpu profile on a machine without CUDA runs every lab far beyond its budget; "
            "use the cpu profile (PROFILE=cpu, or unset MLSAFETY_PROFILE)"
        )
    return profile


def _check_disk(report: Report) -> None:
    from mlsafety.paths import data_root, writable

    root = data_root()
    probe = root
    while not probe.exists():
        probe = probe.parent
    free_gb = shutil.disk_usage(probe).free / 1e9
    mode = "writable" if writable(root) else "read-only"
    report.add("data root", f"{root} ({mode}, {free_gb:.1f} GB free)")
    if free_gb < MIN_FREE_GB:
        report.warnings.append(f"only {free_gb:.1f} GB free under {probe}")


def _check_assets(report: Report, profile, deep: bool) -> None:
    """Every dataset and checkpoint of ``profile``, each on its own line: one
    broken asset never hides the others. A checkpoint is verified when the
    labs will load it: its sha256 is the lock's (or, with no lock entry for
    these settings, the one recorded when it was built here) and the safe
    loader accepts it."""
    from mlsafety.assets import manifest

    datasets, checkpoints = manifest().for_profile(profile.name)
    data_ok = True
    for entry in datasets:
        data_ok &= _check_dataset(report, entry, profile, deep)
    for entry in checkpoints:
        _check_checkpoint(report, entry, profile, data_ok)


def _check_dataset(report: Report, entry, profile, deep: bool) -> bool:
    from mlsafety.assets import dataset_folder, dataset_state

    fix = f"`make data PROFILE={profile.name}`"
    try:
        folder, state = dataset_folder(entry), dataset_state(entry, deep=deep)
    except Exception as err:  # noqa: BLE001 - report it and go on with the rest
        folder, state = "?", f"corrupt: could not be checked ({_first_line(err)})"
    if state != "verified" and _standin_read(report, entry, deep):
        return True
    report.add(f"dataset {entry.name}", f"{state}  ({folder})")
    if state == "verified":
        return True
    verb = "fetches" if state == "missing" else "repairs"
    report.problems.append(f"dataset {entry.name} is {state} at {folder}: {fix} {verb} it")
    return False


def _standin_read(report: Report, entry, deep: bool) -> bool:
    """Whether the labs read the stand-in of ``entry`` (a rehearsal: only with
    MLSAFETY_STANDIN=1 and the published dataset absent); if so it is listed as
    such, with a warning."""
    from mlsafety import standin

    if not standin.in_use(entry.name) or standin.standin_state(entry.name, deep) != "verified":
        return False
    folder = standin.standin_root() / entry.folder
    report.add(f"dataset {entry.name}", f"STAND-IN, verified  ({folder})")
    report.warnings.append(
        f"dataset {entry.name}: the labs read its stand-in ({standin.ENV}=1), not the published "
        f"data; every number measured on it is a stand-in's"
    )
    return True


def _check_checkpoint(report: Report, entry, profile, data_ok: bool) -> None:
    from mlsafety import recipes

    fix = f"`make assets PROFILE={profile.name}`"
    if not data_ok:
        report.add(f"checkpoint {entry.name}", "not checked (its dataset is not ready)")
        report.problems.append(f"checkpoint {entry.name}: after the datasets, run {fix}")
        return
    try:
        state, path = recipes.checkpoint_state(entry.recipe, profile)
    except Exception as err:  # noqa: BLE001 - report it and go on with the rest
        state, path = f"corrupt: could not be checked ({_first_line(err)})", None
    where = str(path) if path else "not built for this profile"
    report.add(f"checkpoint {entry.name}", f"{state}  ({where})")
    if state == "verified":
        return
    if state.startswith("differs from the lock"):
        # the labs load it (CPU builds differ across CPU types), but it is not
        # the locked file: a replaced file with a matching record looks like this
        report.warnings.append(
            f"checkpoint {entry.name} at {path}: {state.removeprefix('differs from the lock: ')}"
            f"; {fix} rebuilds it (CPU builds are reproducible on one CPU type only)"
        )
        return
    at = f" at {path}" if path else ""
    report.problems.append(f"checkpoint {entry.name}{at} is {state}: {fix} rebuilds it")


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:160] if text else type(err).__name__


def _check_port(report: Report, port: int) -> None:
    free = port_free(port)
    report.add("jupyter port", f"127.0.0.1:{port} " + ("free" if free else "in use"))
    if not free:
        report.warnings.append(
            f"port {port} is in use (a running JupyterLab?): `make lab` uses the next free port"
        )


def processor_architecture(cpuinfo: str | None = None) -> str | None:
    """The processor's architecture as the kernel describes it in /proc/cpuinfo
    ("amd64" or "arm64"), which emulation does not change: a program run by
    QEMU or Rosetta sees another architecture in ``platform.machine()`` but the
    real processor here. None when it cannot tell (not Linux, another format)."""
    if cpuinfo is None:
        from mlsafety.hardware import cpuinfo as read

        cpuinfo = read()
    if re.search(r"^vendor_id\s*:", cpuinfo, re.MULTILINE):
        return "amd64"
    if re.search(r"^CPU implementer\s*:", cpuinfo, re.MULTILINE):
        return "arm64"
    return None


def emulator(proc: str = "/proc") -> str | None:
    """ "QEMU" when this process runs under QEMU's user-mode emulation, else None.
    QEMU shows the code it runs its own /proc/cpuinfo and /proc/self/exe, but the
    executable of another process (the container's init, the parent) is QEMU."""
    for pid in ("1", str(os.getppid())):
        try:
            target = os.readlink(f"{proc}/{pid}/exe")
        except OSError:
            continue
        if os.path.basename(target).startswith("qemu-"):
            return "QEMU"
    return None


def _check_architecture(
    report: Report, cpuinfo: str | None = None, emulated: str | None = None
) -> None:
    machine = platform.machine()
    userland = ARCHITECTURES.get(machine.lower(), machine)
    processor = processor_architecture(cpuinfo)
    emulated = emulated if emulated is not None else emulator()
    line = f"{userland} (Python runs as {machine})"
    if emulated:  # its /proc/cpuinfo is QEMU's, not the processor's
        line += f", under {emulated}"
        processor = None
    elif processor:
        line += f", {processor} processor"
    stamp = os.path.join(os.environ.get("MLSAFETY_HOME", "/opt/mlsafety"), IMAGE_ARCH_FILE)
    if os.environ.get("MLSAFETY_IMAGE") and os.path.isfile(stamp):
        with open(stamp) as f:
            line += f", image built for {f.read().strip()}"
    report.add("architecture", line)
    if emulated or (processor and processor != userland):
        # QEMU hides the processor; otherwise /proc/cpuinfo names it
        where = f"({emulated}) on another processor" if emulated else f"on an {processor} processor"
        build = (
            "the image built for this machine's processor" if emulated else f"the {processor} build"
        )
        report.warnings.append(
            f"this is {userland} code running under emulation {where}: every lab runs several "
            f"times slower and some torch kernels fail; use {build} (the published CPU image has "
            f"amd64 and arm64: `docker compose pull`, or `docker compose build` on this machine)"
        )


def diagnose(profile_name: str | None = None, deep: bool = False, port: int = 8888) -> Report:
    report = Report()
    _check_architecture(report)
    _check_versions(report)
    profile = _check_device(report, profile_name)
    _check_disk(report)
    _check_assets(report, profile, deep)
    _check_port(report, port)
    report.add(
        "user", f"uid {os.getuid()} gid {os.getgid()}" + (" (root)" if not os.getuid() else "")
    )
    return report


def run_doctor(profile_name: str | None = None, deep: bool = False, port: int = 8888) -> int:
    report = diagnose(profile_name, deep, port)
    width = max(len(k) for k, _ in report.lines)
    print("mlsafety doctor")
    for what, value in report.lines:
        print(f"  {what:<{width}}  {value}")
    for warning in report.warnings:
        print(f"warning: {warning}")
    if report.problems:
        print(f"{len(report.problems)} problem(s):")
        for problem in report.problems:
            print(f"  - {problem}")
        return 1
    print("all good: the labs can run at this profile")
    return 0
