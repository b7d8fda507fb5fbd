"""Device selection and budget profiles.

The device is CUDA, then Apple MPS, then the CPU; ``MLSAFETY_DEVICE`` overrides
(``cpu``, ``cuda``, ``cuda:1``, ``mps``). The profile follows the device (``gpu``
on CUDA, ``cpu`` otherwise); ``MLSAFETY_PROFILE`` overrides (``smoke``, ``cpu``,
``gpu``). Notebooks read every size from the profile, so one notebook runs on a
laptop, a 2-core Codespace and a GPU box.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

from mlsafety import SetupError

DEVICE_ENV = "MLSAFETY_DEVICE"
PROFILE_ENV = "MLSAFETY_PROFILE"
GPU_IMAGE_ENV = "MLSAFETY_GPU_IMAGE"  # set by the CUDA image, which expects a GPU
THREADS_ENV = "MLSAFETY_THREADS"


class NoGPUWarning(UserWarning):
    """The CUDA image started without a GPU: the labs run on the CPU."""


@dataclass(frozen=True)
class Profile:
    """Named sizes for one hardware budget. Every lab reads its sizes here."""

    name: str
    dataset: str  # "digits" (offline, smoke), "mnist" or "cifar10"
    train_examples: int  # training set size used by recipes and notebooks
    eval_examples: int  # held-out examples for accuracy and attack curves
    batch_size: int
    epochs: int  # standard training
    adv_epochs: int  # adversarial training (PGD in the loop)
    adv_train_steps: int  # PGD steps inside adversarial training
    checkpoint_examples: int  # training set of the standard, mixup and trojaned checkpoints
    checkpoint_epochs: int  # their epochs (the adversarial one: train_examples, adv_epochs)
    attack_examples: int  # examples attacked in experiments
    attack_steps: int  # PGD steps in evaluations
    eps_linf: float
    eps_l2: float
    budget_seconds: int  # what one notebook may take at this profile

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        return (
            f"profile={self.name} dataset={self.dataset} train={self.train_examples} "
            f"eval={self.eval_examples} epochs={self.epochs} batch={self.batch_size} "
            f"attack_steps={self.attack_steps}"
        )


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        dataset="digits",
        train_examples=1200,
        eval_examples=300,
        batch_size=64,
        epochs=4,
        adv_epochs=3,
        adv_train_steps=3,
        checkpoint_examples=1200,
        checkpoint_epochs=4,
        attack_examples=64,
        attack_steps=5,
        eps_linf=0.2,
        eps_l2=2.0,
        budget_seconds=60,
    ),
    "cpu": Profile(
        name="cpu",
        dataset="mnist",
        train_examples=12000,
        eval_examples=1000,
        batch_size=128,
        epochs=2,
        adv_epochs=4,
        adv_train_steps=5,
        checkpoint_examples=60000,
        checkpoint_epochs=3,
        attack_examples=500,
        attack_steps=10,
        eps_linf=0.3,
        eps_l2=2.0,
        budget_seconds=300,
    ),
    "gpu": Profile(
        name="gpu",
        dataset="cifar10",
        train_examples=50000,
        eval_examples=2000,
        batch_size=256,
        epochs=10,
        adv_epochs=8,
        adv_train_steps=7,
        checkpoint_examples=50000,
        checkpoint_epochs=10,
        attack_examples=1000,
        attack_steps=20,
        eps_linf=8 / 255,
        eps_l2=0.5,
        budget_seconds=120,
    ),
}


def pick_device(preferred: str | None = None):
    """The torch device to use: ``preferred``, else ``$MLSAFETY_DEVICE``, else
    CUDA, then Apple MPS, then the CPU. Asking for an absent device is an error."""
    import torch

    wanted = preferred or os.environ.get(DEVICE_ENV, "").strip()
    if wanted:
        try:
            device = torch.device(wanted)
        except RuntimeError as err:
            raise SetupError(f"{DEVICE_ENV}={wanted!r} is not a device name ({err})") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise SetupError(
                f"{DEVICE_ENV}={wanted!r} asks for CUDA but torch sees no GPU; "
                f"unset it to use the CPU (check the driver with `nvidia-smi`)"
            )
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise SetupError(f"{DEVICE_ENV}={wanted!r} asks for Apple MPS, which is not available")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    if os.environ.get(GPU_IMAGE_ENV) == "1":
        _warn_no_gpu(torch)
    return torch.device("cpu")


@cache
def _warn_no_gpu(torch) -> None:
    # once per process: the CUDA image works without a GPU, only slower
    import warnings

    warnings.warn(
        f"mlsafety: no GPU is visible in this CUDA image (torch {torch.__version__}, "
        f"CUDA {torch.version.cuda}); running on the CPU. Start it with --gpus all "
        f"(or `docker compose --profile gpu up lab-gpu`) to use the GPU.",
        NoGPUWarning,
        stacklevel=3,
    )


def pick_profile(name: str | None = None, device=None) -> Profile:
    """The budget profile: ``name``, else ``$MLSAFETY_PROFILE``, else from the
    device (``gpu`` on CUDA, ``cpu`` on anything else)."""
    wanted = (name or os.environ.get(PROFILE_ENV, "")).strip().lower()
    if wanted:
        if wanted not in PROFILES:
            raise SetupError(f"unknown profile {wanted!r}; choose one of: {', '.join(PROFILES)}")
        return PROFILES[wanted]
    device = device if device is not None else pick_device()
    return PROFILES["gpu" if getattr(device, "type", str(device)) == "cuda" else "cpu"]


@cache
def _chosen() -> tuple:
    device = pick_device()
    return device, pick_profile(device=device)


def cpuinfo() -> str:
    """The kernel's /proc/cpuinfo ("" where there is none: macOS, Windows)."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_model() -> str:
    """The processor's model name (/proc/cpuinfo), else what platform knows."""
    import platform

    for line in cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity, as a container's
    cpuset limits it), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS has no affinity
        return max(1, os.cpu_count() or 1)


def torch_threads() -> int:
    """How many threads torch computes with in a notebook: ``$MLSAFETY_THREADS``,
    else one core fewer than this process may use (at least 1).

    A student's machine always has neighbours (editor, language server,
    browser, the Jupyter server). torch's thread pool waits at every operation
    for its slowest thread, so one thread descheduled by a busy neighbour stalls
    them all: on 2 cores, week 3's notebook ran 4 to 5 times slower with 2
    threads beside one busy process, and no slower with 1. Leaving a core free
    costs little when the machine is quiet (docs/benchmarks.md measures both)."""
    wanted = os.environ.get(THREADS_ENV, "").strip()
    if wanted:
        if not wanted.isdigit() or int(wanted) < 1:
            raise SetupError(f"{THREADS_ENV}={wanted!r} is not a number of threads (1 or more)")
        return int(wanted)
    return max(1, usable_cores() - 1)


def setup(seed: int = 0, verbose: bool = True):
    """Pick device and profile once, set torch's threads (:func:`torch_threads`),
    seed everything, and (in notebooks) say what was chosen. Returns
    ``(device, profile)``."""
    import torch

    from mlsafety.seeding import seed_everything

    device, profile = _chosen()
    threads = torch_threads()
    torch.set_num_threads(threads)
    seed_everything(seed)
    if verbose:
        print(f"mlsafety: device={device} {profile.describe()} threads={threads} seed={seed}")
    return device, profile
