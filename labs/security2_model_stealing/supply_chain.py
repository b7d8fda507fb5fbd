"""Security lab 2: the model supply chain.

A checkpoint written by ``torch.save`` is a zip file whose ``data.pkl`` is a
pickle, and unpickling runs code: every GLOBAL (or STACK_GLOBAL, or INST)
opcode imports a callable, and REDUCE calls it. Whoever wrote the file chooses
those callables. The functions here look at a pickle *without running it*,
with ``pickletools``, decide whether its imports are on an allowlist, and load
a checkpoint only after its hash and its imports have been checked.

Conventions for every function here:

- A "pickle file" is either a raw pickle stream (protocols 0 to 5; several
  pickles may follow one another in one file) or a ``torch.save`` zip whose
  pickles are its members named ``*.pkl``.
- A global is a pair ``(module, name)``, e.g. ``("collections", "OrderedDict")``.
- Nothing here ever unpickles a file it has not verified: reading opcodes
  never executes them.
"""

# The imports below are for the functions you will write.
# ruff: noqa: F401

from __future__ import annotations

import hashlib
import io
import pickletools
import zipfile
from pathlib import Path
from typing import NamedTuple

import torch

# What a state dict of tensors needs, and no more: every entry is also on
# torch's own weights_only allowlist.
SAFE_GLOBALS = frozenset(
    [("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2")]
    + [("torch._utils", "_rebuild_parameter")]
    + [
        ("torch", f"{kind}Storage")
        for kind in ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char")
        + ("Byte", "Bool")
    ]
)

_STRINGS = {
    "STRING",
    "BINSTRING",
    "SHORT_BINSTRING",
    "UNICODE",
    "BINUNICODE",
    "SHORT_BINUNICODE",
    "BINUNICODE8",
}
_GETS = {"GET", "BINGET", "LONG_BINGET"}
_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}
_QUIET = {"PROTO", "FRAME", "MEMOIZE", "STOP"} | _PUTS


class UnsafeCheckpoint(ValueError):
    """A checkpoint imports something outside the allowlist; it was not loaded."""


class Scan(NamedTuple):
    """The verdict of :func:`scan_checkpoint`."""

    safe: bool
    globals: list[tuple[str, str]]
    offending: list[tuple[str, str]]


def pickle_globals(path) -> list[tuple[str, str]]:
    """Every global a pickle file would import, read with ``pickletools``
    without executing anything.

    GLOBAL and INST carry ``"module name"`` in their argument; STACK_GLOBAL
    takes the module and the name from the two strings pushed before it
    (directly, or fetched from the memo with GET / BINGET / LONG_BINGET after
    a PUT or MEMOIZE). A STACK_GLOBAL whose operands are not two known
    strings is reported as ``("?", "?")``. Every pickle of the file counts:
    each ``*.pkl`` member of a ``torch.save`` zip, and each of several pickles
    written one after the other; bytes after the last pickle that do not form
    a pickle are data and are ignored.

    Args:
        path: a file (``str`` or ``Path``).

    Returns:
        The globals ``(module, name)``, each once, in the order they first
        appear (member order within a zip).

    Raises:
        FileNotFoundError: if ``path`` is not a file.
        ValueError: if the file is a zip without a ``*.pkl`` member, or does
            not start with a pickle.
    """
    raise NotImplementedError(
        "TODO: implement pickle_globals as the docstring describes, then run `make test-security2`"
    )


def scan_checkpoint(path, allowed=SAFE_GLOBALS) -> Scan:
    """Allowlist verdict on a pickle file, without loading it.

    Args:
        path: a pickle file or ``torch.save`` zip, as in :func:`pickle_globals`.
        allowed: the ``(module, name)`` pairs a checkpoint may import
            (default :data:`SAFE_GLOBALS`, what a state dict of tensors needs).

    Returns:
        ``Scan(safe, globals, offending)``: ``globals`` is
        ``pickle_globals(path)``, ``offending`` those of them not in
        ``allowed`` (same order) and ``safe`` is True exactly when
        ``offending`` is empty.

    Raises:
        FileNotFoundError: if ``path`` is not a file.
        ValueError: if the file is not a pickle or a checkpoint zip.
    """
    raise NotImplementedError(
        "TODO: implement scan_checkpoint as the docstring describes, then run `make test-security2`"
    )


def load_verified(path, sha256: str, map_location="cpu"):
    """Load a checkpoint only if it is the file you pinned and imports nothing
    unexpected.

    In this order, and before anything is unpickled:

    1. read the file's bytes and compare their SHA-256 with ``sha256``;
    2. scan those bytes' globals against :data:`SAFE_GLOBALS`;
    3. only then ``torch.load`` the *same bytes* (not the path again, which
       could have changed meanwhile) with ``weights_only=True``.

    A malformed ``sha256`` is refused before the file is even read.

    Args:
        path: the checkpoint file.
        sha256: its expected SHA-256, 64 hex digits (case does not matter).
        map_location: passed to ``torch.load``.

    Returns:
        What ``torch.load`` returns (e.g. a state dict).

    Raises:
        FileNotFoundError: if ``path`` is not a file.
        ValueError: if ``sha256`` is not 64 hex digits, the file's hash
            differs from it, or the file is not a pickle or a checkpoint zip.
        UnsafeCheckpoint: if the file's hash matches but it imports a global
            outside :data:`SAFE_GLOBALS`.
    """
    raise NotImplementedError(
        "TODO: implement load_verified as the docstring describes, then run `make test-security2`"
    )


def make_demo_payload(path, marker) -> Path:
    """Write a checkpoint that looks ordinary but whose unpickling creates a
    file: the harmless stand-in for a malicious model file.

    The file is a ``torch.save`` zip of ``{"state_dict": ..., "note": ...}``
    where ``note`` pickles as a call to ``open(marker, "a")``: unpickling it
    (``torch.load(..., weights_only=False)`` or ``pickle.load``) creates the
    empty file ``marker`` (relative to the unpickling process's working
    folder if ``marker`` is relative) and does nothing else; an existing
    file is left as it was. Writing the payload runs nothing: ``marker`` is
    not created by this function.

    Only ever unpickle it in a subprocess whose working folder is a
    temporary folder, to watch the marker appear.

    Args:
        path: where to write the checkpoint.
        marker: the file that unpickling would create.

    Returns:
        ``Path(path)``. Its globals include where Python keeps ``open``
        (``(open.__module__, "open")``: ``("io", "open")`` up to Python 3.11,
        ``("_io", "open")`` from 3.12) next to a state dict's ordinary ones.
    """
    raise NotImplementedError(
        "TODO: implement make_demo_payload as the docstring describes, then run `make test-security2`"
    )
