import time
from functools import partial

import pytest

from mlsafety import SetupError, recipes
from mlsafety.checkpoints import read_record
from mlsafety.data import load_tensors
from mlsafety.grading import load_module


def test_a_second_request_is_instant_and_returns_the_same_file():
    first = recipes.ensure("week03_standard", "smoke", quiet=True)
    started = time.perf_counter()
    again = recipes.ensure("week03_standard", "smoke", quiet=True)
    assert again == first and time.perf_counter() - started < 0.5
    record = read_record(first)
    assert record["settings"]["profile"] == "smoke" and record["metrics"]["clean_accuracy"] > 0.85


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
