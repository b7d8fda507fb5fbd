"""Fixtures for the week 5 specs: the implementation under test (chosen by
--impl / MLSAFETY_IMPL) and the smoke-profile checkpoint's
features and logits on digits and on uniform noise."""

import pytest
import torch

from mlsafety import recipes
from mlsafety.grading import module_fixture

scores = module_fixture("scores")
metrics = module_fixture("metrics")
calibration = module_fixture("calibration")


@pytest.fixture(scope="session")
def checkpoint_outputs():
    """The standard smoke checkpoint's penultimate features (64-dim) and logits
    on 600 training digits, 200 test digits and 200 uniform-noise images, plus
    the weight and bias of its last layer. Computed once per session; specs
    must not modify them (each test copies what it changes)."""
    from mlsafety.data import load_tensors

    model = recipes.load("standard_cnn", "smoke")
    x_train, y_train = load_tensors("digits", train=True, limit=600)
    x_test, y_test = load_tensors("digits", train=False, limit=200)
    noise = torch.rand(200, *x_test.shape[1:], generator=torch.Generator().manual_seed(5))

    def run(x):
        with torch.no_grad():
            features = model.head[:-1](model.features(x))
            return features, model.head[-1](features)

    out = {"y_train": y_train, "y_test": y_test}
    for name, x in {"train": x_train, "test": x_test, "noise": noise}.items():
        out[f"f_{name}"], out[f"z_{name}"] = run(x)
    out["weight"] = model.head[-1].weight.detach().clone()
    out["bias"] = model.head[-1].bias.detach().clone()
    return out
