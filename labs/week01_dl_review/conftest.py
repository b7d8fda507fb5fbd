"""Fixtures for the week 1 specs: the implementation under test (chosen by
--impl / MLSAFETY_IMPL), helpers to compare tensors, and the offline digits."""

import pytest
import torch

from mlsafety.grading import module_fixture

layers = module_fixture("layers")
losses = module_fixture("losses")
optimizers = module_fixture("optimizers")
training = module_fixture("training")


@pytest.fixture(scope="session")
def digits():
    """The offline digits of the smoke profile (1x28x28 in [0, 1]): 1200
    training and 300 held-out images with their labels."""
    from mlsafety.data import load_tensors

    x_train, y_train = load_tensors("digits", train=True, limit=1200)
    x_test, y_test = load_tensors("digits", train=False, limit=300)
    return x_train, y_train, x_test, y_test


@pytest.fixture
def forbid(monkeypatch):
    """``forbid(function_name, {"F.gelu": (module, "gelu"), ...})``: while the
    spec runs, calling one of those torch functions fails with a message that
    names the graded function and the forbidden call."""

    def install(graded: str, targets: dict, hint: str):
        for label, (owner, attribute) in targets.items():

            def refuse(*args, _label=label, **kwargs):
                raise AssertionError(f"{graded}: calls {_label}; {hint}")

            monkeypatch.setattr(owner, attribute, refuse)

    return install


@pytest.fixture(scope="session")
def agree():
    """``agree(function, got, expected, context)``: fail with a message naming
    ``function`` unless ``got`` is a tensor like ``expected`` (shape, dtype,
    device), finite where it is, and within ``atol + rtol * |expected|``."""

    def check(function, got, expected, context, atol=1e-5, rtol=1e-5, reference="torch"):
        assert isinstance(got, torch.Tensor), (
            f"{function}: returned {type(got).__name__}, expected a tensor ({context})"
        )
        assert got.shape == expected.shape, (
            f"{function}: output shape {tuple(got.shape)}, expected {tuple(expected.shape)} "
            f"({context})"
        )
        assert got.dtype == expected.dtype, (
            f"{function}: output dtype {got.dtype}, expected {expected.dtype} ({context})"
        )
        assert got.device == expected.device, (
            f"{function}: output on {got.device}, expected {expected.device} ({context})"
        )
        bad = (~torch.isfinite(got) & torch.isfinite(expected)).sum().item()
        assert bad == 0, (
            f"{function}: {bad} inf/nan values in the output where {reference} gives finite "
            f"ones ({context})"
        )
        err = (got.detach() - expected.detach()).abs()
        over = err > atol + rtol * expected.detach().abs()
        assert not over.any(), (
            f"{function}: differs from {reference} by up to {err.max().item():.2e} "
            f"({over.sum().item()} of {over.numel()} values off; {context})"
        )

    return check
