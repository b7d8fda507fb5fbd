"""Fault injection: every cache the labs read is damaged on purpose, and each
time the damage is detected, `make doctor` says so in one line naming the file
and the command, the labs rebuild it by themselves or stop with that line, the
command repairs it without anything deleted by hand, and labs/ is untouched.

Caches: the offline digits (files written from scikit-learn's digits), their
tensor caches, a checkpoint, and a published dataset (served from 127.0.0.1).
Faults: truncated, a byte flipped, the writer killed mid-write, replaced by a
pickle that would run code (with a record that matches it), and a read-only
data root owned by another user (the run drops to uid 65534 as images do to
uid 1000; repairs go to the user cache).

Every case is one row of docs/fault_injection.md: the test compares what it
observed with the committed row, so the table cannot drift from the code.
`MLSAFETY_WRITE_FAULTS=1 .venv/bin/python -m pytest tests/test_faults.py`
rewrites the table from a full run.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
import torch

from mlsafety import SetupError, assets, recipes
from mlsafety.assets import Dataset, Manifest
from mlsafety.data import sha256_file
from mlsafety.download import RemoteFile

from .conftest import BIN, ROOT

DOC = ROOT / "docs" / "fault_injection.md"
WRITE = os.environ.get("MLSAFETY_WRITE_FAULTS") == "1"
KINDS = ("offline digits", "tensor cache", "checkpoint", "published dataset")
FAULTS = (
    "truncated",
    "a byte flipped",
    "writer killed mid-write",
    "malicious pickle, matching record",
    "read-only root, other owner",
)
COLUMNS = ("cache", "fault", "make doctor", "at lab time", "repaired by", "labs/ untouched")
NOBODY = 65534
OBSERVED: dict[tuple[str, str], tuple[str, ...]] = {}


# --------------------------------------------------------------------------- #
# The table in docs/.
# --------------------------------------------------------------------------- #


def _committed() -> dict[tuple[str, str], tuple[str, ...]]:
    rows = {}
    for line in DOC.read_text().splitlines() if DOC.exists() else []:
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) == len(COLUMNS) and cells[0] in KINDS:
            rows[(cells[0], cells[1])] = tuple(cells)
    return rows


def _render(rows) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [
        "# Fault injection: damaged caches and how they recover",
        "",
        "Written by `tests/test_faults.py` (`MLSAFETY_WRITE_FAULTS=1 .venv/bin/python -m pytest",
        "tests/test_faults.py`) and checked by it on every `make test`: each row is what",
        "the test observed when it damaged that cache that way, on the smoke profile's",
        "files. `<data root>` is `$MLSAFETY_DATA`, `<user cache>` is `$XDG_CACHE_HOME/mlsafety`.",
        "The read-only rows run as uid 65534 on a data root owned by root.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for kind in KINDS:
        for fault in FAULTS:
            lines.append("| " + " | ".join(cell(c) for c in rows[(kind, fault)]) + " |")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module", autouse=True)
def fault_table():
    yield
    if WRITE and len(OBSERVED) == len(KINDS) * len(FAULTS):
        DOC.write_text(_render(OBSERVED))


def test_the_table_covers_every_cache_and_fault():
    if WRITE:
        pytest.skip("rewriting docs/fault_injection.md")
    committed = _committed()
    assert set(committed) == {(k, f) for k in KINDS for f in FAULTS}, (
        f"{DOC} lacks rows or has extra ones; rewrite it with "
        f"MLSAFETY_WRITE_FAULTS=1 .venv/bin/python -m pytest tests/test_faults.py"
    )


def record(kind: str, fault: str, doctor: str, lab: str, repaired: str) -> None:
    row = (kind, fault, doctor, lab, repaired, "yes")
    OBSERVED[(kind, fault)] = row
    if WRITE:
        return
    committed = _committed().get((kind, fault))
    assert committed == row, (
        f"{DOC} says {committed} for {kind} / {fault}, but the test observed {row}; if the "
        f"change is meant, rewrite it: MLSAFETY_WRITE_FAULTS=1 .venv/bin/python -m pytest "
        f"tests/test_faults.py"
    )


def _norm(text: str, root: Path, cache: Path) -> str:
    """A message with this run's folders, keys and hashes replaced by names."""
    text = text.strip().replace(str(cache), "<user cache>").replace(str(root), "<data root>")
    text = re.sub(r"-[0-9a-f]{16}\.pt", "-<key>.pt", text)
    text = re.sub(r"[0-9a-f]{12}\.\.\.", "<sha256>...", text)
    return re.sub(r"\s+", " ", text)


