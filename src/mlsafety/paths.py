"""Where things live: the repository, the data root and the checkpoint cache."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

DATA_ENV = "MLSAFETY_DATA"
REPO_ENV = "MLSAFETY_REPO"


def repo_root() -> Path:
    """The repository whose labs are graded: $MLSAFETY_REPO (the images set it to
    the mounted work folder), else the checkout the current directory is in,
    else the one this toolkit was installed from.

    The current directory matters where the toolkit is installed from another
    copy: in the images it comes from a copy baked at build time, and a
    terminal opened with `docker compose exec` must grade the mounted work
    folder, not that copy."""
    configured = os.environ.get(REPO_ENV, "").strip()
    if configured:
        return Path(configured).expanduser().resolve()
    try:
        here = Path.cwd().resolve()
    except OSError:  # the current directory was deleted
        here = Path(__file__).resolve()
    for folder in (here, *here.parents):
        if _is_checkout(folder):
            return folder
    return Path(__file__).resolve().parents[2]


def _is_checkout(folder: Path) -> bool:
    return (folder / "labs").is_dir() and (folder / "environments" / "assets.toml").is_file()


def data_root() -> Path:
    """Datasets and checkpoints: $MLSAFETY_DATA, else the git-ignored data/ folder."""
    configured = os.environ.get(DATA_ENV)
    return Path(configured).expanduser() if configured else repo_root() / "data"


def user_cache() -> Path:
    """A user-writable cache ($XDG_CACHE_HOME/mlsafety) for what cannot be
    written into a read-only data root (a baked image)."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mlsafety"


def writable(folder: Path) -> bool:
    """Whether ``folder`` can be written, or created under its nearest existing parent."""
    probe = Path(folder)
    while not probe.exists():
        probe = probe.parent
    return os.access(probe, os.W_OK)


def retire(folder: Path) -> None:
    """Move a stale folder aside in one step (readers never see half of it), then delete it."""
    aside = folder.with_name(f".{folder.name}-stale-{uuid.uuid4().hex[:8]}")
    folder.rename(aside)
    shutil.rmtree(aside, ignore_errors=True)
