"""Stand-ins for the datasets that have no offline copy, for rehearsals only.

Fashion-MNIST, CIFAR-10 and SVHN can only come from a real download. To time
the cpu and gpu profiles at full size without them, ``mlsafety standin``
writes files in their published formats (IDX gzip, the CIFAR-10 python
tarball, SVHN's ``.mat``) at their published sizes, derived deterministically
from scikit-learn's digits (shifted, turned, recoloured). They are labelled
inside: the gzip header's file name and the ``.mat`` header begin with
:data:`MARK`, the CIFAR-10 batches' labels say "stand-in", and a
``STANDIN.txt`` note sits beside them.

A stand-in is never the dataset. Its hashes are not the manifest's, so
``make data FROM=`` refuses it with one line saying what it is; only
``make data STANDIN=1`` installs it, under ``<data root>/standin/``, never
where the published dataset goes; and the loaders read it only when
``MLSAFETY_STANDIN=1`` is set and the published dataset is absent, saying
"stand-in" on stderr, as the checkpoints built from it are keyed apart.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import shutil
import tarfile
import tempfile
from pathlib import Path

from mlsafety import SetupError
from mlsafety.paths import data_root

ENV = "MLSAFETY_STANDIN"
FOLDER = "standin"
MARK = "MLSAFETY-STANDIN"
SEED = 2009
# examples per file, as published (SVHN: the test split, the only file the manifest lists)
SIZES = {
    "fashion-mnist": {"train": 60000, "t10k": 10000},
    "cifar10": {"data_batch": 50000, "test_batch": 10000},
    "svhn": {"test_32x32.mat": 26032},
}
STANDINS = tuple(SIZES)


def enabled() -> bool:
    """Whether this process rehearses with stand-ins: ``MLSAFETY_STANDIN=1``, nothing else."""
    return os.environ.get(ENV, "").strip() == "1"


def standin_root() -> Path:
    """Where installed stand-ins live: ``<data root>/standin``, apart from the real data."""
    return data_root() / FOLDER


def note_text(name: str, sizes: dict[str, int]) -> str:
    from mlsafety.assets import dataset

    counts = ", ".join(f"{k}: {v}" for k, v in sizes.items())
    return (
        f"{MARK}: a stand-in for {dataset(name).title}.\n"
        f"Written by `mlsafety standin` from scikit-learn's digits (shifted, turned, "
        f"recoloured) in the published file format; examples per file: {counts}. It is NOT the "
        f"published data: `make data` refuses it, and only a rehearsal reads it "
        f"(`make data STANDIN=1`, then {ENV}=1), saying 'stand-in' wherever it does.\n"
    )


def is_standin_file(path: Path) -> bool:
    """Whether ``path`` was written by :func:`write_standin` (its first bytes carry :data:`MARK`)."""
    try:
        with open(path, "rb") as f:
            return MARK.encode() in f.read(512)
    except OSError:
        return False


# --------------------------------------------------------------------------- #
# Writing the files.
# --------------------------------------------------------------------------- #


def _variants(size: int, n: int, seed: int, chunk: int = 5000):
    """``n`` grey uint8 images ``(n, size, size)`` and labels 0-9: the digits,
    each shifted by up to 3 pixels, drawn with a seeded generator."""
    import numpy as np

    from mlsafety.data import _digits_images

    base, labels = _digits_images(size, 4)
    rng = np.random.default_rng(seed)
    pick = rng.integers(len(base), size=n)
    shift = rng.integers(0, 7, size=(n, 2))
    padded = np.pad(base, ((0, 0), (3, 3), (3, 3)))
    out = np.empty((n, size, size), dtype=np.uint8)
    grid = np.arange(size)
    for lo in range(0, n, chunk):
        rows = slice(lo, min(lo + chunk, n))
        r = shift[rows, 0, None] + grid
        c = shift[rows, 1, None] + grid
        out[rows] = padded[pick[rows, None, None], r[:, :, None], c[:, None, :]]
    return out, labels[pick]


def _coloured(size: int, n: int, seed: int, chunk: int = 5000):
    """``n`` colour uint8 images ``(n, 3, size, size)``: shifted digits drawn
    in a random colour on a random background."""
    import numpy as np

    grey, labels = _variants(size, n, seed)
    rng = np.random.default_rng(seed + 1)
    fg, bg = rng.integers(0, 256, size=(2, n, 3, 1, 1)).astype(np.float32)
    out = np.empty((n, 3, size, size), dtype=np.uint8)
    for lo in range(0, n, chunk):
        rows = slice(lo, min(lo + chunk, n))
        alpha = grey[rows, None].astype(np.float32) / 255
        out[rows] = (bg[rows] * (1 - alpha) + fg[rows] * alpha).round().astype(np.uint8)
    return out, labels


def _gzip_to(path: Path, data: bytes) -> None:
    # the gzip header's file name carries the label, readable without unpacking
    with open(path, "wb") as f, gzip.GzipFile(f"{MARK} {path.stem}", "wb", 6, f, mtime=0) as gz:
        gz.write(data)


def _write_fashion(folder: Path, sizes: dict[str, int]) -> None:
    import numpy as np

    from mlsafety.data import _idx_bytes

    for split, n in sizes.items():
        images, labels = _variants(28, n, SEED + len(split))
        images = np.ascontiguousarray(images.transpose(0, 2, 1)[:, ::-1])  # turned: not digits
        _gzip_to(folder / f"{split}-images-idx3-ubyte.gz", _idx_bytes(images))
        _gzip_to(folder / f"{split}-labels-idx1-ubyte.gz", _idx_bytes(labels))


def _write_cifar(folder: Path, sizes: dict[str, int]) -> None:
    import numpy as np

    from mlsafety.data import CLASSES

    n_train, n_test = sizes["data_batch"], sizes["test_batch"]
    images, labels = _coloured(32, n_train + n_test, SEED)
    flat = images.reshape(len(images), -1)  # N x 3072, channel-major, as published
    train = np.array_split(np.arange(n_train), 5)
    batches = {f"data_batch_{i + 1}": rows for i, rows in enumerate(train)}
    batches["test_batch"] = np.arange(n_train, n_train + n_test)
    members = {}
    for name, rows in batches.items():
        entry = {
            "batch_label": f"stand-in {name} (not CIFAR-10)",
            "labels": labels[rows].tolist(),
            "data": flat[rows],
        }
        members[name] = pickle.dumps(entry, protocol=4)
    meta = {"label_names": CLASSES["cifar10"], "num_cases_per_batch": len(train[0])}
    members["batches.meta"] = pickle.dumps(meta, protocol=4)
    members["STANDIN.txt"] = note_text("cifar10", sizes).encode()
    path = folder / "cifar-10-python.tar.gz"
    with (
        open(path, "wb") as f,
        gzip.GzipFile(f"{MARK} cifar-10-python.tar", "wb", 6, f, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name, body in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size, info.mode = len(body), 0o644
            tar.addfile(info, io.BytesIO(body))


def _write_svhn(folder: Path, sizes: dict[str, int]) -> None:
    import numpy as np
    import scipy.io

    ((name, n),) = sizes.items()
    images, labels = _coloured(32, n, SEED + 7)
    x = np.ascontiguousarray(images.transpose(2, 3, 1, 0))  # (32, 32, 3, N), as published
    y = np.where(labels == 0, 10, labels).astype(np.uint8)[:, None]  # SVHN calls 0 "10"
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"X": x, "y": y})
    body = bytearray(buffer.getvalue())
    # MAT 5 files begin with 116 bytes of free text: the label, and no date
    body[:116] = f"MATLAB 5.0 MAT-file, {MARK}: not SVHN".encode().ljust(116)
    (folder / name).write_bytes(bytes(body))


WRITERS = {"fashion-mnist": _write_fashion, "cifar10": _write_cifar, "svhn": _write_svhn}


def write_standin(name: str, into: Path, examples: int | None = None) -> Path:
    """Write the stand-in of dataset ``name`` into ``into/<name>/``: the files
    the manifest lists, in their published format, with the published number
    of examples (``examples`` caps each file's, for tests), and a
    ``STANDIN.txt`` note. Deterministic: the same bytes every time. Returns
    the folder."""
    from mlsafety.assets import STANDIN_NOTE

    if name not in WRITERS:
        raise SetupError(
            f"no stand-in for {name!r}: only {', '.join(STANDINS)} have one "
            f"(the others have an offline copy)"
        )
    if examples is not None and examples < 10:
        raise SetupError(f"a stand-in needs at least 10 examples per file, not {examples}")
    sizes = {k: min(v, examples or v) for k, v in SIZES[name].items()}
    folder = Path(into) / name
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{name}-") as tmp:
        staging = Path(tmp) / name
        staging.mkdir()
        WRITERS[name](staging, sizes)
        (staging / STANDIN_NOTE).write_text(note_text(name, sizes))
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)  # complete or absent, like everything `make data` installs
    return folder


# --------------------------------------------------------------------------- #
# Installing and reading them (a rehearsal only).
# --------------------------------------------------------------------------- #


def install_standin(name: str, source: Path | None = None) -> tuple[Path, str]:
    """Install the stand-in of ``name`` under :func:`standin_root`, from the
    files :func:`write_standin` put under ``source`` (found like ``make data
    FROM=``'s), or written on the spot. A file that is not labelled a
    stand-in is refused. Returns the folder and ``"present"``, ``"copied"``
    or ``"written"``."""
    from mlsafety.assets import STANDIN_NOTE, dataset, install, locate_files

    entry = dataset(name)
    if name not in WRITERS:
        raise SetupError(f"no stand-in for {name!r}; `make data` without STANDIN fetches it")
    root = standin_root()
    if standin_state(name, deep=True) == "verified" and source is None:
        return root / entry.folder, "present"
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=f".write-{name}-") as tmp:
        if source is None:
            found = {p.name: p for p in write_standin(name, Path(tmp)).iterdir()}
        else:
            found = locate_files(entry, Path(source))
        files = [found[f.name] for f in entry.files]
        written = files[0].parent / STANDIN_NOTE
        text = written.read_text() if written.is_file() else note_text(name, SIZES[name])
        for path in files:
            if not is_standin_file(path):
                raise SetupError(
                    f"{path} is not a stand-in written by `mlsafety standin`; a stand-in is "
                    f"installed only from one (the published file: `make data` without STANDIN)"
                )
        folder = install(entry, files, root, standin=text)
    return folder, "written" if source is None else "copied"


def standin_state(name: str, deep: bool = False) -> str:
    """``"verified"``, ``"missing"`` or ``"corrupt: <why>"`` for the installed stand-in."""
    from mlsafety.assets import dataset, read_stamp, stamped_files_state

    folder = standin_root() / dataset(name).folder
    if not folder.exists():
        return "missing"
    stamp = read_stamp(folder)
    if not stamp or not stamp.get("standin"):
        return "corrupt: not installed by `make data STANDIN=1`"
    return stamped_files_state(folder, stamp, deep)


def require_standin(name: str) -> Path:
    """The root under which the verified stand-in of ``name`` lives, after one
    line on stderr saying that a stand-in is read; or one line naming the
    command that installs it."""
    from mlsafety.assets import dataset
    from mlsafety.data import note

    entry = dataset(name)
    state = standin_state(name)
    if state != "verified":
        raise SetupError(
            f"dataset {name!r} is not installed and its stand-in is {state} at "
            f"{standin_root() / entry.folder} ({ENV}=1); write it with "
            f"`make data PROFILE={entry.profiles[0]} STANDIN=1`"
        )
    note(
        f"{name}: reading a STAND-IN ({ENV}=1) from {standin_root() / entry.folder}: "
        f"generated in the published format, not the published data; "
        f"every number measured on it is a stand-in's"
    )
    return standin_root()


def in_use(name: str) -> bool:
    """Whether loading ``name`` reads its stand-in: only with ``MLSAFETY_STANDIN=1``,
    only when the published dataset is not installed."""
    if not enabled() or name not in STANDINS:
        return False
    from mlsafety.assets import dataset, dataset_state

    return dataset_state(dataset(name)) != "verified"


def fingerprint_blob(name: str) -> bytes:
    """What identifies the installed stand-in's contents, for cache keys: never
    the published dataset's, so nothing built from it passes for built from that."""
    from mlsafety.assets import dataset, read_stamp

    stamp = read_stamp(standin_root() / dataset(name).folder) or {}
    return f"stand-in {sorted((stamp.get('archives') or {}).items())}".encode()


def load_torchvision(name: str, train: bool):
    """torchvision's dataset object over the installed stand-in of ``name``.
    torchvision's own md5 checks are the published files'; the stand-in's
    files were checked against its stamp by :func:`require_standin` instead."""
    from torchvision import datasets

    root = require_standin(name)

    def checked(cls):
        overrides = {"_check_integrity": lambda self: True}
        if hasattr(cls, "meta"):  # CIFAR-10's batches.meta is md5-checked on its own
            overrides["meta"] = {**cls.meta, "md5": None}
        return type(f"StandIn{cls.__name__}", (cls,), overrides)

    if name == "fashion-mnist":
        return datasets.FashionMNIST(root, train=train, download=False)
    if name == "cifar10":
        return checked(datasets.CIFAR10)(root, train=train, download=False)
    if train:
        raise SetupError("only the test split of SVHN is part of the labs (an OOD set)")
    return checked(datasets.SVHN)(root / "svhn", split="test", download=False)