# --------------------------------------------------------------------------- #
# Shared set-up: a pristine smoke data root, copied for every case.
# --------------------------------------------------------------------------- #


def _tree_digest(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in skip
    }


@pytest.fixture(scope="module")
def labs_before():
    return _tree_digest(ROOT / "labs")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A data root holding the offline digits, their tensor caches and the
    standard_cnn checkpoint, built by the commands the README names."""
    from mlsafety.cli import main

    base = tmp_path_factory.mktemp("pristine")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLSAFETY_DATA", str(base / "data"))
        mp.setenv("XDG_CACHE_HOME", str(base / "cache"))
        assert main(["data", "--profile", "smoke", "--quiet"]) == 0
        assert main(["assets", "standard_cnn", "--profile", "smoke"]) == 0
    return base / "data"


@pytest.fixture
def root(pristine, tmp_path, monkeypatch, labs_before):
    """A private copy of the pristine data root (modification times kept)."""
    data = tmp_path / "data"
    shutil.copytree(pristine, data)
    monkeypatch.setenv("MLSAFETY_DATA", str(data))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    yield data
    assert _tree_digest(ROOT / "labs") == labs_before, "a repair touched files under labs/"


def _cache(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "mlsafety"


def _tensor_file(data: Path) -> Path:
    return next((data / "smoke" / "tensors").glob("digits-train-*.pt"))


TARGETS = {
    "offline digits": lambda data: data / "smoke" / "MNIST" / "raw" / "train-images-idx3-ubyte",
    "tensor cache": _tensor_file,
    "checkpoint": lambda data: data / "checkpoints" / "smoke" / "standard_cnn.pt",
}


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


class Payload:
    """What a malicious pickle carries: unpickling it creates ``marker`` (and
    nothing else); the tests assert the marker never appears."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


_KILLED_WRITER = """
import importlib, os, signal, sys
from pathlib import Path

module_name, name, run = sys.argv[1:4]
module = importlib.import_module(module_name)
original = getattr(module, name)

def half_then_die(*args, **kwargs):
    original(*args, **kwargs)
    for a in args:  # a file argument: cut it, as an interrupted write leaves it
        if isinstance(a, (str, Path)) and Path(a).is_file():
            Path(a).write_bytes(Path(a).read_bytes()[: Path(a).stat().st_size // 2])
    os.kill(os.getpid(), signal.SIGKILL)

setattr(module, name, half_then_die)
exec(run)
"""


