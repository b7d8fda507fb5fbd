"""Checkpoints: written atomically with their size and sha256, loaded only
after the hash is checked and always with ``torch.load(weights_only=True)``,
which refuses anything but tensors and plain containers without running it."""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from pathlib import Path

import torch
from torch import nn

from mlsafety import SetupError
from mlsafety.data import file_problem, load_error, sha256_file, sweep_leftovers


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
    sweep_leftovers(path.parent, f".{path.name}.")  # what a killed build left behind
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        digest = sha256_file(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    size = path.stat().st_size
    record = {"file": path.name, "sha256": digest, "size": size, **(meta or {})}
    _atomic_write_text(record_path(path), json.dumps(record, indent=2, sort_keys=True) + "\n")
    return digest


def record_path(path: Path) -> Path:
    return Path(path).with_suffix(Path(path).suffix + ".json")


def read_record(path: Path) -> dict | None:
    """The record written beside a checkpoint, or None (absent or unreadable)."""
    try:
        record = json.loads(record_path(path).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "sha256" in record else None


def damage(path: Path) -> str | None:
    """Why the file at ``path`` is not the one its record describes (missing,
    truncated, altered, no record), or None. The size goes first: cheap."""
    return file_problem(path, read_record(path))


def safe_load_problem(path: Path) -> str | None:
    """Why ``torch.load(path, weights_only=True)`` refuses the file, or None.
    That loader never imports or calls what the pickle names, so a file that
    would run code is refused without running it."""
    try:
        _safe_load(path)
    except SetupError as err:
        return str(err)
    return None


def _safe_load(path: Path) -> dict:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise SetupError(
            f"holds objects other than tensors and was refused unopened ({load_error(err)})"
        ) from None
    except Exception as err:  # noqa: BLE001 - a truncated zip, a bad header: unreadable
        raise SetupError(f"cannot be read ({load_error(err)})") from None
    if not isinstance(payload, dict) or not {"class", "config", "state_dict"} <= set(payload):
        raise SetupError("is not a checkpoint written by save_checkpoint")
    return payload


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def load_checkpoint(
    path: Path, sha256: str | None = None, device="cpu", fix: str = "make assets"
) -> nn.Module:
    """Load a model saved by :func:`save_checkpoint`, in eval mode.

    The file's sha256 must equal ``sha256`` (default: the hash in its record);
    a mismatch raises before anything is unpickled. ``fix`` is the command the
    error messages name.
    """
    from mlsafety.models import MODELS

    path = Path(path)
    if not path.exists():
        raise SetupError(f"checkpoint {path.name} not found at {path}; build it with `{fix}`")
    expected = sha256 or (read_record(path) or {}).get("sha256")
    if expected is None:
        raise SetupError(f"checkpoint {path} has no recorded sha256; `{fix}` rebuilds it")
    actual = sha256_file(path)
    if actual != expected:
        raise SetupError(
            f"checkpoint {path} is corrupted (sha256 {actual[:12]}... != expected "
            f"{expected[:12]}...); `{fix}` rebuilds it"
        )
    try:
        payload = _safe_load(path)
    except SetupError as err:
        raise SetupError(f"checkpoint {path} {err}; do not load it, `{fix}` rebuilds it") from None
    model = MODELS[payload["class"]](**payload["config"])
    model.load_state_dict(payload["state_dict"])
    return model.to(device).eval()
