"""Checkpoints: written atomically with their sha256, loaded only after the
hash is checked and always with ``torch.load(weights_only=True)``."""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from pathlib import Path

import torch
from torch import nn

from mlsafety import SetupError
from mlsafety.data import sha256_file


def save_checkpoint(model: nn.Module, path: Path, meta: dict | None = None) -> str:
    """Save ``model`` (its class name, constructor config and state dict) to
    ``path`` and a ``<path>.json`` record holding the sha256 and ``meta``.
    Returns the sha256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "class": type(model).__name__,
        "config": dict(getattr(model, "config", {})),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        digest = sha256_file(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    record = {"file": path.name, "sha256": digest, **(meta or {})}
    _atomic_write_text(record_path(path), json.dumps(record, indent=2, sort_keys=True) + "\n")
    return digest


def record_path(path: Path) -> Path:
    return Path(path).with_suffix(Path(path).suffix + ".json")


def read_record(path: Path) -> dict | None:
    rec = record_path(path)
    return json.loads(rec.read_text()) if rec.exists() else None


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def load_checkpoint(path: Path, sha256: str | None = None, device="cpu") -> nn.Module:
    """Load a model saved by :func:`save_checkpoint`, in eval mode.

    The file's sha256 must equal ``sha256`` (default: the hash in its record);
    a mismatch raises before anything is unpickled.
    """
    from mlsafety.models import MODELS

    path = Path(path)
    if not path.exists():
        raise SetupError(f"checkpoint {path.name} not found at {path}; build it with `make assets`")
    expected = sha256 or (read_record(path) or {}).get("sha256")
    if expected is None:
        raise SetupError(f"checkpoint {path} has no recorded sha256; rebuild it with `make assets`")
    actual = sha256_file(path)
    if actual != expected:
        raise SetupError(
            f"checkpoint {path} is corrupted (sha256 {actual[:12]}... != expected "
            f"{expected[:12]}...); delete it and run `make assets`"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise SetupError(
            f"checkpoint {path} holds objects other than tensors and was refused unopened "
            f"({str(err).splitlines()[0][:120]}); do not load it, rebuild it with `make assets`"
        ) from None
    model = MODELS[payload["class"]](**payload["config"])
    model.load_state_dict(payload["state_dict"])
    return model.to(device).eval()
