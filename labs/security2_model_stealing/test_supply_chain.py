"""Specs for supply_chain.py: reading what a pickle would import without
running it, the allowlist scanner, hash-pinned loading and the demonstration
payload.

Safe by construction: no spec unpickles an untrusted file in this process.
The corpus below is built here from harmless objects and hand-written opcodes,
and every file whose globals are not all safe is only ever read with
`pickletools` (by your code and by these specs). The one spec that watches the
payload act runs it in a separate Python process inside a temporary folder,
where all it can do is create an empty marker file.

Run them with `make test-security2` (add IMPL=solution to see the reference pass).
Every failure message starts with the graded function it is about.
"""

import collections
import datetime
import hashlib
import os
import pickle
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from mlsafety.grading import graded

GRADED = {
    "pickle_globals": "core",
    "scan_checkpoint": "core",
    "load_verified": "core",
    "make_demo_payload": "core",
}
pytestmark = pytest.mark.timeout(30)

TENSOR = {("torch._utils", "_rebuild_tensor_v2"), ("collections", "OrderedDict")}


def state_dict():
    return collections.OrderedDict(weight=torch.arange(6.0).view(2, 3), bias=torch.zeros(2))


def protocol0_inst():
    # MARK, INST 'collections OrderedDict', STOP: protocol 0's old way to build an object
    return b"(icollections\nOrderedDict\n."


def reduce_chain():
    # getattr(collections.OrderedDict, "fromkeys")(["a"]): two REDUCEs, the second on the
    # result of the first, spelled with protocol 4's STACK_GLOBAL and a memoised string
    return (
        b"\x80\x04\x8c\x08builtins\x94\x8c\x07getattr\x94\x93\x94"
        b"\x8c\x0bcollections\x94\x8c\x0bOrderedDict\x94\x93\x94"
        b"\x8c\x08fromkeys\x94\x86\x94R\x94]\x94\x8c\x01a\x94a\x85\x94R\x94."
    )


def memo_stack_global():
    # the module string is pushed once, memoised, and fetched again with BINGET
    # for a second STACK_GLOBAL: a scanner must follow the memo
    return (
        b"\x80\x04\x8c\x08datetime\x94\x8c\x04date\x94\x93\x94"
        b"h\x00\x8c\ttimedelta\x94\x93\x94\x86\x94."
    )


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """name -> (path, the globals it imports). Built from harmless objects only."""
    root = tmp_path_factory.mktemp("corpus")
    files = {}

    def add(name, data, expected):
        path = root / name
        path.write_bytes(data) if isinstance(data, bytes) else torch.save(data, path)
        files[name] = (path, set(expected))

    add("state_dict.pt", state_dict(), TENSOR | {("torch", "FloatStorage")})
    add(
        "labels.pt",
        {"y": torch.arange(3)},
        TENSOR | {("torch", "LongStorage")},
    )
    legacy = root / "legacy.pt"
    torch.save(state_dict(), legacy, _use_new_zipfile_serialization=False)
    files["legacy.pt"] = (legacy, None)  # its globals: whatever torch's legacy format writes
    for protocol in range(6):
        data = pickle.dumps({"when": datetime.date(2024, 1, 2), "n": [1, 2]}, protocol=protocol)
        # up to protocol 2, bytes (the date's state) are rebuilt by _codecs.encode
        codecs = {("_codecs", "encode")} if protocol < 3 else set()
        add(f"date_p{protocol}.pkl", data, {("datetime", "date")} | codecs)
    add("inst_p0.pkl", protocol0_inst(), {("collections", "OrderedDict")})
    add(
        "reduce_chain.pkl",
        reduce_chain(),
        {("builtins", "getattr"), ("collections", "OrderedDict")},
    )
    add(
        "memo_stack_global.pkl",
        memo_stack_global(),
        {("datetime", "date"), ("datetime", "timedelta")},
    )
    # two pickles one after the other: the second one must not be missed
    nested = pickle.dumps({"a": 1}, protocol=2) + pickle.dumps(datetime.timedelta(1), protocol=4)
    add("two_pickles.pkl", nested, {("datetime", "timedelta")})
    # a zip checkpoint with an extra pickle member besides data.pkl
    extra = root / "extra_member.pt"
    torch.save(state_dict(), extra)
    with zipfile.ZipFile(extra, "a") as archive:
        archive.writestr(
            "extra_member/extra.pkl", pickle.dumps(datetime.date(2020, 1, 1), protocol=4)
        )
    files["extra_member.pt"] = (extra, TENSOR | {("torch", "FloatStorage"), ("datetime", "date")})
    return files


