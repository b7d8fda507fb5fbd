import dataclasses
from functools import partial

import pytest

from mlsafety import SetupError, recipes
from mlsafety.checkpoints import read_record
from mlsafety.data import load_tensors
from mlsafety.grading import load_module


def test_a_second_request_reuses_the_built_checkpoint(monkeypatch):
    first = recipes.ensure("standard_cnn", "smoke", quiet=True)
    built = recipes.RECIPES["standard_cnn"]
    monkeypatch.setitem(
        recipes.RECIPES,
        "standard_cnn",
        dataclasses.replace(built, build=lambda *a: pytest.fail("rebuilt a cached checkpoint")),
    )
    assert recipes.ensure("standard_cnn", "smoke", quiet=True) == first
    record = read_record(first)
    assert record["settings"]["profile"] == "smoke" and record["metrics"]["clean_accuracy"] > 0.85


def test_changed_settings_rebuild(tmp_path, monkeypatch):
    monkeypatch.setenv("MLSAFETY_DATA", str(tmp_path))
    built = recipes.RECIPES["standard_cnn"]
    first = recipes.ensure("standard_cnn", "smoke", quiet=True)
    monkeypatch.setitem(
        recipes.RECIPES,
        "standard_cnn",
        dataclasses.replace(built, settings=lambda p: {**built.settings(p), "lr": 1e-3}),
    )
    assert recipes.find("standard_cnn", "smoke") is None  # stale: its settings changed
    again = recipes.ensure("standard_cnn", "smoke", quiet=True)
    assert again == first and read_record(again)["settings"]["lr"] == 1e-3


def test_recipes_are_deterministic(tmp_path, monkeypatch):
    shared = recipes.ensure("standard_cnn", "smoke", quiet=True)
    monkeypatch.setenv("MLSAFETY_DATA", str(tmp_path))
    rebuilt = recipes.ensure("standard_cnn", "smoke", quiet=True)
    assert rebuilt != shared and rebuilt.is_relative_to(tmp_path)
    assert read_record(rebuilt)["sha256"] == read_record(shared)["sha256"]


def test_a_build_not_as_locked_is_rebuilt_unless_built_on_this_processor(tmp_path, monkeypatch):
    """make assets rebuilds a file whose sha256 is not the lock's, but not one
    this type of processor built: a rebuild would make the same bytes again."""
    import json

    from mlsafety.checkpoints import record_path

    monkeypatch.setenv("MLSAFETY_DATA", str(tmp_path))
    path = recipes.ensure("standard_cnn", "smoke", quiet=True)
    key, sha = read_record(path)["key"], read_record(path)["sha256"]
    other = {"key": key, "sha256": "0" * 64, "size": 1}
    monkeypatch.setattr(recipes, "lock_entry_for", lambda name, profile: other)
    built = recipes.RECIPES["standard_cnn"]
    rebuilt = []

    def build(*args):
        rebuilt.append(1)
        return built.build(*args)

    monkeypatch.setitem(recipes.RECIPES, "standard_cnn", dataclasses.replace(built, build=build))
    assert read_record(path)["built_on"] == recipes.built_on()
    assert recipes.ensure("standard_cnn", "smoke", quiet=True, strict=True) == path
    assert not rebuilt
    assert recipes.checkpoint_state("standard_cnn", "smoke")[0].startswith("differs from the lock")
    # built elsewhere (or a record without the line): rebuilt here, once
    sidecar = record_path(path)
    sidecar.write_text(json.dumps({**read_record(path), "built_on": "Linux x86_64 Other CPU"}))
    assert recipes.ensure("standard_cnn", "smoke", quiet=True, strict=True) == path
    assert rebuilt == [1]
    assert (
        read_record(path)["built_on"] == recipes.built_on() and read_record(path)["sha256"] == sha
    )
    assert recipes.ensure("standard_cnn", "smoke", quiet=True, strict=True) == path
    assert rebuilt == [1]


def test_missing_checkpoint_without_building_names_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("MLSAFETY_DATA", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(SetupError, match="adversarial_cnn .*make assets"):
        recipes.load("adversarial_cnn", "smoke", build=False)
    with pytest.raises(SetupError, match="unknown checkpoint"):
        recipes.ensure("week99_model", "smoke")


def test_adversarial_training_buys_robustness():
    attacks = load_module("attacks", 3, "solution")
    x, y = load_tensors("digits", train=False)
    pgd = partial(attacks.pgd_linf, eps=0.1, alpha=0.025, steps=10)
    accs = {}
    for name in ("standard_cnn", "adversarial_cnn"):
        model = recipes.load(name, "smoke")
        accs[name] = (model(pgd(model, x, y)).argmax(1) == y).float().mean().item()
    assert accs["adversarial_cnn"] > accs["standard_cnn"] + 0.2, accs
