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