@pytest.fixture
def no_unpickling(monkeypatch):
    """Any attempt to unpickle fails the spec."""

    def refuse(*args, **kwargs):
        pytest.fail("unpickled a file: read its opcodes with pickletools instead", pytrace=False)

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(torch, "load", refuse)


def names(found):
    return sorted(f"{m}.{n}" for m, n in found)


# --------------------------------------------------------------------------- #
# pickle_globals
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "name",
    [
        "state_dict.pt",
        "labels.pt",
        *[f"date_p{p}.pkl" for p in range(6)],
        "inst_p0.pkl",
        "reduce_chain.pkl",
        "memo_stack_global.pkl",
        "two_pickles.pkl",
        "extra_member.pt",
    ],
)
@graded("pickle_globals")
def test_pickle_globals_on_the_corpus(supply_chain, corpus, no_unpickling, name):
    path, expected = corpus[name]
    found = supply_chain.pickle_globals(path)
    assert isinstance(found, list) and all(isinstance(g, tuple) and len(g) == 2 for g in found), (
        f"pickle_globals: expected a list of (module, name) tuples, got {found!r}"
    )
    hints = {
        "memo": "follow the memo (MEMOIZE / PUT, then GET / BINGET)",
        "two": "keep reading after a STOP: another pickle may follow",
        "extra": "read every *.pkl member of the zip",
        "_p4": "protocol 4 and 5 use STACK_GLOBAL: module and name are the two strings pushed before it",
        "_p5": "protocol 4 and 5 use STACK_GLOBAL: module and name are the two strings pushed before it",
        "inst": "INST imports its class like GLOBAL",
        "reduce": "STACK_GLOBAL takes the two strings pushed before it",
    }
    hint = next((h for k, h in hints.items() if k in name), "")
    assert set(found) == expected, (
        f"pickle_globals: {name} imports {names(expected)}, found {names(found)}"
        + (f"; {hint}" if hint else "")
    )
    assert len(found) == len(set(found)), f"pickle_globals: listed a global twice: {names(found)}"


@graded("pickle_globals")
def test_pickle_globals_keeps_first_appearance_order(supply_chain, corpus):
    path, _ = corpus["reduce_chain.pkl"]
    found = supply_chain.pickle_globals(path)
    assert found == [("builtins", "getattr"), ("collections", "OrderedDict")], (
        f"pickle_globals: expected the globals in the order they appear, got {found}"
    )


@graded("pickle_globals")
def test_pickle_globals_reads_torch_legacy_files(supply_chain, corpus, no_unpickling):
    path, _ = corpus["legacy.pt"]
    found = set(supply_chain.pickle_globals(path))
    assert ("torch._utils", "_rebuild_tensor_v2") in found and (
        "collections",
        "OrderedDict",
    ) in found, (
        f"pickle_globals: torch's legacy format is several pickles then raw data; found only "
        f"{names(found)}"
    )


@graded("pickle_globals")
def test_pickle_globals_reports_an_unknown_stack_global(supply_chain, tmp_path):
    # STACK_GLOBAL whose operands are not two strings (here: two ints)
    path = tmp_path / "odd.pkl"
    path.write_bytes(b"\x80\x04K\x01K\x02\x93.")
    assert supply_chain.pickle_globals(path) == [("?", "?")], (
        "pickle_globals: a STACK_GLOBAL whose operands are not two known strings is ('?', '?')"
    )


@graded("pickle_globals")
def test_pickle_globals_never_runs_the_payload(supply_chain, tmp_path, no_unpickling):
    path = tmp_path / "payload.pt"
    marker = tmp_path / "MARKER"
    torch_save_payload(path, marker)
    found = supply_chain.pickle_globals(path)
    assert OPEN in found, f"pickle_globals: missed {names([OPEN])} in the payload: {names(found)}"
    assert not marker.exists(), "pickle_globals: running the payload created the marker file"


@graded("pickle_globals")
def test_pickle_globals_rejects_a_path_that_is_not_a_file(supply_chain, tmp_path):
    with pytest.raises(FileNotFoundError):
        supply_chain.pickle_globals(tmp_path)
    with pytest.raises(FileNotFoundError):
        supply_chain.pickle_globals(tmp_path / "missing.pt")


@graded("pickle_globals")
def test_pickle_globals_rejects_a_zip_that_is_not_a_checkpoint(supply_chain, tmp_path):
    path = tmp_path / "notes.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "hello")
    with pytest.raises(ValueError):
        supply_chain.pickle_globals(path)


