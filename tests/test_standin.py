"""Stand-ins for Fashion-MNIST, CIFAR-10 and SVHN: written in the published
formats, labelled inside, refused by `make data`, and read by the loaders only
in a rehearsal (MLSAFETY_STANDIN=1) that says "stand-in" wherever it does."""

import gzip
import hashlib
import pickle
import shutil
import struct
import tarfile

import pytest
import scipy.io
import torch

from mlsafety import SetupError, data, standin
from mlsafety.assets import STANDIN_NOTE, dataset, dataset_state, manifest
from mlsafety.cli import main
from mlsafety.data import fingerprint, load_tensors, pickle_problem
from mlsafety.hardware import PROFILES, pick_profile

from .conftest import ROOT, run

EXAMPLES = 40  # per file; the command line writes the published sizes
NAMES = ("fashion-mnist", "cifar10", "svhn")


@pytest.fixture(scope="module")
def share(tmp_path_factory):
    """Small stand-ins of the three datasets, each in its own subfolder."""
    folder = tmp_path_factory.mktemp("share")
    for name in NAMES:
        standin.write_standin(name, folder, EXAMPLES)
    return folder


@pytest.fixture
def root(tmp_path, monkeypatch):
    """An empty data root; the switch off unless a test sets it."""
    monkeypatch.setenv("MLSAFETY_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(standin.ENV, raising=False)
    monkeypatch.setattr(data, "_NOTED", set())  # each test sees the one-line notes again
    return tmp_path / "data"


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _idx_header(path):
    with gzip.open(path) as f:
        head = f.read(16)
    ndim = head[3]
    return head[2], struct.unpack(f">{ndim}I", head[4 : 4 + 4 * ndim])


# --------------------------------------------------------------------------- #
# The files.
# --------------------------------------------------------------------------- #


def test_the_published_sizes_are_the_defaults():
    assert standin.SIZES == {
        "fashion-mnist": {"train": 60000, "t10k": 10000},
        "cifar10": {"data_batch": 50000, "test_batch": 10000},
        "svhn": {"test_32x32.mat": 26032},
    }


def test_each_standin_holds_the_files_the_manifest_lists_each_labelled(share):
    for name in NAMES:
        folder = share / name
        listed = sorted(f.name for f in dataset(name).files)
        assert sorted(p.name for p in folder.iterdir()) == sorted([*listed, STANDIN_NOTE])
        assert "NOT the published data" in (folder / STANDIN_NOTE).read_text()
        for file in listed:
            assert standin.is_standin_file(folder / file), f"{name}/{file} is not labelled"
            assert _sha(folder / file) not in {f.sha256 for f in dataset(name).files}


def test_fashion_mnist_standin_is_idx_gzip(share):
    folder = share / "fashion-mnist"
    for split in ("train", "t10k"):
        assert _idx_header(folder / f"{split}-images-idx3-ubyte.gz") == (8, (EXAMPLES, 28, 28))
        assert _idx_header(folder / f"{split}-labels-idx1-ubyte.gz") == (8, (EXAMPLES,))


def test_cifar10_standin_is_the_python_tarball(share):
    with tarfile.open(share / "cifar10" / "cifar-10-python.tar.gz") as tar:
        names = sorted(tar.getnames())
        batches = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
        expected = sorted(f"cifar-10-batches-py/{n}" for n in [*batches, STANDIN_NOTE])
        assert names == expected
        test = pickle.loads(tar.extractfile("cifar-10-batches-py/test_batch").read())
        train = [
            pickle.loads(tar.extractfile(f"cifar-10-batches-py/data_batch_{i}").read())
            for i in range(1, 6)
        ]
    assert "stand-in" in test["batch_label"] and test["data"].shape == (EXAMPLES, 3072)
    assert test["data"].dtype.name == "uint8" and set(test["labels"]) <= set(range(10))
    assert sum(len(b["labels"]) for b in train) == EXAMPLES


def test_svhn_standin_is_the_mat_file(share):
    path = share / "svhn" / "test_32x32.mat"
    assert standin.MARK.encode() in path.read_bytes()[:116]
    mat = scipy.io.loadmat(path)
    assert mat["X"].shape == (32, 32, 3, EXAMPLES) and mat["X"].dtype.name == "uint8"
    assert mat["y"].shape == (EXAMPLES, 1) and set(mat["y"].ravel()) <= set(range(1, 11))


def test_standins_are_deterministic_and_sized_on_request(tmp_path, share):
    for name in NAMES:
        again = standin.write_standin(name, tmp_path, EXAMPLES)
        for path in (share / name).iterdir():
            assert _sha(again / path.name) == _sha(path), f"{name}/{path.name} differs"
    smaller = standin.write_standin("fashion-mnist", tmp_path / "small", 12)
    assert _idx_header(smaller / "t10k-labels-idx1-ubyte.gz") == (8, (12,))
    with pytest.raises(SetupError, match="no stand-in for 'mnist'"):
        standin.write_standin("mnist", tmp_path)
    with pytest.raises(SetupError, match="at least 10 examples per file, not 3"):
        standin.write_standin("svhn", tmp_path, 3)


# --------------------------------------------------------------------------- #
# Never the dataset without the switch.
# --------------------------------------------------------------------------- #


def test_make_data_refuses_a_standin_in_one_line(root, share, tmp_path, monkeypatch, capsys):
    flat = tmp_path / "flat"  # CIFAR-10 and SVHN may sit in the folder itself
    flat.mkdir()
    for name in ("cifar10", "svhn"):
        for path in (share / name).iterdir():
            shutil.copy(path, flat / path.name)
    monkeypatch.setenv(standin.ENV, "1")  # the loaders' switch does not change `make data`
    for source, labelled in ((share, NAMES), (flat, ("cifar10", "svhn"))):
        assert main(["data", *NAMES, "--from", str(source), "--quiet"]) == 1
        lines = capsys.readouterr().err.strip().splitlines()
        refused = {line.split(":")[0]: line for line in lines if not line.startswith("mlsafety:")}
        assert sorted(refused) == sorted(NAMES), lines
        for name in labelled:
            line = refused[name]
            assert "is a stand-in" in line and "not the published file" in line, line
    assert not root.exists() or sorted(p.name for p in root.iterdir()) == [], (
        "something was installed"
    )


def _bench():
    """scripts/bench.py as a module (it is a script, not part of the toolkit)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench", ROOT / "scripts" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _plant_copies(root, share):
    """The installed stand-ins copied where the published datasets go: with
    their stamp and note, with the note alone, and bare."""
    for name in NAMES:
        standin.install_standin(name, share)
    for name, keep in (("fashion-mnist", "all"), ("cifar10", "note"), ("svhn", "bare")):
        folder = dataset(name).folder
        shutil.copytree(root / standin.FOLDER / folder, root / folder)
        if keep != "all":
            (root / folder / ".mlsafety-asset.json").unlink()
        if keep == "bare":
            (root / folder / STANDIN_NOTE).unlink()


@pytest.mark.parametrize("switch", [None, "0", "true"])
def test_without_the_switch_nothing_ever_reads_the_standin(root, share, monkeypatch, switch):
    if switch is not None:
        monkeypatch.setenv(standin.ENV, switch)
    _plant_copies(root, share)
    published = {
        name: hashlib.sha256(" ".join(f.sha256 for f in dataset(name).files).encode()).hexdigest()[
            :16
        ]
        for name in NAMES
    }
    for name in NAMES:
        assert not standin.in_use(name)
        assert dataset_state(dataset(name)) != "verified"
        assert fingerprint(name) == published[name], "a checkpoint key would follow the stand-in"
        with pytest.raises(SetupError) as err:
            load_tensors(name, train=False)
        assert "\n" not in str(err.value) and "make data" in str(err.value)
    for name in ("fashion-mnist", "cifar10"):
        assert "stand-in" in dataset_state(dataset(name)), dataset_state(dataset(name))
    from mlsafety.doctor import diagnose

    report = diagnose("gpu", port=1)
    for name in NAMES:
        assert any(p.startswith(f"dataset {name} is ") for p in report.problems), report.problems
    assert not any("STAND-IN" in value for _, value in report.lines)
    for name, profile in PROFILES.items():
        assert pick_profile(name) == profile and profile.dataset in ("digits", "mnist", "cifar10")
    assert main(["data", *NAMES, "--quiet"] + ["--from", str(share)]) == 1
    bench = _bench()
    assert bench.standins_read("gpu", 5) == [] and not bench.profile_data_present("gpu", 5)
    for name in ("cifar10", "svhn"):
        assert dataset_state(dataset(name)) != "verified"


def test_the_standin_is_installed_only_from_labelled_files(root, tmp_path):
    fake = tmp_path / "svhn" / "test_32x32.mat"
    fake.parent.mkdir()
    scipy.io.savemat(fake, {"X": [[1]], "y": [[1]]})
    with pytest.raises(SetupError, match="is not a stand-in written by `mlsafety standin`"):
        standin.install_standin("svhn", tmp_path)
    assert not (root / standin.FOLDER / "svhn").exists()


# --------------------------------------------------------------------------- #
# The rehearsal.
# --------------------------------------------------------------------------- #


def test_the_rehearsal_reads_the_standin_and_says_so(root, share, monkeypatch, capsys):
    assert main(["data", *NAMES, "--standin", "--from", str(share), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.count("STAND-IN copied, not the published data") == 3, out
    for name in NAMES:
        assert (root / standin.FOLDER / dataset(name).folder / STANDIN_NOTE).is_file()
        assert not (root / dataset(name).folder).exists(), "installed where the real one goes"
    monkeypatch.setenv(standin.ENV, "1")
    shapes = {"fashion-mnist": (1, 28, 28), "cifar10": (3, 32, 32), "svhn": (3, 32, 32)}
    for name in NAMES:
        x, y = load_tensors(name, train=False)
        assert tuple(x.shape) == (EXAMPLES, *shapes[name]) and 0 <= x.min() <= x.max() <= 1
        assert y.dtype == torch.int64 and set(y.tolist()) <= set(range(10))
        err = capsys.readouterr().err
        assert f"{name}: reading a STAND-IN" in err and "stand-in's" in err, err
        assert (
            fingerprint(name)
            != hashlib.sha256(" ".join(f.sha256 for f in dataset(name).files).encode()).hexdigest()[
                :16
            ]
        ), "what is built from a stand-in must be keyed apart"
    x, _ = load_tensors("cifar10", train=True)
    assert len(x) == EXAMPLES
    batch = root / standin.FOLDER / "cifar-10-batches-py" / "test_batch"
    assert pickle_problem(batch) is None
    from mlsafety.doctor import diagnose

    report = diagnose("gpu", port=1)
    values = dict(report.lines)
    for name in NAMES:
        assert values[f"dataset {name}"].startswith("STAND-IN, verified"), values
        assert any(
            w.startswith(f"dataset {name}: the labs read its stand-in") for w in report.warnings
        )
    bench = _bench()
    assert bench.standins_read("gpu", 5) == list(NAMES)
    assert bench.profile_data_present("cpu", 5) is False, "MNIST is not here: nothing to time"
    row = {"cpu_s": 12.3, "cpu_standin": ["fashion-mnist"], "gpu_s": 4.5}
    assert bench._notebook_cell(row, "cpu") == "12.3 (stand-in fashion-mnist)"
    assert bench._notebook_cell(row, "gpu") == 4.5


def test_the_published_dataset_wins_over_its_standin(root, share, monkeypatch):
    from mlsafety import assets

    assert standin.install_standin("svhn", share)[1] == "copied"
    assert standin.install_standin("svhn")[1] == "present", "an intact stand-in is kept"
    monkeypatch.setenv(standin.ENV, "1")
    assert standin.in_use("svhn")
    monkeypatch.setattr(assets, "dataset_state", lambda entry, root=None, deep=False: "verified")
    assert not standin.in_use("svhn"), "the published SVHN is installed: it is what is read"


def test_a_damaged_standin_is_refused_in_the_rehearsal(root, share, monkeypatch):
    standin.install_standin("svhn", share)
    monkeypatch.setenv(standin.ENV, "1")
    mat = root / standin.FOLDER / "svhn" / "test_32x32.mat"
    mat.write_bytes(mat.read_bytes()[:-10])
    with pytest.raises(SetupError) as err:
        load_tensors("svhn", train=False)
    message = str(err.value)
    assert "stand-in is corrupt" in message and "make data PROFILE=gpu STANDIN=1" in message


def test_make_passes_the_rehearsal_switch_only_when_asked():
    def dry(*extra):
        result = run(["make", "-n", "--no-print-directory", "STAMP=", "data", *extra], timeout=60)
        return result.stdout

    assert "--standin" in dry("STANDIN=1", "FROM=/tmp/x")
    assert "--standin" not in dry("FROM=/tmp/x") and "--standin" not in dry("STANDIN=0")


def test_every_standin_has_a_manifest_entry_with_the_writers_file_names():
    for name in standin.STANDINS:
        entry = manifest().datasets[name]
        assert entry.files and not entry.generated, name
    assert set(standin.STANDINS) == set(standin.WRITERS)
