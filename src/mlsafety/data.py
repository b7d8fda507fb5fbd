"""Datasets for the labs, read through torchvision's own dataset classes.

Real data (MNIST, Fashion-MNIST, CIFAR-10) lives under the data root in the
layouts torchvision expects. The offline ``digits`` data of the smoke profile is
scikit-learn's 8x8 digits, rendered once into the very same on-disk formats
(MNIST idx files and CIFAR-10 python pickles) so the real loaders read it.
Nothing downloads at lab time: a missing dataset raises one line naming the
command that fetches it.

Everything derived here is checked before use against what was recorded when
it was written (the digits' manifest of sha256s, each tensor cache's size and
sha256), and written again from its source when damaged: a truncated or
altered cache costs a rebuild and one line on stderr, never a failed lab.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pickle
import re
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path

from mlsafety import SetupError
from mlsafety.paths import data_root, retire, user_cache, writable

SMOKE_FOLDER = "smoke"
SMOKE_MANIFEST = "MANIFEST.json"
SMOKE_TEST_EXAMPLES = 300  # digits held out as the smoke test split (1797 = 1497 + 300)
SMOKE_SEED = 1797
SMOKE_VERSION = 2  # bump when the rendering or the split changes
CLASSES = {
    "digits": [str(i) for i in range(10)],
    "digits-cifar": [str(i) for i in range(10)],
    "mnist": [str(i) for i in range(10)],
    "fashion-mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
    "cifar10": [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ],
}
CLASSES["svhn"] = [str(i) for i in range(10)]
DATASETS = tuple(CLASSES)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_record(path: Path) -> dict:
    """What a written file is checked against later: its size and sha256."""
    return {"size": Path(path).stat().st_size, "sha256": sha256_file(path)}


def file_problem(path: Path, record: dict | None) -> str | None:
    """Why ``path`` is not the file ``record`` describes (missing, truncated,
    altered), or None when it is. The size is compared first, so a truncated
    file costs no hashing."""
    path = Path(path)
    if record is None:
        return "no record of what was written"
    if not path.is_file():
        return "missing"
    size = path.stat().st_size
    if "size" in record and size != record["size"]:
        return f"{size} bytes where {record['size']} were written"
    if sha256_file(path) != record["sha256"]:
        return "its sha256 differs from the one recorded when it was written"
    return None


def load_error(err: Exception) -> str:
    """A loader's error in a few words: what a refused pickle names (``it
    refers to io.open``), else the first sentence, without terminal colours."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
    named = re.search(r"Unsupported global: GLOBAL (\S+)", text) or re.search(
        r"refers to (\S+)", text
    )
    if named:
        return f"it refers to {named.group(1)}"
    first = text.strip().split(". ")[0].splitlines()[0] if text.strip() else ""
    return first[:120] or type(err).__name__


_NOTED: set[str] = set()


def note(message: str) -> None:
    """One line on stderr about something repaired on the way (once per process)."""
    if message not in _NOTED:
        _NOTED.add(message)
        print(f"mlsafety: {message}", file=sys.stderr, flush=True)


def sweep_leftovers(folder: Path, prefix: str = ".", age: float = 3600.0) -> None:
    """Remove temporary files a killed writer left in ``folder`` (those older
    than ``age`` seconds: younger ones may belong to a writer still running)."""
    if not Path(folder).is_dir():
        return
    for path in Path(folder).glob(f"{prefix}*"):
        try:
            if time.time() - path.stat().st_mtime <= age:
                continue
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:
            pass  # not ours to remove (read-only root) or gone already