def _killed_mid_write(target: tuple[str, str], run: str) -> None:
    """Run the statements ``run`` in a fresh Python process (with this test's
    data root and cache) whose ``target`` (a (module, name) pair naming a
    writing function) writes half of its output and is then killed by SIGKILL:
    no cleanup handler runs, as when a machine loses power. A fresh process,
    not a fork: a forked child of a process whose torch and tqdm threads hold
    locks can wait on them for ever."""
    done = subprocess.run(
        [str(BIN / "python"), "-c", _KILLED_WRITER, *target, run],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == -signal.SIGKILL, (
        f"the writer was meant to die by SIGKILL mid-write, exit status {done.returncode}: "
        f"{done.stderr[-2000:]}"
    )


def _age(folder: Path, prefix: str) -> list[Path]:
    """Leftovers of a killed writer in ``folder``, made two hours old."""
    found = [p for p in folder.glob(f"{prefix}*")]
    for path in found:
        os.utime(path, (time.time() - 7200, time.time() - 7200))
    return found


def _usable(state: str) -> bool:
    """Verified, or (a checkpoint) intact and safe but built here with other
    bytes than the lock's: CPU builds are reproducible on one CPU type only,
    and `make doctor` warns about it without calling it verified."""
    return state == "verified" or state.startswith("differs from the lock")


def _state(line: str, profile: str = "smoke") -> tuple[str, list[str]]:
    """`make doctor`'s state for asset ``line`` ("dataset digits") and its problems."""
    from mlsafety import data
    from mlsafety.doctor import diagnose

    data._NOTED.clear()  # each command is its own process: its notes start afresh
    report = diagnose(profile, port=1)
    data._NOTED.clear()
    state = dict(report.lines)[line].split("  (")[0]
    name = line.split()[-1]
    mentions = [p for p in report.problems + report.warnings if f" {name} " in f" {p} "]
    return state, mentions


# --------------------------------------------------------------------------- #
# The offline digits, their tensor caches and a checkpoint.
# --------------------------------------------------------------------------- #

LOCAL_CASES = [(k, f) for k in KINDS[:3] for f in FAULTS[:4]]


# a repair rebuilds what it needs (up to every smoke checkpoint): minutes on a busy machine
@pytest.mark.timeout(900)
@pytest.mark.parametrize(("kind", "fault"), LOCAL_CASES, ids=[f"{k}-{f}" for k, f in LOCAL_CASES])
def test_a_damaged_cache_is_detected_reported_and_repaired(
    kind, fault, root, pristine, tmp_path, capsys
):
    from mlsafety.cli import main
    from mlsafety.data import load_tensors

    marker = tmp_path / "payload-ran"
    target = TARGETS[kind](root)
    if kind == "offline digits" and fault.startswith("malicious"):
        target = root / "smoke" / "cifar-10-batches-py" / "data_batch_1"
    line = "checkpoint standard_cnn" if kind == "checkpoint" else "dataset digits"
    command = ["assets", "standard_cnn"] if kind == "checkpoint" else ["data", "--quiet"]
    make = "make assets PROFILE=smoke" if kind == "checkpoint" else "make data PROFILE=smoke"
    want = pristine / target.relative_to(root)

    def inject():
        if fault == "truncated":
            _truncate(target)
        elif fault == "a byte flipped":
            _flip(target)
        elif fault == "writer killed mid-write":
            _kill_writer(kind, root)
        else:
            _plant_payload(kind, root, marker)

    def use():
        """What a lab does with this cache; returns the bytes it ends up on."""
        if kind == "checkpoint":
            recipes.load("standard_cnn", "smoke")
            return recipes.find("standard_cnn", "smoke")
        if kind == "offline digits" and fault.startswith("malicious"):
            load_tensors("digits-cifar", train=True)
            return target
        load_tensors("digits", train=True)
        return target

    # 1. detected by `make doctor`, in one line naming the file and the command
    inject()
    capsys.readouterr()
    state, mentions = _state(line)
    absent = fault == "writer killed mid-write"  # a killed first write leaves nothing in place
    if absent and kind == "tensor cache":  # an absent cache is built on use: nothing to fix
        assert state == "verified" and not mentions, (state, mentions)
        doctor = "verified: the cache is absent, not half-written"
    else:
        assert state == "missing" if absent else state.startswith("corrupt"), state
        assert mentions and all(make in m and "\n" not in m for m in mentions), mentions
        assert all(target.name in m or absent for m in mentions), mentions
        doctor = _norm(state, root, _cache(tmp_path))

    # 2. at lab time: rebuilt by itself, one line on stderr
    capsys.readouterr()
    used = use()
    err = capsys.readouterr().err
    assert sha256_file(used) == sha256_file(want), f"the {kind} in use is not the pristine one"
    assert not marker.exists(), "unpickling ran the payload"
    if absent:
        assert "was damaged" not in err and "not usable" not in err, err
        lab = "written on first use"
    else:
        notes = [n for n in err.splitlines() if n.startswith("mlsafety:")]
        assert len(notes) == 1, f"expected one line saying what was rebuilt, got {err!r}"
        assert target.name in notes[0] and "\n" not in notes[0], notes
        lab = "rebuilt: " + _norm(notes[0].removeprefix("mlsafety: "), root, _cache(tmp_path))
    assert _usable(_state(line)[0])

    # 3. damaged again, repaired by the documented command alone
    if kind == "tensor cache" or fault != "writer killed mid-write":
        inject()
    else:  # the killed writer left its folder to a fresh start
        _kill_writer(kind, root)
    leftovers = _age(target.parent, f".{target.name}.") + _age(root, ".smoke-")
    assert main([*command, "--profile", "smoke"]) == 0
    capsys.readouterr()
    assert _usable(_state(line)[0]), f"`{make}` did not repair the {kind}"
    assert sha256_file(target) == sha256_file(want)
    assert not marker.exists(), "unpickling ran the payload"
    assert not [p for p in leftovers if p.exists()], f"a killed writer's files remain: {leftovers}"
    record(kind, fault, doctor, lab, f"`{make}`")


def _kill_writer(kind: str, data: Path) -> None:
    """The writer of ``kind`` killed mid-write, on its first write."""
    if kind == "offline digits":
        shutil.rmtree(data / "smoke")
        _killed_mid_write(
            ("mlsafety.data", "_write_cifar_format"),
            "from mlsafety.data import write_smoke_data; write_smoke_data()",
        )
        assert list(data.glob(".smoke-*")), "the killed write left no staging folder"
    elif kind == "tensor cache":
        path = _tensor_file(data)
        path.unlink()
        Path(f"{path}.json").unlink()
        _killed_mid_write(
            ("torch", "save"),
            "from mlsafety.data import load_tensors; load_tensors('digits', train=True)",
        )
        assert list(path.parent.glob(f".{path.name}.*")), "the killed write left nothing"
    else:
        path = data / "checkpoints" / "smoke" / "standard_cnn.pt"
        path.unlink()
        Path(f"{path}.json").unlink()
        _killed_mid_write(
            ("torch", "save"),
            "from mlsafety import recipes; recipes.ensure('standard_cnn', 'smoke')",
        )
        assert list(path.parent.glob(f".{path.name}.*")), "the killed write left nothing"


def _plant_payload(kind: str, data: Path, marker: Path) -> None:
    """Replace the cache with a pickle that would create ``marker`` when
    unpickled, and rewrite its record so that the sha256 and size match."""
    if kind == "offline digits":
        batch = data / "smoke" / "cifar-10-batches-py" / "data_batch_1"
        batch.write_bytes(pickle.dumps({"data": [], "labels": [], "x": Payload(marker)}))
        manifest_file = data / "smoke" / "MANIFEST.json"
        manifest = json.loads(manifest_file.read_text())
        manifest["files"]["cifar-10-batches-py/data_batch_1"] = {
            "sha256": sha256_file(batch),
            "md5": hashlib.md5(batch.read_bytes(), usedforsecurity=False).hexdigest(),
        }
        manifest_file.write_text(json.dumps(manifest, indent=2) + "\n")
        return
    if kind == "tensor cache":
        path = _tensor_file(data)
        torch.save({"data": torch.zeros(1), "targets": torch.zeros(1), "x": Payload(marker)}, path)
        sidecar = Path(f"{path}.json")
    else:
        path = data / "checkpoints" / "smoke" / "standard_cnn.pt"
        payload = {"class": "SmallCNN", "config": {}, "state_dict": {}, "x": Payload(marker)}
        torch.save(payload, path)
        sidecar = Path(f"{path}.json")
    record_ = json.loads(sidecar.read_text())
    record_.update(sha256=sha256_file(path), size=path.stat().st_size)
    sidecar.write_text(json.dumps(record_))


# --------------------------------------------------------------------------- #
# A published dataset, fetched from a local server.
# --------------------------------------------------------------------------- #


def _cifar_tgz(smoke: Path) -> bytes:
    """The digits' CIFAR-10-format batches as a .tar.gz shaped like CIFAR-10's."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(smoke / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return buffer.getvalue()


@pytest.fixture
def published(server, pristine, monkeypatch):
    """A manifest holding one published dataset, ``cifar10`` (profile cpu),
    served from 127.0.0.1 in CIFAR-10's layout."""
    body = _cifar_tgz(pristine / "smoke")
    remote = RemoteFile(
        "cifar-10-python.tar.gz",
        (server.serve("cifar-10-python.tar.gz", body),),
        len(body),
        hashlib.sha256(body).hexdigest(),
    )
    entry = Dataset(
        "cifar10",
        "cifar10",
        "test",
        "http://127.0.0.1/",
        "cifar-10-batches-py",
        ("cpu",),
        (),
        "tar",
        files=(remote,),
    )
    monkeypatch.setattr(assets, "manifest", lambda path=None: Manifest({"cifar10": entry}, {}))
    return entry


@pytest.mark.timeout(300)
@pytest.mark.parametrize("fault", FAULTS[:4])
def test_a_damaged_published_dataset_is_detected_reported_and_repaired(
    fault, published, root, tmp_path, capsys
):
    from mlsafety.assets import require_dataset
    from mlsafety.cli import main

    marker = tmp_path / "payload-ran"
    assert main(["data", "--profile", "cpu", "--quiet"]) == 0
    folder = root / "cifar-10-batches-py"
    want = _tree_digest(folder, skip=(assets.STAMP,))  # the stamp records times too
    target = folder / "data_batch_1"

    def inject():
        if fault == "truncated":
            _truncate(target)
        elif fault == "a byte flipped":
            _flip(target)
        elif fault == "writer killed mid-write":
            shutil.rmtree(folder)
            original = assets._unpack

            def unpack_then_die(*args):
                original(*args)
                _truncate(next(Path(args[3]).glob("data_batch_*")))
                os.kill(os.getpid(), signal.SIGKILL)

            pid = os.fork()
            if pid == 0:
                try:
                    assets._unpack = unpack_then_die
                    with contextlib.redirect_stderr(io.StringIO()):
                        assets.fetch_dataset("cifar10", progress=False)
                finally:
                    os._exit(3)
            assert os.WTERMSIG(os.waitpid(pid, 0)[1]) == signal.SIGKILL
            assert list(root.glob(".staging-cifar10-*")), "the killed unpack left nothing"
        else:
            target.write_bytes(pickle.dumps({"data": [], "labels": [], "x": Payload(marker)}))
            stamp = json.loads((folder / assets.STAMP).read_text())
            stamp["files"]["data_batch_1"] = {
                "size": target.stat().st_size,
                "mtime_ns": target.stat().st_mtime_ns,
                "sha256": sha256_file(target),
            }
            (folder / assets.STAMP).write_text(json.dumps(stamp))

    inject()
    capsys.readouterr()
    state, mentions = _state("dataset cifar10", "cpu")
    assert state != "verified", f"make doctor calls a {fault} dataset verified"
    assert mentions and all("make data PROFILE=cpu" in m for m in mentions), mentions
    assert all(str(folder) in m for m in mentions), mentions
    doctor = _norm(state, root, _cache(tmp_path))

    with pytest.raises(SetupError) as err:  # nothing downloads at lab time: it stops
        require_dataset("cifar10")
    message = str(err.value)
    assert "\n" not in message and str(folder) in message and "make data PROFILE=cpu" in message
    lab = "stops: " + _norm(message, root, _cache(tmp_path))

    leftovers = _age(root, ".staging-")
    assert main(["data", "--profile", "cpu", "--quiet"]) == 0
    capsys.readouterr()
    assert _state("dataset cifar10", "cpu")[0] == "verified"
    assert _tree_digest(folder, skip=(assets.STAMP,)) == want, "not the published files"
    assert not marker.exists(), "unpickling ran the payload"
    assert not [p for p in leftovers if p.exists()], f"a killed unpack's files remain: {leftovers}"
    record("published dataset", fault, doctor, lab, "`make data PROFILE=cpu`")


# --------------------------------------------------------------------------- #
# A read-only data root owned by someone else, as baked into the images.
# --------------------------------------------------------------------------- #

AS_NOBODY = textwrap.dedent(
    """
    import contextlib, io, json, os, shutil, sys
    from pathlib import Path
    from mlsafety import data as data_module, recipes
    from mlsafety.cli import main
    from mlsafety.data import load_tensors
    from mlsafety.doctor import diagnose

    kind, line, profile = sys.argv[1:4]
    out = {}

    def state():  # each step is its own command in real life: notes start afresh
        data_module._NOTED.clear()
        with contextlib.redirect_stderr(io.StringIO()):
            got = dict(diagnose(profile, port=1).lines)[line]
        data_module._NOTED.clear()
        return got

    out["doctor"] = state()
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            if kind == "checkpoint":
                out["used"] = str(recipes.ensure("standard_cnn", "smoke", quiet=True))
                recipes.load("standard_cnn", "smoke")
            elif kind == "published dataset":
                from mlsafety.assets import require_dataset
                require_dataset("cifar10")
            else:
                load_tensors("digits", train=True)
        except Exception as exc:
            out["error"] = str(exc)
    out["lab"] = err.getvalue()
    if kind != "published dataset":  # undo the lab's own repair: the command must do it
        shutil.rmtree(Path(os.environ["XDG_CACHE_HOME"]) / "mlsafety")
    command = ["assets", "standard_cnn"] if kind == "checkpoint" else ["data", "--quiet"]
    data_module._NOTED.clear()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        out["repair"] = main([*command, "--profile", profile])
    out["repair_err"] = err.getvalue()[len(out["lab"]):]
    out["after"] = state()
    print(json.dumps(out))
    """
)


def _nobody_can_run() -> bool:
    return os.geteuid() == 0 and shutil.which("setpriv") is not None


@pytest.mark.timeout(600)
@pytest.mark.skipif(not _nobody_can_run(), reason="needs root and setpriv to drop privileges")
@pytest.mark.parametrize("kind", KINDS)
def test_a_read_only_root_of_another_owner_is_repaired_into_the_user_cache(
    kind, pristine, server, labs_before
):
    fault = "read-only root, other owner"
    base = Path(tempfile.mkdtemp(prefix="mlsafety-ro-"))
    try:
        base.chmod(0o755)
        data, home = base / "data", base / "home"
        shutil.copytree(pristine, data)
        home.mkdir()
        os.chown(home, NOBODY, NOBODY)
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(home),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "MLSAFETY_DATA": str(data),
            "PYTHONPATH": str(ROOT / "src"),
            "OMP_NUM_THREADS": "1",
        }
        line, profile, make = "dataset digits", "smoke", "make data PROFILE=smoke"
        if kind == "offline digits":
            target = TARGETS[kind](data)
        elif kind == "tensor cache":
            target = _tensor_file(data)
        elif kind == "checkpoint":
            target = TARGETS[kind](data)
            line, make = "checkpoint standard_cnn", "make assets PROFILE=smoke"
        else:
            repo = _repo_with_served_cifar(base, server, pristine)
            env["MLSAFETY_REPO"] = str(repo)
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("MLSAFETY_DATA", str(data))
                mp.setenv("MLSAFETY_REPO", str(repo))
                assets.manifest.cache_clear()
                assets.fetch_dataset("cifar10", progress=False)
                assets.manifest.cache_clear()
            target = data / "cifar-10-batches-py" / "data_batch_1"
            line, profile, make = "dataset cifar10", "cpu", "make data PROFILE=cpu"
        _truncate(target)
        for path in [data, *data.rglob("*")]:  # root's, and not writable by anyone else
            path.chmod(0o755 if path.is_dir() else 0o644)
        before = _tree_digest(data)
        result = subprocess.run(
            [
                "setpriv",
                f"--reuid={NOBODY}",
                f"--regid={NOBODY}",
                "--clear-groups",
                str(BIN / "python"),
                "-c",
                AS_NOBODY,
                kind,
                line,
                profile,
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=540,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        out = json.loads(result.stdout.strip().splitlines()[-1])
        cache = home / ".cache" / "mlsafety"
        assert _tree_digest(data) == before, "the read-only data root was written"
        assert not out["doctor"].startswith("verified"), out
        assert _usable(out["after"].split("  (")[0]), f"`{make}` did not repair it: {out}"
        repaired_in = (
            [str(p) for p in (cache / "tensors").glob(target.name)]
            if kind == "tensor cache"
            else [out["after"]]
        )
        assert any(str(cache) in r for r in repaired_in), (
            f"the repair is not in the user cache: {out}"
        )
        assert out["repair"] == 0, out
        doctor = _norm(out["doctor"].split("  (")[0], data, cache)
        if kind == "published dataset":
            assert "make data PROFILE=cpu" in out["error"] and "\n" not in out["error"], out
            lab = "stops: " + _norm(out["error"], data, cache)
        else:
            notes = [n for n in out["lab"].splitlines() if n.startswith("mlsafety:")]
            assert len(notes) == 1 and ("user cache" in notes[0] or str(cache) in notes[0]), out
            lab = "rebuilt: " + _norm(notes[0].removeprefix("mlsafety: "), data, cache)
        notes = [n for n in out["repair_err"].splitlines() if n.startswith("mlsafety:")]
        assert notes and ("user cache" in notes[0] or str(cache) in notes[0]), (
            f"`{make}` did not say where the repair went: {out}"
        )
        repaired = f"`{make}`: " + _norm(notes[0].removeprefix("mlsafety: "), data, cache)
        assert _tree_digest(ROOT / "labs") == labs_before, "a repair touched files under labs/"
        record(kind, fault, doctor, lab, repaired)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _repo_with_served_cifar(base: Path, server, pristine: Path) -> Path:
    """A checkout whose assets manifest lists one dataset: the digits' CIFAR-10
    batches, each served from 127.0.0.1 and copied as it is (no archive: the
    unprivileged run may use another Python, whose tarfile need not have
    extraction filters)."""
    repo = base / "repo"
    (repo / "labs").mkdir(parents=True)
    (repo / "environments").mkdir()
    toml = textwrap.dedent(
        """
        [datasets.cifar10]
        title = "CIFAR-10's batches, served locally"
        licence = "test"
        homepage = "http://127.0.0.1/"
        layout = "copy"
        folder = "cifar-10-batches-py"
        profiles = ["cpu"]
        """
    )
    for path in sorted((pristine / "smoke" / "cifar-10-batches-py").iterdir()):
        body = path.read_bytes()
        toml += textwrap.dedent(
            f"""
            [[datasets.cifar10.files]]
            name = "{path.name}"
            urls = ["{server.serve(path.name, body)}"]
            size = {len(body)}
            sha256 = "{hashlib.sha256(body).hexdigest()}"
            """
        )
    (repo / "environments" / "assets.toml").write_text(toml)
    for path in [base, *base.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return repo


@pytest.mark.timeout(120)
def test_doctor_prints_its_whole_report_whatever_breaks(root, monkeypatch, capsys):
    from mlsafety.cli import main

    _truncate(TARGETS["offline digits"](root))
    assert main(["doctor", "--profile", "smoke", "--port", "1"]) == 1
    out = capsys.readouterr().out
    for line in ("dataset digits", "checkpoint trojaned_cnn", "jupyter port", "user", "problem(s)"):
        assert line in out, f"the report stopped before {line!r}:\n{out}"
    assert "dataset digits is corrupt: MNIST/raw/train-images-idx3-ubyte" in out, out

    assert main(["data", "--profile", "smoke", "--quiet"]) == 0
    checkpoint_state = recipes.checkpoint_state

    def broken(name, profile=None):
        if name == "adversarial_cnn":
            raise OSError("Input/output error")
        return checkpoint_state(name, profile)

    monkeypatch.setattr(recipes, "checkpoint_state", broken)
    capsys.readouterr()
    assert main(["doctor", "--profile", "smoke", "--port", "1"]) == 1
    out = capsys.readouterr().out
    assert re.search(r"adversarial_cnn +corrupt: could not be checked \(Input/output error\)", out)
    for line in ("checkpoint mixup_cnn", "checkpoint trojaned_cnn", "jupyter port", "user"):
        assert line in out, f"the report stopped before {line!r}:\n{out}"
