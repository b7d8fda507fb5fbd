"""Datasets for the labs, read through torchvision's own dataset classes.

Real data (MNIST, Fashion-MNIST, CIFAR-10) lives under the data root in the
layouts torchvision expects. The offline ``digits`` data of the smoke profile is
scikit-learn's 8x8 digits, rendered once into the very same on-disk formats
(MNIST idx files and CIFAR-10 python pickles) so the real loaders read it.
Nothing downloads at lab time: a missing dataset raises one line naming the
command that fetches it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pickle
import struct
import tempfile
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


def _write_idx(path: Path, array) -> None:
    """IDX format as MNIST ships it: magic (0, 0, ubyte=0x08, ndim), big-endian
    dimensions, then the raw bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(">" + "I" * array.ndim, *array.shape)
    path.write_bytes(header + array.tobytes())


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
    when the data root is read-only and holds no baked copy."""
    baked = data_root() / SMOKE_FOLDER
    if (baked / SMOKE_MANIFEST).exists() or writable(baked):
        return baked
    return user_cache() / SMOKE_FOLDER


def write_smoke_data(root: Path | None = None) -> Path:
    """Render the digits into MNIST and CIFAR-10 formats under ``root`` (default
    :func:`smoke_root`), with a manifest of sha256 and md5 hashes. Written into
    a temporary folder and renamed into place, so a half-written copy is never
    seen. Returns the folder; a verified copy already there is kept."""
    root = Path(root) if root is not None else smoke_root()
    if (root / SMOKE_MANIFEST).exists():
        if json.loads((root / SMOKE_MANIFEST).read_text()).get("version") == SMOKE_VERSION:
            verify_smoke_data(root)
            return root
        retire(root)  # written by an older layout: write it again
    root.parent.mkdir(parents=True, exist_ok=True)
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


def verify_smoke_data(root: Path) -> None:
    """Check every smoke file against the manifest's sha256."""
    for rel, hashes in _smoke_manifest(root).items():
        path = root / rel
        if not path.exists() or sha256_file(path) != hashes["sha256"]:
            raise SetupError(
                f"offline digits data is corrupted at {path}; delete {root} and run "
                f"`make data MLSAFETY_PROFILE=smoke` to write it again"
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
            for name, _ in self.train_list + self.test_list + [[self.meta["filename"], None]]:
                rel = f"{self.base_folder}/{name}"
                path = Path(self.root) / rel
                if not path.exists() or sha256_file(path) != self.manifest[rel]["sha256"]:
                    return False
            return super()._check_integrity()

    return ManifestCIFAR10


def load_torchvision(name: str, train: bool, root: Path | None = None):
    """The torchvision dataset object for ``name`` (see :data:`DATASETS`).

    Real datasets must have been fetched by ``make data`` (checked against the
    assets manifest first: a missing or corrupt one is one line naming the
    command); the offline digits are written on first use.
    """
    from torchvision import datasets

    if name in ("digits", "digits-cifar"):
        folder = write_smoke_data() if root is None else Path(root)
        if name == "digits":
            return datasets.MNIST(folder, train=train, download=False)
        return _cifar_with_manifest()(folder, _smoke_manifest(folder), train=train)
    if name not in DATASETS:
        raise SetupError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    from mlsafety.assets import require_dataset

    folder = require_dataset(name, root)
    if name == "mnist":
        return datasets.MNIST(folder, train=train, download=False)
    if name == "fashion-mnist":
        return datasets.FashionMNIST(folder, train=train, download=False)
    if name == "cifar10":
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
        blob = (write_smoke_data() / SMOKE_MANIFEST).read_bytes()
    else:
        from mlsafety.assets import dataset

        blob = " ".join(f.sha256 for f in dataset(name).files).encode()
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


def _read_digits_cached(name: str, train: bool):
    """The offline digits as read by torchvision, kept as a tensor file keyed by
    the manifest's hash: specs then start without importing torchvision."""
    import torch

    root, key = write_smoke_data(), fingerprint(name)
    folder = root / "tensors" if writable(root / "tensors") else user_cache() / "tensors"
    cached = folder / f"{name}-{'train' if train else 'test'}-{key}.pt"
    if cached.exists():
        payload = torch.load(cached, weights_only=True)
        return payload["data"], payload["targets"]
    data, targets = _read(name, train, root)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{cached.name}.")
    os.close(fd)
    torch.save({"data": data, "targets": targets}, tmp)
    os.replace(tmp, cached)
    return data, targets


def loader(x, y, batch_size: int, shuffle: bool = False, seed: int = 0):
    """A DataLoader over tensors; shuffling draws from its own seeded generator."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    g = torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle, generator=g)