@graded("pickle_globals")
def test_pickle_globals_rejects_a_file_that_is_not_a_pickle(supply_chain, tmp_path):
    path = tmp_path / "text.pt"
    path.write_bytes(b"this is not a pickle at all\n")
    with pytest.raises(ValueError):
        supply_chain.pickle_globals(path)


# where Python keeps open, as a pickle names it: ("io", "open") up to Python 3.11,
# ("_io", "open") from 3.12
OPEN = (open.__module__, "open")


def torch_save_payload(path, marker):
    """The specs' own payload, written like the lab's: open(marker, "a") on unpickling."""

    class Note:
        def __reduce__(self):
            return open, (str(marker), "a")

    torch.save({"state_dict": state_dict(), "note": Note()}, path)


# --------------------------------------------------------------------------- #
# scan_checkpoint
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("name", ["state_dict.pt", "labels.pt", "legacy.pt"])
@graded("scan_checkpoint")
def test_scan_checkpoint_passes_state_dicts(supply_chain, corpus, no_unpickling, name):
    path, _ = corpus[name]
    scan = supply_chain.scan_checkpoint(path)
    assert scan.safe is True and scan.offending == [], (
        f"scan_checkpoint: {name} is a plain state dict but was flagged for {scan.offending}"
    )
    assert scan.globals == supply_chain.pickle_globals(path), (
        "scan_checkpoint: globals should be pickle_globals(path)"
    )


@graded("scan_checkpoint")
def test_scan_checkpoint_passes_the_toolkits_checkpoints(supply_chain, tmp_path):
    from mlsafety.checkpoints import save_checkpoint
    from mlsafety.models import SmallCNN

    path = tmp_path / "cnn.pt"
    save_checkpoint(SmallCNN(), path)
    scan = supply_chain.scan_checkpoint(path)
    assert scan.safe, f"scan_checkpoint: flagged a checkpoint of the toolkit for {scan.offending}"


@pytest.mark.parametrize(
    "name,offending",
    [
        ("reduce_chain.pkl", [("builtins", "getattr")]),
        ("memo_stack_global.pkl", [("datetime", "date"), ("datetime", "timedelta")]),
        ("two_pickles.pkl", [("datetime", "timedelta")]),
        ("extra_member.pt", [("datetime", "date")]),
    ],
)
@graded("scan_checkpoint")
def test_scan_checkpoint_flags_what_is_not_allowed(
    supply_chain, corpus, no_unpickling, name, offending
):
    path, _ = corpus[name]
    scan = supply_chain.scan_checkpoint(path)
    assert scan.safe is False and scan.offending == offending, (
        f"scan_checkpoint: {name} should be unsafe because of {names(offending)}; got safe="
        f"{scan.safe}, offending={scan.offending}"
    )


@graded("scan_checkpoint")
def test_scan_checkpoint_flags_the_payload_without_running_it(
    supply_chain, tmp_path, no_unpickling
):
    path, marker = tmp_path / "payload.pt", tmp_path / "MARKER"
    torch_save_payload(path, marker)
    scan = supply_chain.scan_checkpoint(path)
    assert not scan.safe and scan.offending == [OPEN], (
        f"scan_checkpoint: the payload calls {names([OPEN])}; got safe={scan.safe}, "
        f"offending={scan.offending}"
    )
    assert not marker.exists(), "scan_checkpoint: running the payload created the marker file"


@graded("scan_checkpoint")
def test_scan_checkpoint_uses_the_allowlist_it_is_given(supply_chain, corpus):
    path, expected = corpus["memo_stack_global.pkl"]
    scan = supply_chain.scan_checkpoint(path, allowed=expected)
    assert scan.safe and scan.offending == [], (
        f"scan_checkpoint: with allowed={sorted(expected)} the file is safe; got {scan}"
    )
    scan = supply_chain.scan_checkpoint(corpus["state_dict.pt"][0], allowed=set())
    assert not scan.safe and set(scan.offending) == corpus["state_dict.pt"][1], (
        f"scan_checkpoint: with an empty allowlist every global offends; got {scan}"
    )


@graded("scan_checkpoint")
def test_scan_checkpoint_rejects_bad_paths_and_files(supply_chain, tmp_path):
    with pytest.raises(FileNotFoundError):
        supply_chain.scan_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError):
        supply_chain.scan_checkpoint(tmp_path)
    path = tmp_path / "junk.pt"
    path.write_bytes(b"\x00\x01 not a pickle")
    with pytest.raises(ValueError):
        supply_chain.scan_checkpoint(path)


