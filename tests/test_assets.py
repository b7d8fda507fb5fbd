"""The assets manifest, dataset installation through the real torchvision
loaders (served from 127.0.0.1), the checkpoint lock file and `make doctor`."""

import dataclasses
import hashlib
import io
import os
import re
import socket
import tarfile

import pytest
import torch

from mlsafety import SetupError, assets, recipes
from mlsafety.assets import Dataset, Manifest, dataset_state, fetch_dataset, manifest
from mlsafety.checkpoints import read_record
from mlsafety.data import load_tensors
from mlsafety.download import RemoteFile
from mlsafety.hardware import PROFILES

from .conftest import BIN, ROOT, run

FAST = {"timeout": 2.0, "retries": 1, "backoff": 0.01}


# --------------------------------------------------------------------------- #
# The manifest itself.
# --------------------------------------------------------------------------- #


def test_the_manifest_names_every_dataset_the_labs_need():
    found = manifest().datasets
    for name in ("digits", "mnist", "fashion-mnist", "cifar10", "svhn"):
        assert name in found, f"environments/assets.toml lacks {name}"
    for profile in PROFILES.values():
        names = [d.name for d in manifest().for_profile(profile.name)[0]]
        assert profile.dataset in names, f"profile {profile.name} trains on {profile.dataset}"


def test_every_published_file_has_mirrors_size_hash_licence_and_provenance():
    for entry in manifest().datasets.values():
        assert entry.licence and entry.homepage and entry.title, entry.name
        assert set(entry.profiles) <= set(PROFILES), entry.name
        if entry.generated:
            continue
        assert entry.hash_source and entry.layout in assets.LAYOUTS, entry.name
        for f in entry.files:
            assert re.fullmatch(r"[0-9a-f]{64}", f.sha256), (entry.name, f.name)
            assert re.fullmatch(r"[0-9a-f]{32}", f.md5 or ""), (entry.name, f.name)
            assert f.size and f.size > 0, (entry.name, f.name)
            assert f.urls and all(u.startswith(("https://", "http://")) for u in f.urls)


def test_every_checkpoint_has_a_recipe_and_every_recipe_is_listed():
    listed = {c.recipe for c in manifest().checkpoints.values()}
    assert listed == set(recipes.RECIPES)
    for entry in manifest().checkpoints.values():
        assert entry.licence and entry.weeks and set(entry.profiles) <= set(PROFILES)


def test_the_lock_records_every_smoke_checkpoint_with_current_settings():
    lock = assets.read_lock()["checkpoints"]
    for entry in manifest().checkpoints.values():
        locked = lock.get(entry.name, {}).get("smoke")
        assert locked, f"{entry.name} is not in environments/assets.lock.json: `make assets LOCK=1`"
        key = recipes._fingerprint(entry.recipe, PROFILES["smoke"])["key"]
        assert locked["key"] == key, (
            f"{entry.name}: the recipe's settings changed since the lock was written; run "
            f"`make assets PROFILE=smoke LOCK=1` and commit environments/assets.lock.json"
        )
        assert re.fullmatch(r"[0-9a-f]{64}", locked["sha256"]) and locked["size"] > 0


# --------------------------------------------------------------------------- #
# Installing datasets from a local server, then reading them the real way.
# --------------------------------------------------------------------------- #


def _entry(server, name, folder, layout, blobs: dict[str, bytes], behaviour="good"):
    files = tuple(
        RemoteFile(
            fname,
            (server.serve(fname, body, behaviour),),
            len(body),
            hashlib.sha256(body).hexdigest(),
        )
        for fname, body in blobs.items()
    )
    return Dataset(
        name, name, "test", "http://127.0.0.1/", folder, ("cpu",), (), layout, files=files
    )


@pytest.fixture
def served_manifest(monkeypatch):
    """Replace the manifest with entries made by the test."""
    entries = {}
    monkeypatch.setattr(assets, "manifest", lambda path=None: Manifest(entries, {}))
    return entries


