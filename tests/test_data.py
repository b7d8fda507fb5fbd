import json

import pytest
import torch

from mlsafety import SetupError
from mlsafety.data import (
    SMOKE_MANIFEST,
    _cifar_with_manifest,
    load_tensors,
    load_torchvision,
    verify_smoke_data,
    write_smoke_data,
)


def test_digits_are_written_in_the_mnist_format_torchvision_reads(smoke_copy):
    from torchvision.datasets import MNIST

    train, test = MNIST(smoke_copy, train=True), MNIST(smoke_copy, train=False)
    assert train.data.shape == (1497, 28, 28) and test.data.shape == (300, 28, 28)
    assert train.data.dtype == torch.uint8 and int(train.data.max()) == 255
    assert set(train.targets.tolist()) == set(range(10))
    image, label = train[0]  # the real __getitem__ path: a PIL image
    assert image.size == (28, 28) and 0 <= label < 10


def test_digits_are_written_in_the_cifar10_format_with_our_manifest(smoke_copy):
    manifest = json.loads((smoke_copy / SMOKE_MANIFEST).read_text())["files"]
    cifar = _cifar_with_manifest()(smoke_copy, manifest, train=True)
    assert cifar.data.shape == (1497, 32, 32, 3) and len(cifar.targets) == 1497
    assert cifar.classes == [str(i) for i in range(10)]
    assert len(_cifar_with_manifest()(smoke_copy, manifest, train=False)) == 300


def test_the_real_cifar10_hashes_are_not_weakened(smoke_copy):
    from torchvision.datasets import CIFAR10

    with pytest.raises(RuntimeError, match="not found or corrupted"):
        CIFAR10(smoke_copy, train=True)  # our digits do not pass as the real CIFAR-10


def test_a_corrupted_file_is_caught(tmp_path, smoke_copy):
    import shutil

    copy = tmp_path / "smoke"
    shutil.copytree(smoke_copy, copy)
    batch = copy / "cifar-10-batches-py" / "data_batch_2"
    data = bytearray(batch.read_bytes())
    data[-10] ^= 0xFF
    batch.write_bytes(bytes(data))
    manifest = json.loads((copy / SMOKE_MANIFEST).read_text())["files"]
    with pytest.raises(RuntimeError, match="not found or corrupted"):
        _cifar_with_manifest()(copy, manifest, train=True)
    with pytest.raises(SetupError, match="corrupted") as err:
        verify_smoke_data(copy)
    assert "make data" in str(err.value)


def test_writing_twice_keeps_the_verified_copy(smoke_copy):
    before = (smoke_copy / SMOKE_MANIFEST).read_text()
    assert write_smoke_data(smoke_copy) == smoke_copy
    assert (smoke_copy / SMOKE_MANIFEST).read_text() == before


def test_tensors_are_float_nchw_in_unit_range(smoke_copy):
    x, y = load_tensors("digits", train=False, limit=50, root=smoke_copy)
    assert x.shape == (50, 1, 28, 28) and x.dtype == torch.float32
    assert x.min() >= 0 and x.max() <= 1 and y.dtype == torch.int64
    xc, yc = load_tensors("digits", train=False, root=smoke_copy)
    assert torch.equal(xc[:50], x) and torch.equal(yc[:50], y)


def test_cached_digits_equal_what_torchvision_reads():
    x_cached, y_cached = load_tensors("digits", train=True)  # through the tensor cache
    ds = load_torchvision("digits", train=True)
    assert torch.equal(x_cached, ds.data.float().div(255).unsqueeze(1))
    assert torch.equal(y_cached, ds.targets)


def test_missing_real_data_names_the_command(tmp_path):
    for name in ("mnist", "fashion-mnist", "cifar10"):
        with pytest.raises(SetupError) as err:
            load_tensors(name, train=False, root=tmp_path)
        message = str(err.value)
        assert name in message and str(tmp_path) in message and "make data" in message
        assert "\n" not in message
    with pytest.raises(SetupError, match="unknown dataset 'imagenet'"):
        load_torchvision("imagenet", train=False, root=tmp_path)


def test_leftovers_of_a_killed_writer_are_swept_once_old(tmp_path):
    import os
    import time

    from mlsafety.data import sweep_leftovers

    old, fresh, kept = tmp_path / ".x.pt.abc", tmp_path / ".x.pt.def", tmp_path / "x.pt"
    for path in (old, fresh, kept):
        path.write_bytes(b"half")
    (tmp_path / ".staging-x").mkdir()
    for path in (old, tmp_path / ".staging-x"):
        os.utime(path, (time.time() - 7200, time.time() - 7200))
    sweep_leftovers(tmp_path)
    assert not old.exists() and not (tmp_path / ".staging-x").exists()
    assert fresh.exists(), "a temporary file younger than an hour may be a writer still running"
    assert kept.exists(), "only dotted temporary names are swept"