# --------------------------------------------------------------------------- #
# load_verified
# --------------------------------------------------------------------------- #


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class LoadSpy:
    """Stands in for torch.load: records every call, then loads with weights_only=True."""

    def __init__(self, real):
        self.real, self.calls = real, []

    def __call__(self, f, *args, **kwargs):
        self.calls.append((f, kwargs))
        kwargs["weights_only"] = True  # whatever was asked, the spec never loads unsafely
        return self.real(f, *args, **kwargs)


@pytest.fixture
def load_spy(monkeypatch):
    spy = LoadSpy(torch.load)
    monkeypatch.setattr(torch, "load", spy)
    monkeypatch.setattr(
        pickle, "load", lambda *a, **k: pytest.fail("load_verified: used pickle.load")
    )
    monkeypatch.setattr(
        pickle, "loads", lambda *a, **k: pytest.fail("load_verified: used pickle.loads")
    )
    return spy


@graded("load_verified")
def test_load_verified_loads_a_pinned_state_dict_weights_only(supply_chain, corpus, load_spy):
    path, _ = corpus["state_dict.pt"]
    out = supply_chain.load_verified(path, sha256(path).upper())
    assert set(out) == {"weight", "bias"} and torch.equal(out["weight"], state_dict()["weight"]), (
        "load_verified: did not return the state dict (an upper-case hash is the same hash)"
    )
    assert len(load_spy.calls) == 1 and load_spy.calls[0][1].get("weights_only") is True, (
        f"load_verified: torch.load must be called once with weights_only=True; calls: "
        f"{[k for _, k in load_spy.calls]}"
    )
    assert not isinstance(load_spy.calls[0][0], (str, os.PathLike)), (
        "load_verified: load the bytes you hashed (io.BytesIO), not the path again"
    )


@graded("load_verified")
def test_load_verified_passes_map_location(supply_chain, corpus, load_spy):
    path, _ = corpus["state_dict.pt"]
    supply_chain.load_verified(path, sha256(path), map_location="meta")
    assert load_spy.calls[0][1].get("map_location") == "meta", (
        "load_verified: pass map_location on to torch.load"
    )


@graded("load_verified")
def test_load_verified_refuses_a_different_hash_before_loading(supply_chain, corpus, load_spy):
    path, _ = corpus["state_dict.pt"]
    wrong = hashlib.sha256(b"another file").hexdigest()
    with pytest.raises(ValueError, match="sha256|hash"):
        supply_chain.load_verified(path, wrong)
    assert not load_spy.calls, "load_verified: called torch.load before checking the hash"


@graded("load_verified")
def test_load_verified_refuses_a_malicious_file_whose_hash_matches(
    supply_chain, tmp_path, load_spy
):
    path, marker = tmp_path / "payload.pt", tmp_path / "MARKER"
    torch_save_payload(path, marker)
    with pytest.raises(supply_chain.UnsafeCheckpoint, match=re.escape(".".join(OPEN))):
        supply_chain.load_verified(path, sha256(path))
    assert not load_spy.calls, "load_verified: called torch.load on a file the scanner flags"
    assert not marker.exists(), "load_verified: the payload ran"


@pytest.mark.parametrize("bad", ["abc", "z" * 64, "0" * 63], ids=["short", "not-hex", "63-digits"])
@graded("load_verified")
def test_load_verified_rejects_a_malformed_hash(supply_chain, corpus, load_spy, bad):
    path, _ = corpus["state_dict.pt"]
    with pytest.raises(ValueError):
        supply_chain.load_verified(path, bad)
    assert not load_spy.calls, "load_verified: loaded with a malformed hash"


@graded("load_verified")
def test_load_verified_rejects_a_path_that_is_not_a_file(supply_chain, tmp_path, load_spy):
    with pytest.raises(FileNotFoundError):
        supply_chain.load_verified(tmp_path / "missing.pt", "0" * 64)
    with pytest.raises(FileNotFoundError):
        supply_chain.load_verified(tmp_path, "0" * 64)  # a folder is not a file either


@pytest.mark.parametrize("kind", ["zip-without-pickle", "not-a-pickle"])
@graded("load_verified")
def test_load_verified_rejects_a_pinned_file_that_is_not_a_checkpoint(
    supply_chain, tmp_path, load_spy, kind
):
    path = tmp_path / "file.pt"
    if kind == "not-a-pickle":
        path.write_bytes(b"plain text, not a pickle\n")
    else:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("weights.txt", "0.5 0.25")
    with pytest.raises(ValueError):
        supply_chain.load_verified(path, sha256(path))
    assert not load_spy.calls, "load_verified: called torch.load on a file that is not a checkpoint"


