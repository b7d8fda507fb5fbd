"""Security lab 2 against independent references and against the toolkit.

- picklescan and fickling (in the tool set, .tools/) read the same globals as
  the lab's ``pickle_globals`` on a corpus built here, and picklescan's verdict
  (every global innocuous) matches ``scan_checkpoint``'s;
- the toolkit's own loader (``mlsafety.checkpoints.load_checkpoint``) and
  ``torch.load(weights_only=True)`` refuse every checkpoint the lab's scanner
  flags and load every one it passes.

Nothing here unpickles an untrusted file in this process: the loading side runs
in a subprocess whose working folder is a temporary folder, and the test checks
that the demonstration payload's marker never appears.
"""

from __future__ import annotations

import ast
import collections
import datetime
import fractions
import io
import json
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from .conftest import ROOT

TOOLS = ROOT / ".tools"
LAB = "security2_model_stealing"
pytestmark = pytest.mark.timeout(300)


def tool_module(name: str):
    """Import a package of the tool set (.tools/), or fail saying how to install it."""
    if str(TOOLS) not in sys.path:
        sys.path.append(str(TOOLS))
    try:
        return __import__(name, fromlist=["_"])
    except ImportError:
        pytest.fail(f"{name} is missing from .tools/: run `make test` (it installs .tools/)")


@pytest.fixture(scope="module")
def supply_chain():
    from mlsafety.grading import load_module

    return load_module("supply_chain", ROOT / "labs" / LAB, "solution")


class _Note:
    """Pickles as a call to open(marker, "a"): the harmless payload."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "a")


def _state():
    return collections.OrderedDict(weight=torch.ones(2, 3), bias=torch.zeros(2, dtype=torch.int64))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, supply_chain):
    """Benign and malicious files: name -> path. Written, never unpickled here."""
    from mlsafety.checkpoints import save_checkpoint
    from mlsafety.models import SmallCNN

    root = tmp_path_factory.mktemp("security2-corpus")
    files: dict[str, Path] = {}

    def raw(name, data):
        files[name] = root / name
        files[name].write_bytes(data)

    def saved(name, obj, **kwargs):
        files[name] = root / name
        torch.save(obj, files[name], **kwargs)

    saved("state_dict.pt", _state())
    saved("legacy_state_dict.pt", _state(), _use_new_zipfile_serialization=False)
    files["toolkit_checkpoint.pt"] = root / "toolkit_checkpoint.pt"
    save_checkpoint(SmallCNN(width=4), files["toolkit_checkpoint.pt"])
    model = {"class": "SmallCNN", "config": SmallCNN(width=4).config}
    model["state_dict"] = SmallCNN(width=4).state_dict()
    saved("checkpoint_with_payload.pt", {**model, "note": _Note("MARKER")})
    saved("checkpoint_with_date.pt", {**model, "when": datetime.date(2024, 5, 1)})
    saved(
        "legacy_with_payload.pt",
        {"w": torch.ones(1), "note": _Note("MARKER")},
        _use_new_zipfile_serialization=False,
    )
    supply_chain.make_demo_payload(root / "demo_payload.pt", "MARKER")
    files["demo_payload.pt"] = root / "demo_payload.pt"
    objects = {
        "dict": {"a": [1, 25, "x"], "b": (None, True)},  # no floats: fickling lacks FLOAT
        "ordered": collections.OrderedDict(a=1),
        "date": datetime.date(2024, 1, 2),
        "fraction": fractions.Fraction(3, 7),
        "set": {1, 2, 3},
        "payload": _Note("MARKER"),
    }
    for protocol in range(6):
        for name, obj in objects.items():
            raw(f"{name}_p{protocol}.pkl", pickle.dumps(obj, protocol=protocol))
    raw("inst.pkl", b"(icollections\nOrderedDict\n.")
    raw(
        "memo_stack_global.pkl",
        b"\x80\x04\x8c\x08datetime\x94\x8c\x04date\x94\x93\x94h\x00\x8c\ttimedelta\x94\x93\x94\x86\x94.",
    )
    raw(
        "reduce_chain.pkl",
        b"\x80\x04\x8c\x08builtins\x94\x8c\x07getattr\x94\x93\x94\x8c\x0bcollections\x94"
        b"\x8c\x0bOrderedDict\x94\x93\x94\x8c\x08fromkeys\x94\x86\x94R\x94]\x94\x8c\x01a\x94a"
        b"\x85\x94R\x94.",
    )
    raw(
        "two_pickles.pkl",
        pickle.dumps({"a": 1}, protocol=2) + pickle.dumps(_Note("MARKER"), protocol=4),
    )
    saved("extra_member.pt", _state())
    with zipfile.ZipFile(files["extra_member.pt"], "a") as archive:
        archive.writestr("extra_member/extra.pkl", pickle.dumps(_Note("MARKER"), protocol=4))
    return files


def picklescan_globals(path: Path):
    scanner = tool_module("picklescan.scanner")
    result = scanner.scan_bytes(io.BytesIO(path.read_bytes()), path.name)
    return result


def fickling_globals(path: Path) -> set[tuple[str, str]]:
    fickle = tool_module("fickling.fickle")
    data = path.read_bytes()
    if zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            streams = [archive.read(n) for n in archive.namelist() if n.endswith(".pkl")]
    else:
        streams = [data]
    found = set()
    for stream in streams:
        for pickled in fickle.StackedPickle.load(stream, fail_on_decode_error=False):
            for node in pickled.properties.imports:
                if isinstance(node, ast.ImportFrom):
                    found |= {(node.module, alias.name) for alias in node.names}
    return found


def test_pickle_globals_agrees_with_picklescan(corpus, supply_chain):
    for name, path in corpus.items():
        ours = supply_chain.pickle_globals(path)
        theirs = {(g.module, g.name) for g in picklescan_globals(path).globals}
        assert set(ours) == theirs, (
            f"{name}: pickle_globals {sorted(ours)}, picklescan {sorted(theirs)}"
        )


def test_pickle_globals_agrees_with_fickling(corpus, supply_chain):
    for name, path in corpus.items():
        if name.startswith("legacy"):
            continue  # fickling stops at the raw storage bytes that follow the pickles
        ours = supply_chain.pickle_globals(path)
        theirs = fickling_globals(path)
        assert set(ours) == theirs, (
            f"{name}: pickle_globals {sorted(ours)}, fickling {sorted(theirs)}"
        )


def test_scan_verdicts_agree_with_picklescan(corpus, supply_chain):
    flagged = passed = 0
    for name, path in corpus.items():
        scan = supply_chain.scan_checkpoint(path)
        innocuous = all(g.safety.value == "innocuous" for g in picklescan_globals(path).globals)
        assert scan.safe == innocuous, (
            f"{name}: scan_checkpoint says safe={scan.safe} (offending {scan.offending}); "
            f"picklescan finds every global innocuous: {innocuous}"
        )
        flagged += not scan.safe
        passed += scan.safe
    assert flagged >= 10 and passed >= 5, f"the corpus should hold both kinds ({flagged}, {passed})"


LOADER = """
import json, os, sys, torch
from mlsafety import SetupError
from mlsafety.checkpoints import load_checkpoint
out = {}
for path, sha in json.loads(sys.argv[1]).items():
    row = {}
    try:
        torch.load(path, map_location="cpu", weights_only=True)
        row["weights_only"] = "loaded"
    except Exception as err:
        row["weights_only"] = "refused " + type(err).__name__
    if sha:
        try:
            load_checkpoint(path, sha256=sha)
            row["toolkit"] = "loaded"
        except SetupError as err:
            row["toolkit"] = "refused " + str(err)[:80]
    out[os.path.basename(path)] = row
