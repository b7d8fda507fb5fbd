import dataclasses
from functools import partial

import pytest

from mlsafety import SetupError, recipes
from mlsafety.checkpoints import read_record
from mlsafety.data import load_tensors
from mlsafety.grading import load_module


def test_a_second_request_reuses_the_built_checkpoint(monkeypatch):
    first = recipes.ensure("week03_standard", "smoke", quiet=True)
    built = recipes.RECIPES["week03_standard"]
    monkeypatch.setitem(
        recipes.RECIPES,
        "week03_standard",
        dataclasses.replace(built, build=lambda *a: pytest.fail("rebuilt a cached checkpoint")),
    )
    assert recipes.ensure("week03_standard", "smoke", quiet=True) == first
    record = read_record(first)
    assert record["settings"]["profile"] == "smoke" and record["metrics"]["clean_accuracy"] > 0.85


def test_changed_settings_rebuild(tmp_path, monkeypatch):
    monkeypatch.setenv("MLSAFETY_DATA", str(tmp_path))
    built = recipes.RECIPES["week03_standard"]
    first = recipes.ensure("week03_standard", "smoke", quiet=True)
    monkeypatch.setitem(
        recipes.RECIPES,
        "week03_standard",
        dataclasses.replace(built, settings=lambda p: {**built.settings(p), "lr": 1e-3}),
    )
    assert recipes.find("week03_standard", "smoke") is None  # stale: its settings changed
    again = recipes.ensure("week03_standard", "smoke", quiet=True)
    assert again == first and read_record(again)["settings"]["lr"] == 1e-3


def test_recipes_are_deterministic(tmp_path, monkeypatch):
    shared = recipes.ensure("week03_standard", "smoke", quiet=True)
    monkeypatch.setenv("MLSAFETY_DATA", str(tmp_path))
    rebuilt = recipes.ensure("week03_standard", "smoke", quiet=True)
    assert rebuilt != shared and rebuilt.is_relative_to(tmp_path)
    assert read_record(rebuilt)["sha256"] == read_record(shared)["sha256"]


def test_missing_checkpoint_without_building_names_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("MLSAFETY_DATA", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(SetupError, match="week03_adversarial .*make assets"):
        recipes.load("week03_adversarial", "smoke", build=False)
    with pytest.raises(SetupError, match="unknown checkpoint"):
        recipes.ensure("week99_model", "smoke")


def test_adversarial_training_buys_robustness():
    attacks = load_module("attacks", 3, "solution")
    x, y = load_tensors("digits", train=False)
    pgd = partial(attacks.pgd_linf, eps=0.1, alpha=0.025, steps=10)
    accs = {}
    for name in ("week03_standard", "week03_adversarial"):
        model = recipes.load(name, "smoke")
        accs[name] = (model(pgd(model, x, y)).argmax(1) == y).float().mean().item()
    assert accs["week03_adversarial"] > accs["week03_standard"] + 0.2, accs