@graded("load_verified")
def test_load_verified_rejects_a_malformed_hash_before_reading(supply_chain, tmp_path):
    with pytest.raises(ValueError):
        supply_chain.load_verified(tmp_path / "missing.pt", "not a hash")


# --------------------------------------------------------------------------- #
# make_demo_payload
# --------------------------------------------------------------------------- #

# Unpickles each file given as it would be loaded unsafely (torch.load with
# weights_only=False is pickle.Unpickler.load on data.pkl); torch's own tensor
# machinery is stood in for, so this process needs no torch. Run only as a
# subprocess whose working folder is a temporary folder.
UNPICKLE = """
import os, pickle, sys, zipfile


class Unsafe(pickle.Unpickler):
    def find_class(self, module, name):
        if module.startswith("torch"):
            return lambda *args, **kwargs: None
        return super().find_class(module, name)

    def persistent_load(self, pid):
        return None


for path, marker in zip(sys.argv[1::2], sys.argv[2::2]):
    print(marker, "MARKER-BEFORE-LOAD:", os.path.exists(marker))
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
        with archive.open(name) as stream:
            Unsafe(stream).load()
    print(marker, "MARKER-AFTER-UNSAFE-LOAD:", os.path.exists(marker))
"""


@graded("make_demo_payload")
def test_make_demo_payload_writes_a_checkpoint_that_imports_open(
    supply_chain, tmp_path, no_unpickling
):
    marker = tmp_path / "MARKER"
    path = supply_chain.make_demo_payload(tmp_path / "payload.pt", marker)
    assert Path(path) == tmp_path / "payload.pt" and isinstance(path, Path), (
        f"make_demo_payload: should return Path(path), got {path!r}"
    )
    assert zipfile.is_zipfile(path), (
        "make_demo_payload: write it with torch.save (a zip checkpoint)"
    )
    assert not marker.exists(), "make_demo_payload: writing the payload created the marker"
    with zipfile.ZipFile(path) as archive:
        data = next(archive.read(n) for n in archive.namelist() if n.endswith("data.pkl"))
    import pickletools

    ops = [(op.name, arg) for op, arg, _ in pickletools.genops(data)]
    assert ("GLOBAL", " ".join(OPEN)) in ops, (
        f"make_demo_payload: its pickle should import open (GLOBAL '{' '.join(OPEN)}'), found "
        f"{[a for n, a in ops if n == 'GLOBAL']}"
    )
    assert ("BINUNICODE", str(marker)) in ops and ("BINUNICODE", "a") in ops, (
        "make_demo_payload: open should be called with (marker, 'a')"
    )
    assert ("BINUNICODE", "state_dict") in ops, (
        "make_demo_payload: keep a state dict next to the note"
    )


@graded("make_demo_payload")
def test_make_demo_payload_only_acts_when_loaded_unsafely_in_a_subprocess(supply_chain, tmp_path):
    work = tmp_path / "sandbox"
    work.mkdir()
    path = supply_chain.make_demo_payload(work / "payload.pt", "MARKER")
    (work / "KEEP").write_text("unchanged")
    keep = supply_chain.make_demo_payload(work / "keep.pt", "KEEP")
    result = subprocess.run(
        [sys.executable, "-c", UNPICKLE, str(path), "MARKER", str(keep), "KEEP"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 0, (
        f"make_demo_payload: the subprocess failed: {result.stderr[-400:]}"
    )
    outputs = [result.stdout]
    assert "MARKER MARKER-BEFORE-LOAD: False" in outputs[0], (
        "make_demo_payload: the marker appeared before the payload was unpickled"
    )
    assert "MARKER MARKER-AFTER-UNSAFE-LOAD: True" in outputs[0] and (work / "MARKER").exists(), (
        "make_demo_payload: unpickling the payload (in the subprocess, "
        "working folder = the sandbox) should create the marker file"
    )
    assert (work / "MARKER").read_text() == "", "make_demo_payload: the marker should be empty"
    assert (work / "KEEP").read_text() == "unchanged", (
        "make_demo_payload: an existing marker file was truncated; open it with mode 'a'"
    )
    left = sorted(p.name for p in work.iterdir())
    assert left == ["KEEP", "MARKER", "keep.pt", "payload.pt"], (
        f"make_demo_payload: the payload should create the marker and nothing else: {left}"
    )