out["marker"] = os.path.exists("MARKER")
print(json.dumps(out))
"""


def test_the_toolkit_loader_agrees_with_the_lab_scanner(corpus, supply_chain, tmp_path):
    from mlsafety.data import sha256_file

    # extra_member.pt is left out: its offending pickle is a member torch.load never
    # reads, so weights_only loads it; the lab's scanner flags it on purpose (another
    # tool might read that member), stricter than the loader, never looser.
    checkpoints = {n: p for n, p in corpus.items() if n.endswith(".pt") and n != "extra_member.pt"}
    model_shaped = {
        "toolkit_checkpoint.pt",
        "checkpoint_with_payload.pt",
        "checkpoint_with_date.pt",
    }
    request = {
        str(p): (sha256_file(p) if n in model_shaped else None) for n, p in checkpoints.items()
    }
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", LOADER, json.dumps(request)],
        cwd=sandbox,
        capture_output=True,
        text=True,
        timeout=240,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    assert rows.pop("marker") is False, "a payload ran while loading with weights_only=True"
    assert not (sandbox / "MARKER").exists()
    for name, path in checkpoints.items():
        safe = supply_chain.scan_checkpoint(path).safe
        row = rows[name]
        for loader, outcome in row.items():
            assert outcome.startswith("loaded") == safe, (
                f"{name}: the lab's scanner says safe={safe} but {loader} {outcome}"
            )
    assert rows["checkpoint_with_payload.pt"]["toolkit"].startswith("refused"), rows
