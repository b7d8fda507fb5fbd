"""Where things live: the repository, the data root and the checkpoint cache."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "MLSAFETY_DATA"


def repo_root() -> Path:
    """The repository this toolkit was installed from (editable install)."""
    return Path(__file__).resolve().parents[2]


def data_root() -> Path:
    """Datasets and checkpoints: $MLSAFETY_DATA, else the git-ignored data/ folder."""
    configured = os.environ.get(DATA_ENV)
    return Path(configured).expanduser() if configured else repo_root() / "data"


def cache_root() -> Path:
    """Built checkpoints. Inside the data root unless that is read-only (a baked
    image), in which case a user-writable cache takes the new builds."""
    root = data_root() / "checkpoints"
    if root.exists() and not os.access(root, os.W_OK):
        return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mlsafety"
    return root
