"""`make data FROM=<folder>`: each dataset's files in its own subfolder (named
as in the manifest or as torchvision names it), or in the folder itself where
no other dataset of its profiles has files of the same names. Served from
disk: nothing here touches the network."""

import hashlib
import os
import socket
from pathlib import Path

import pytest

from mlsafety import SetupError, assets
from mlsafety.assets import Dataset, Manifest, dataset_state, fetch_dataset
from mlsafety.download import RemoteFile

from .conftest import ROOT

BODIES = {"aa": b"first dataset", "bb": b"second dataset, same file name"}


def _entry(name, folder, files: dict[str, bytes], profiles=("cpu",)):
    remote = tuple(
        RemoteFile(f, ("http://127.0.0.1:9/",), len(b), hashlib.sha256(b).hexdigest())
        for f, b in files.items()
    )
    return Dataset(
        name, name, "test", "http://127.0.0.1/", folder, profiles, (), "copy", files=remote
    )


@pytest.fixture
def clashing(monkeypatch):
    """Three small datasets: aa and bb both name their file x.bin (like MNIST and
    Fashion-MNIST), cc's c.bin clashes with nothing."""

    def no_network(*args, **kwargs):
        pytest.fail("a local copy must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    entries = {
        "aa": _entry("aa", "AaData", {"x.bin": BODIES["aa"]}),
        "bb": _entry("bb", "BbData", {"x.bin": BODIES["bb"]}),
        "cc": _entry("cc", "CcData", {"c.bin": b"third"}),
    }
    monkeypatch.setattr(assets, "manifest", lambda path=None: Manifest(entries, {}))
    return entries


def _put(path: Path, body: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    return path


def test_each_dataset_is_found_in_its_own_subfolder(clashing, tmp_path):
    share = tmp_path / "share"
    _put(share / "aa" / "x.bin", BODIES["aa"])
    _put(share / "BbData" / "raw" / "x.bin", BODIES["bb"])  # torchvision's folder and raw/
    _put(share / "c.bin", b"third")  # no other dataset has a c.bin: the folder itself will do
    for name in ("aa", "bb", "cc"):
        folder, what = fetch_dataset(name, tmp_path / "root", source=share)
        assert what == "copied", what
        assert dataset_state(clashing[name], tmp_path / "root", deep=True) == "verified"
    assert (tmp_path / "root" / "AaData" / "x.bin").read_bytes() == BODIES["aa"]
    assert (tmp_path / "root" / "BbData" / "x.bin").read_bytes() == BODIES["bb"]
    assert (tmp_path / "root" / "CcData" / "c.bin").read_bytes() == b"third"


def test_a_clashing_name_in_the_folder_itself_is_not_taken(clashing, tmp_path):
    share = _put(tmp_path / "share" / "x.bin", BODIES["aa"]).parent
    for name, other in (("aa", "bb"), ("bb", "aa")):
        with pytest.raises(SetupError) as err:
            fetch_dataset(name, tmp_path / "root", source=share)
        message = str(err.value)
        assert "\n" not in message and "x.bin not found under" in message, message
        assert f"{other} has files of the same names" in message, message
        assert f"{name}/" in message, f"the message should name the subfolder to use: {message}"
    assert not (tmp_path / "root" / "AaData").exists()


def test_a_folder_named_after_a_dataset_is_that_datasets(clashing, tmp_path):
    share = _put(tmp_path / "aa" / "x.bin", BODIES["aa"]).parent
    assert fetch_dataset("aa", tmp_path / "root", source=share)[1] == "copied"
    with pytest.raises(SetupError, match="named after another dataset"):
        fetch_dataset("bb", tmp_path / "root", source=share)


def test_a_file_with_the_wrong_sha256_is_refused_in_one_line(clashing, tmp_path):
    share = tmp_path / "share"
    _put(share / "bb" / "x.bin", BODIES["aa"])  # aa's file in bb's folder
    with pytest.raises(SetupError) as err:
        fetch_dataset("bb", tmp_path / "root", source=share)
    message = str(err.value)
    assert "does not match its sha256" in message and str(share / "bb" / "x.bin") in message
    assert "\n" not in message
    assert not (tmp_path / "root" / "BbData").exists()


def test_make_data_lists_what_is_missing_in_one_line_per_dataset(
    clashing, tmp_path, monkeypatch, capsys
):
    from mlsafety.cli import main

    monkeypatch.setenv("MLSAFETY_DATA", str(tmp_path / "root"))
    share = _put(tmp_path / "share" / "aa" / "x.bin", BODIES["aa"]).parents[1]
    assert main(["data", "aa", "bb", "cc", "--from", str(share), "--quiet"]) == 1
    out, err = capsys.readouterr()
    assert "aa: copied, verified" in out
    lines = err.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["bb", "cc", "mlsafety"], lines
    assert "x.bin not found under" in lines[0] and "aa has files of the same names" in lines[0]
    assert "c.bin not found under" in lines[1] and "CcData/" in lines[1]


def _real_mnist() -> Path | None:
    configured = os.environ.get("MLSAFETY_MNIST_DIR")
    folder = Path(configured) if configured else ROOT.parent / "shared" / "datasets" / "mnist"
    return folder if (folder / "train-images-idx3-ubyte.gz").is_file() else None


@pytest.mark.skipif(
    _real_mnist() is None, reason="no copy of the published MNIST files (MLSAFETY_MNIST_DIR)"
)
@pytest.mark.timeout(300)
def test_the_published_mnist_files_are_served_from_a_folder_and_its_parent(tmp_path):
    """The real files: from their own folder (named mnist/), and from the
    folder above it, where they sit in the mnist/ subfolder; Fashion-MNIST,
    whose files have the same names, is never taken from there."""
    from mlsafety.data import load_tensors

    mnist = _real_mnist()
    entry = assets.manifest().datasets["mnist"]
    for source in (mnist, mnist.parent):
        folder, what = fetch_dataset("mnist", tmp_path / source.name, source=source)
        assert what == "copied", what
        assert dataset_state(entry, tmp_path / source.name, deep=True) == "verified"
    x, y = load_tensors("mnist", train=False, root=tmp_path / mnist.name)
    assert tuple(x.shape) == (10000, 1, 28, 28) and int(y.bincount().min()) > 800
    with pytest.raises(SetupError) as err:
        fetch_dataset("fashion-mnist", tmp_path / "other", source=mnist)
    assert "not found under" in str(err.value) and "FashionMNIST/" in str(err.value)
    assert not (tmp_path / "other" / "FashionMNIST").exists()