def _mnist_blobs(smoke_copy):
    raw = smoke_copy / "MNIST" / "raw"
    return {p.name: p.read_bytes() for p in sorted(raw.glob("*.gz"))}


def test_mnist_files_are_fetched_unpacked_and_read_by_torchvision(
    server, served_manifest, smoke_copy, tmp_path
):
    served_manifest["mnist"] = _entry(server, "mnist", "MNIST", "mnist", _mnist_blobs(smoke_copy))
    folder, what = fetch_dataset("mnist", tmp_path, progress=False, **FAST)
    assert what == "fetched" and folder == tmp_path / "MNIST"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["MNIST"], "staging or downloads remain"
    x, y = load_tensors("mnist", train=False, root=tmp_path)
    x_ref, y_ref = load_tensors("digits", train=False, root=smoke_copy)
    assert torch.equal(x, x_ref) and torch.equal(y, y_ref)
    assert fetch_dataset("mnist", tmp_path, progress=False)[1] == "present"
    assert dataset_state(served_manifest["mnist"], tmp_path, deep=True) == "verified"


def test_files_from_a_local_folder_are_checked_like_downloads(
    server, served_manifest, smoke_copy, tmp_path
):
    blobs = _mnist_blobs(smoke_copy)
    served_manifest["mnist"] = _entry(server, "mnist", "MNIST", "mnist", blobs)
    share = tmp_path / "share"
    share.mkdir()
    for name, body in blobs.items():
        (share / name).write_bytes(body)
    (share / "t10k-labels-idx1-ubyte.gz").write_bytes(b"something else")
    with pytest.raises(SetupError, match="does not match its sha256"):
        fetch_dataset("mnist", tmp_path / "root", source=share)
    assert not (tmp_path / "root" / "MNIST").exists()
    (share / "t10k-labels-idx1-ubyte.gz").write_bytes(blobs["t10k-labels-idx1-ubyte.gz"])
    folder, what = fetch_dataset("mnist", tmp_path / "root", source=share)
    assert what == "copied" and folder == tmp_path / "root" / "MNIST"
    assert dataset_state(served_manifest["mnist"], tmp_path / "root", deep=True) == "verified"
    assert server.log == [], "a local copy must not touch the network"