def _md5_file(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


# --------------------------------------------------------------------------- #
# Offline smoke data: scikit-learn digits in the MNIST and CIFAR-10 formats.
# --------------------------------------------------------------------------- #


def _digits_images(size: int, pad: int):
    """Digits as uint8 images ``(1797, size, size)``: 8x8 upsampled to
    ``size - 2*pad`` and padded, MNIST-style, plus labels."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    inner = F.interpolate(images, size=(size - 2 * pad,) * 2, mode="bilinear", align_corners=False)
    framed = F.pad(inner, (pad, pad, pad, pad))
    pixels = (framed.clamp(0, 1) * 255).round().to(torch.uint8).squeeze(1).numpy()
    labels = digits.target.astype(np.uint8)
    order = np.random.default_rng(SMOKE_SEED).permutation(len(labels))
    return pixels[order], labels[order]


def _idx_bytes(array) -> bytes:
    """IDX format as MNIST ships it: magic (0, 0, ubyte=0x08, ndim), big-endian
    dimensions, then the raw bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(">" + "I" * array.ndim, *array.shape)
    return header + array.tobytes()


def _write_idx(path: Path, array) -> None:
    path.write_bytes(_idx_bytes(array))


def _write_mnist_format(folder: Path, images, labels) -> None:
    raw = folder / "MNIST" / "raw"
    raw.mkdir(parents=True)
    n_test = SMOKE_TEST_EXAMPLES
    splits = {"train": slice(n_test, None), "t10k": slice(0, n_test)}
    for prefix, rows in splits.items():
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images[rows])
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels[rows])
        # torchvision's MNIST also keeps the .gz files it downloaded; mirror that.
        for kind in ("images-idx3", "labels-idx1"):
            plain = raw / f"{prefix}-{kind}-ubyte"
            with gzip.GzipFile(raw / f"{plain.name}.gz", "wb", mtime=0) as gz:
                gz.write(plain.read_bytes())


def _write_cifar_format(folder: Path, images, labels) -> None:
    import numpy as np

    base = folder / "cifar-10-batches-py"
    base.mkdir(parents=True)
    rgb = np.repeat(images[:, None], 3, axis=1).reshape(len(images), -1)  # N x 3072, channel-major
    n_test = SMOKE_TEST_EXAMPLES
    train_rows = np.array_split(np.arange(n_test, len(labels)), 5)
    batches = {f"data_batch_{i + 1}": rows for i, rows in enumerate(train_rows)}
    batches["test_batch"] = np.arange(n_test)
    for name, rows in batches.items():
        entry = {"batch_label": name, "labels": labels[rows].tolist(), "data": rgb[rows]}
        (base / name).write_bytes(pickle.dumps(entry, protocol=4))
    meta = {"label_names": CLASSES["digits-cifar"], "num_cases_per_batch": len(train_rows[0])}
    (base / "batches.meta").write_bytes(pickle.dumps(meta, protocol=4))


def smoke_root() -> Path:
    """Folder of the offline digits data: inside the data root, or a user cache
    when the data root is read-only and holds no intact baked copy."""
    baked = data_root() / SMOKE_FOLDER
    if writable(baked):
        return baked
    if (baked / SMOKE_MANIFEST).exists():
        problem = smoke_problem(baked)
        if problem is None:
            return baked
        note(
            f"the offline digits data in the read-only data root is damaged ({problem}); "
            f"using a copy written from scikit-learn's digits in the user cache "
            f"{user_cache() / SMOKE_FOLDER}"
        )
    return user_cache() / SMOKE_FOLDER


def write_smoke_data(root: Path | None = None) -> Path:
    """Render the digits into MNIST and CIFAR-10 formats under ``root`` (default
    :func:`smoke_root`), with a manifest of sha256 and md5 hashes. Written into
    a temporary folder and renamed into place, so a half-written copy is never
    seen. Returns the folder; an intact copy already there is kept, a damaged
    or outdated one is written again (one line on stderr says so)."""
    root = Path(root) if root is not None else smoke_root()
    if (root / SMOKE_MANIFEST).exists():
        problem = smoke_problem(root)
        if problem is None:
            return root
        if not writable(root.parent):
            raise SetupError(
                f"offline digits data is damaged at {root} ({problem}) and that folder is "
                f"read-only; unset MLSAFETY_DATA or point it at a writable folder and run "
                f"`make data PROFILE=smoke`"
            )
        if problem != "written by an older version":
            note(f"offline digits data at {root} was damaged ({problem}); writing it again")
        retire(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    sweep_leftovers(root.parent, ".smoke-")
    images28, labels = _digits_images(28, 4)
    images32, _ = _digits_images(32, 4)
    with tempfile.TemporaryDirectory(dir=root.parent, prefix=".smoke-") as tmp:
        staging = Path(tmp) / "data"
        staging.mkdir()
        _write_mnist_format(staging, images28, labels)
        _write_cifar_format(staging, images32, labels)
        files = sorted(p for p in staging.rglob("*") if p.is_file())
        manifest = {
            "version": SMOKE_VERSION,
            "source": "scikit-learn load_digits, rendered by mlsafety.data.write_smoke_data",
            "files": {
                str(p.relative_to(staging)): {"sha256": sha256_file(p), "md5": _md5_file(p)}
                for p in files
            },
        }
        (staging / SMOKE_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        try:
            staging.rename(root)
        except OSError:
            # another process finished first; keep its verified copy
            if not (root / SMOKE_MANIFEST).exists():
                raise
    verify_smoke_data(root)
    return root


def _smoke_manifest(root: Path) -> dict:
    return json.loads((root / SMOKE_MANIFEST).read_text())["files"]


def smoke_problem(root: Path) -> str | None:
    """Why the offline digits at ``root`` cannot be used (a file missing,
    truncated or altered, the manifest unreadable), or None when intact."""
    try:
        manifest = json.loads((Path(root) / SMOKE_MANIFEST).read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"{SMOKE_MANIFEST} is missing or unreadable"
    if manifest.get("version") != SMOKE_VERSION:
        return "written by an older version"
    for rel, hashes in files.items():
        problem = file_problem(Path(root) / rel, hashes)
        if not problem and is_pickle_batch(rel):
            # the manifest sits beside the files: a matching hash is not proof enough
            problem = pickle_problem(Path(root) / rel)
        if problem:
            return f"{rel}: {problem}"
    return None


def verify_smoke_data(root: Path) -> None:
    """Check every smoke file against the manifest's sha256."""
    problem = smoke_problem(root)
    if problem:
        raise SetupError(
            f"offline digits data is corrupted at {root} ({problem}); "
            f"`make data PROFILE=smoke` writes it again"
        )


# --------------------------------------------------------------------------- #
# Loading through torchvision.
# --------------------------------------------------------------------------- #


def _cifar_with_manifest():
    from torchvision.datasets import CIFAR10

    class ManifestCIFAR10(CIFAR10):
        """torchvision's CIFAR10 reading a CIFAR-10-format folder whose files are
        checked against our own manifest (sha256, and the md5s torchvision's
        integrity check wants) instead of the hashes of the real CIFAR-10."""

        def __init__(self, root, manifest: dict, **kwargs):
            prefix = self.base_folder + "/"
            self.manifest = manifest
            md5 = {rel.removeprefix(prefix): h["md5"] for rel, h in manifest.items()}
            self.train_list = [[f"data_batch_{i}", md5[f"data_batch_{i}"]] for i in range(1, 6)]
            self.test_list = [["test_batch", md5["test_batch"]]]
            self.meta = {**CIFAR10.meta, "md5": md5["batches.meta"]}
            super().__init__(root, download=False, **kwargs)

        def _check_integrity(self) -> bool:
            names = [n for n, _ in self.train_list + self.test_list] + [self.meta["filename"]]
            for name in names:
                rel = f"{self.base_folder}/{name}"
                path = Path(self.root) / rel
                if not path.exists() or sha256_file(path) != self.manifest[rel]["sha256"]:
                    return False
            # a matching hash is not proof enough to hand a pickle to torchvision's
            # plain pickle.load: the manifest sits beside the files
            refuse_unsafe_pickles(Path(self.root) / self.base_folder, names, "PROFILE=smoke")
            return super()._check_integrity()

    return ManifestCIFAR10


# What the CIFAR-10 batches (the published ones and the digits written here)
# may refer to: numpy arrays and their dtypes, nothing that runs code.
PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _PlainDataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"it refers to {module}.{name}")
        return super().find_class(module, name)


def is_pickle_batch(rel: str) -> bool:
    """Whether ``rel`` names a CIFAR-10 batch, a python pickle."""
    return re.fullmatch(r"data_batch_\d+|test_batch|batches\.meta", Path(rel).name) is not None


def pickle_problem(path: Path) -> str | None:
    """Why the pickle at ``path`` is not plain data (numpy arrays, lists,
    strings), or None when it is. Nothing it names outside
    :data:`PICKLE_GLOBALS` is ever looked up, so nothing in it runs."""
    try:
        with open(path, "rb") as f:
            _PlainDataUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        return f"not plain data: {load_error(err)}"
    except OSError as err:
        return f"unreadable ({err.strerror or err})"
    return None


def refuse_unsafe_pickles(folder: Path, names: list[str], profile: str) -> None:
    """Raise one line naming the first of ``folder/<names>`` that is not plain data."""
    for name in names:
        problem = pickle_problem(Path(folder) / name)
        if problem:
            raise SetupError(
                f"{Path(folder) / name} was refused unopened ({problem}); "
                f"`make data {profile}` replaces it"
            )


def load_torchvision(name: str, train: bool, root: Path | None = None):
    """The torchvision dataset object for ``name`` (see :data:`DATASETS`).

    Real datasets must have been fetched by ``make data`` (checked against the
    assets manifest first: a missing or corrupt one is one line naming the
    command); the offline digits are written on first use. Only with
    ``MLSAFETY_STANDIN=1`` and the real one absent is a dataset's stand-in
    read (:mod:`mlsafety.standin`), with one line on stderr saying so.
    """
    from torchvision import datasets

    if name in ("digits", "digits-cifar"):
        folder = write_smoke_data() if root is None else Path(root)
        if name == "digits":
            return datasets.MNIST(folder, train=train, download=False)
        return _cifar_with_manifest()(folder, _smoke_manifest(folder), train=train)
    if name not in DATASETS:
        raise SetupError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    from mlsafety import standin
    from mlsafety.assets import require_dataset

    if root is None and standin.in_use(name):  # a rehearsal, asked for explicitly
        return standin.load_torchvision(name, train)

    folder = require_dataset(name, root)
    if name == "mnist":
        return datasets.MNIST(folder, train=train, download=False)
    if name == "fashion-mnist":
        return datasets.FashionMNIST(folder, train=train, download=False)
    if name == "cifar10":  # require_dataset has checked its pickles hold plain data
        return datasets.CIFAR10(folder, train=train, download=False)
    if train:
        raise SetupError("only the test split of SVHN is part of the labs (an OOD set)")
    return datasets.SVHN(folder / "svhn", split="test", download=False)


def load_tensors(name: str, train: bool, limit: int | None = None, root: Path | None = None):
    """Images as float tensors in [0, 1], NCHW, and int64 labels.

    ``limit`` keeps the first ``limit`` examples (the files are already in a
    fixed shuffled order for the digits; MNIST and CIFAR-10 are class-mixed).
    """

    data, targets = (
        _read_digits_cached(name, train)
        if root is None and name in ("digits", "digits-cifar")
        else _read(name, train, root)
    )
    if limit is not None:
        data, targets = data[:limit], targets[:limit]
    x = data.float().div_(255)
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()
    return x, targets


def fingerprint(name: str) -> str:
    """What identifies the contents of dataset ``name``, for cache keys: the
    hash of the offline data's manifest, or of the sha256s the assets manifest
    names for a published dataset (whose files are checked against them)."""
    if name in ("digits", "digits-cifar"):
        root = smoke_root()
        if not (root / SMOKE_MANIFEST).exists():  # read only: checking is not writing
            root = write_smoke_data(root)
        blob = (root / SMOKE_MANIFEST).read_bytes()
    else:
        from mlsafety import standin
        from mlsafety.assets import dataset

        blob = " ".join(f.sha256 for f in dataset(name).files).encode()
        if standin.in_use(name):  # what is built from a stand-in is keyed apart
            blob = standin.fingerprint_blob(name)
    return hashlib.sha256(blob).hexdigest()[:16]


def _read(name: str, train: bool, root: Path | None):
    """uint8 images (N, H, W) or (N, H, W, C) and int64 labels, via torchvision."""
    import numpy as np
    import torch

    ds = load_torchvision(name, train, root)
    data = ds.data if isinstance(ds.data, torch.Tensor) else torch.from_numpy(np.asarray(ds.data))
    if name == "svhn":  # torchvision keeps SVHN channel-first; bring it to NHWC like CIFAR-10
        return data.permute(0, 2, 3, 1), torch.as_tensor(ds.labels, dtype=torch.int64)
    return data, torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)


TENSOR_FOLDER = "tensors"


def tensor_cache_folders(root: Path | None = None) -> list[Path]:
    """Where the digits' tensor caches may live: beside the digits, then the
    user cache (used when the data root is read-only)."""
    root = Path(root) if root is not None else smoke_root()
    return [root / TENSOR_FOLDER, user_cache() / TENSOR_FOLDER]


def tensor_cache_problems(root: Path | None = None) -> dict[Path, str]:
    """Every tensor cache file of the current digits that does not match the
    record written with it or that the safe loader refuses (its record sits
    beside it: a matching hash alone is not proof enough)."""
    key, folders = fingerprint("digits"), tensor_cache_folders(root)
    names = sorted({p.name for f in folders if f.is_dir() for p in f.glob(f"*-{key}.pt")})
    problems = {}
    for name in names:  # one intact copy (the user cache's, say) is what loading uses
        found = {f / name: _load_tensor_cache(f / name) for f in folders if (f / name).exists()}
        found = {path: got if isinstance(got, str) else None for path, got in found.items()}
        if all(found.values()):
            path = next(iter(found))
            problems[path] = found[path]
    return problems


def _tensor_record(path: Path) -> dict | None:
    try:
        return json.loads(Path(f"{path}.json").read_text())
    except (OSError, ValueError):
        return None


def _load_tensor_cache(path: Path):
    """``(data, targets)`` from a tensor cache, or the reason it cannot be used.
    The file is checked against its record first, then read with
    ``weights_only=True``, which refuses anything but tensors."""
    import torch

    problem = file_problem(path, _tensor_record(path))
    if problem:
        return problem
    try:
        payload = torch.load(path, weights_only=True)
        return payload["data"], payload["targets"]
    except pickle.UnpicklingError as err:
        return f"refused unopened: {load_error(err)}"
    except Exception as err:  # noqa: BLE001 - any failure to read means: rebuild it
        return f"unreadable: {load_error(err)}"


def _read_digits_cached(name: str, train: bool):
    """The offline digits as read by torchvision, kept as a tensor file keyed by
    the manifest's hash: specs then start without importing torchvision.

    A cache file that does not match its record (truncated, altered, replaced,
    half-written) is written again from the verified digits, with one line on
    stderr; when its folder is read-only the new one goes to the user cache."""
    import torch

    root, key = write_smoke_data(), fingerprint(name)
    fname = f"{name}-{'train' if train else 'test'}-{key}.pt"
    damaged = []
    for folder in tensor_cache_folders(root):
        cached = folder / fname
        if not cached.exists():
            continue
        loaded = _load_tensor_cache(cached)
        if not isinstance(loaded, str):
            return loaded
        damaged.append((cached, loaded))
    data, targets = _read(name, train, root)
    folder = next(f for f in tensor_cache_folders(root) if writable(f) or f.parent == user_cache())
    folder.mkdir(parents=True, exist_ok=True)
    sweep_leftovers(folder)
    cached = folder / fname
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{cached.name}.")
    os.close(fd)
    try:
        torch.save({"data": data, "targets": targets}, tmp)
        record = {**file_record(Path(tmp)), "written_by": "mlsafety.data"}
        Path(f"{tmp}.json").write_text(json.dumps(record) + "\n")
        os.replace(f"{tmp}.json", f"{cached}.json")
        os.replace(tmp, cached)
    finally:
        for leftover in (Path(tmp), Path(f"{tmp}.json")):
            leftover.unlink(missing_ok=True)
    for path, problem in damaged:
        where = "" if path == cached else f" (its folder is read-only: rebuilt in {cached})"
        note(f"tensor cache {path} was damaged ({problem}); rebuilt from the digits data{where}")
    return data, targets


def warm_tensor_caches(root: Path | None = None) -> int:
    """Build (or repair) the tensor caches of the digits; returns how many
    were damaged before."""
    before = len(tensor_cache_problems(root))
    for name in ("digits", "digits-cifar"):
        for train in (True, False):
            _read_digits_cached(name, train)
    return before


def loader(x, y, batch_size: int, shuffle: bool = False, seed: int = 0):
    """A DataLoader over tensors; shuffling draws from its own seeded generator."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    g = torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle, generator=g)