def _targz(member: str, body: bytes) -> bytes:
    """A .tar.gz holding one file named ``member`` (which may try to escape)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo(member)
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


def test_a_tar_archive_is_unpacked_safely(server, served_manifest, tmp_path):
    good = _targz("batches/data", b"hello")
    served_manifest["ok"] = _entry(server, "ok", "batches", "tar", {"ok.tgz": good})
    folder, _ = fetch_dataset("ok", tmp_path, progress=False, **FAST)
    assert (folder / "data").read_bytes() == b"hello"

    evil = _targz("../escaped", b"evil")
    served_manifest["evil"] = _entry(server, "evil", "batches2", "tar", {"e.tgz": evil})
    with pytest.raises(SetupError, match="unsafe or broken"):
        fetch_dataset("evil", tmp_path / "root", progress=False, **FAST)
    assert not (tmp_path / "escaped").exists()
    assert not (tmp_path / "root" / "batches2").exists()


def test_a_failed_fetch_or_unpack_installs_nothing(server, served_manifest, tmp_path):
    served_manifest["bad"] = _entry(server, "bad", "BAD", "mnist", {"x.gz": b"not gzip"})
    with pytest.raises(SetupError, match="not valid gzip"):
        fetch_dataset("bad", tmp_path, progress=False, **FAST)
    served_manifest["cut"] = _entry(
        server, "cut", "CUT", "mnist", {"y.gz": b"z" * 5000}, behaviour="short"
    )
    with pytest.raises(SetupError, match="sha256"):
        fetch_dataset("cut", tmp_path, progress=False, **FAST)
    installed = [p.name for p in tmp_path.iterdir() if not p.name.startswith(".downloads")]
    assert installed == [], installed
    kept = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert kept == ["x.gz"], f"only the verified archive may stay for the next try: {kept}"


def test_damage_after_install_is_reported_in_one_line(
    server, served_manifest, smoke_copy, tmp_path
):
    served_manifest["mnist"] = _entry(server, "mnist", "MNIST", "mnist", _mnist_blobs(smoke_copy))
    folder, _ = fetch_dataset("mnist", tmp_path, progress=False, **FAST)
    images = folder / "raw" / "t10k-images-idx3-ubyte"
    data = bytearray(images.read_bytes())
    data[100] ^= 0xFF  # same size, but modified since unpacked: the quick check re-hashes it
    unpacked = images.stat()
    images.write_bytes(bytes(data))
    assert "does not match its sha256" in dataset_state(served_manifest["mnist"], tmp_path)
    os.utime(images, ns=(unpacked.st_atime_ns, unpacked.st_mtime_ns))  # now only a deep check
    assert dataset_state(served_manifest["mnist"], tmp_path) == "verified"
    assert "does not match its sha256" in dataset_state(served_manifest["mnist"], tmp_path, True)
    images.write_bytes(bytes(data[:-10]))  # truncated: loading refuses it
    with pytest.raises(SetupError) as err:
        load_tensors("mnist", train=False, root=tmp_path)
    message = str(err.value)
    assert "corrupt" in message and str(folder) in message and "make data" in message
    assert "\n" not in message


def test_nothing_downloads_at_lab_time(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        pytest.fail("something tried to connect at lab time")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setenv("MLSAFETY_DATA", str(tmp_path))
    for name in ("mnist", "fashion-mnist", "cifar10", "svhn"):
        with pytest.raises(SetupError, match=f"dataset '{name}' is missing at .*make data PROFILE"):
            load_tensors(name, train=False)


def test_a_read_only_data_root_is_not_written(tmp_path, monkeypatch):
    monkeypatch.setattr(assets, "writable", lambda folder: False)
    with pytest.raises(SetupError, match="read-only; point MLSAFETY_DATA"):
        fetch_dataset("mnist", tmp_path, progress=False)


# --------------------------------------------------------------------------- #
# Checkpoints and the doctor.
# --------------------------------------------------------------------------- #


@pytest.mark.timeout(900)  # builds every smoke checkpoint the manifest lists when none is cached
def test_smoke_checkpoints_do_what_they_are_for():
    for entry in manifest().checkpoints.values():
        record = read_record(recipes.ensure(entry.recipe, "smoke", quiet=True))
        if entry.name == "privacy_target_dp":  # for its privacy: a small epsilon, not accuracy
            assert record["metrics"]["epsilon"] < 6, record["metrics"]
            continue
        if entry.name == "smollm2_instruct":  # the conversion answers as the model does
            assert "Paris" in record["metrics"]["capital_of_france"], record["metrics"]
            continue
        if entry.name == "smollm2_tiny":  # 2 layers of width 64 and SmolLM2's 49152 tokens
            assert 3_000_000 < record["metrics"]["parameters"] < 3_500_000, record["metrics"]
            continue
        assert record["metrics"]["clean_accuracy"] > 0.75, (entry.name, record["metrics"])
        if entry.name == "trojaned_cnn":
            assert record["metrics"]["attack_success_rate"] > 0.9, record["metrics"]


def test_the_trojan_trigger_is_the_stamp_the_recipe_used():
    mask, pattern = recipes.trojan_trigger(1, 28)
    assert mask.sum() == recipes.TROJAN["patch"] ** 2 and set(mask.unique().tolist()) == {0, 1}
    assert mask[0, -2, -2] == 1 and mask[0, 0, 0] == 0 and torch.all(pattern == 1)


@pytest.mark.timeout(900)  # builds every smoke checkpoint, the language model's conversion too
def test_doctor_lists_what_is_missing_then_passes(tmp_path, monkeypatch, capsys):
    from mlsafety.cli import main

    monkeypatch.setenv("MLSAFETY_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert main(["doctor", "--profile", "smoke", "--port", "1"]) == 1
    out = capsys.readouterr().out
    assert "dataset digits" in out and "missing" in out
    assert "make data PROFILE=smoke" in out and "make assets PROFILE=smoke" in out
    for line in ("torch ", "torchvision", "cuda", "device", "profile", "data root", "uid"):
        assert line in out, f"doctor does not report {line!r}"
    assert main(["data", "--profile", "smoke", "--quiet"]) == 0
    assert main(["assets", "--profile", "smoke"]) == 0
    capsys.readouterr()
    assert main(["doctor", "--profile", "smoke", "--deep"]) == 0, capsys.readouterr().out
    checkpoint = next((tmp_path / "data" / "checkpoints" / "smoke").glob("standard_cnn.pt"))
    data = bytearray(checkpoint.read_bytes())
    data[-1] ^= 0xFF
    checkpoint.write_bytes(bytes(data))
    assert main(["doctor", "--profile", "smoke"]) == 1
    out = capsys.readouterr().out
    assert f"checkpoint standard_cnn at {checkpoint} is corrupt: " in out, out
    assert "`make assets PROFILE=smoke` rebuilds it" in out, out


def test_make_doctor_and_data_report_in_one_line_per_problem(tmp_path):
    env = {"MLSAFETY_DATA": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    result = run(["make", "--no-print-directory", "doctor", "PROFILE=cpu"], env=env, timeout=120)
    assert result.returncode != 0
    assert "dataset mnist is missing" in result.stdout and "make data PROFILE=cpu" in result.stdout
    bad = run([str(BIN / "mlsafety"), "data", "imagenet"], env=env, timeout=60)
    assert bad.returncode != 0 and "unknown dataset 'imagenet'" in bad.stderr


def test_a_dataset_entry_is_frozen_data():
    entry = manifest().datasets["mnist"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.folder = "elsewhere"


def test_doctor_warns_when_the_gpu_profile_is_forced_without_cuda(monkeypatch):
    from mlsafety import doctor, hardware

    monkeypatch.setattr(hardware, "pick_device", lambda preferred=None: torch.device("cpu"))
    report = doctor.diagnose("gpu", port=1)
    assert any("gpu profile on a machine without CUDA" in w for w in report.warnings)
    assert ("profile", "gpu (from --profile)") in report.lines


def test_every_make_command_in_a_message_uses_the_makefiles_variables():
    """Messages name `make data PROFILE=smoke` as the README does, never a
    variable the Makefile does not read (`make data MLSAFETY_PROFILE=smoke`)."""
    declared = set(re.findall(r"^([A-Z][A-Z0-9_]*) \?=", (ROOT / "Makefile").read_text(), re.M))
    sources = [*sorted((ROOT / "src" / "mlsafety").glob("*.py")), ROOT / "Makefile"]
    sources += [ROOT / "README.md", *sorted(ROOT.glob("labs/*/README.md"))]
    pattern = re.compile(r"\bmake ([a-z][\w%-]*(?: +[A-Z][A-Z0-9_]*=[^\s`'\"]*)+)")
    for path in sources:
        for command in pattern.findall(path.read_text()):
            for var in re.findall(r"\b([A-Z][A-Z0-9_]*)=", command):
                assert var in declared, (
                    f"{path.relative_to(ROOT)}: `make {command}` sets {var}, which the Makefile "
                    f"does not read; use one of {', '.join(sorted(declared))}"
                )


def test_every_lab_reading_the_profiles_dataset_is_listed_under_it():
    """A notebook that loads ``profile.dataset`` reads digits, MNIST or CIFAR-10
    depending on the profile: each of those must list the lab (`make bench` and
    the stand-in labels go by these lists)."""
    from mlsafety.weeks import all_labs, lab_id

    readers = {
        lab_id(folder)
        for folder in all_labs().values()
        if "profile.dataset" in (folder / "lab.ipynb").read_text()
    }
    assert {"week01", "week03", "security1", "security2"} <= readers
    for profile in PROFILES.values():
        listed = set(manifest().datasets[profile.dataset].labs)
        assert readers <= listed, (profile.name, profile.dataset, sorted(readers - listed))
