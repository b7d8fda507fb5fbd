"""Security lab 1's reference solution against an independent implementation:
Opacus (environments/tools.txt, installed into .tools/ by `make test`, never into
the lab environment). The accountant agrees with Opacus's RDP accountant, the
per-sample gradients with its GradSampleModule, and a noiseless DP-SGD step
with its DPOptimizer."""

import copy
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mlsafety.grading import load_module

from .conftest import ROOT

TOOLS = ROOT / ".tools"


@pytest.fixture(scope="module")
def opacus():
    if not (TOOLS / "opacus").is_dir():
        pytest.fail(".tools/opacus is missing: run `make test` (it installs .tools/)")
    if str(TOOLS) not in sys.path:
        sys.path.append(str(TOOLS))  # after the lab environment, so it shadows nothing
    import opacus

    return opacus


@pytest.fixture(scope="module")
def solution():
    return {m: load_module(m, "security1", "solution") for m in ("accountant", "dpsgd")}


@pytest.mark.timeout(300)
def test_the_accountant_agrees_with_opacus(opacus, solution):
    from opacus.accountants.analysis import rdp as opacus_rdp

    accountant = solution["accountant"]
    orders = [1.1, 1.5, 1.75, 2, 2.5, 3, 4, 5.5, 8, 10.5, 16, 32, 64, 128]
    worst = 0.0
    for q in (0.0, 0.001, 0.01, 0.1, 0.5, 1.0):
        for sigma in (0.5, 0.8, 1.1, 2.0, 5.0):
            for steps in (1, 1000):
                ours = accountant.rdp_subsampled_gaussian(q, sigma, steps, orders)
                theirs = opacus_rdp.compute_rdp(
                    q=q, noise_multiplier=sigma, steps=steps, orders=orders
                )
                rel = np.abs(ours - theirs) / np.maximum(np.abs(theirs), 1e-300)
                worst = max(worst, float(np.where(ours == theirs, 0.0, rel).max()))
                for delta in (1e-5, 1e-3):
                    eps, order = accountant.epsilon_from_rdp(ours, orders, delta)
                    want, want_order = opacus_rdp.get_privacy_spent(
                        orders=orders, rdp=theirs, delta=delta
                    )
                    assert abs(eps - want) <= 1e-3 * max(want, 1e-3) and order == want_order, (
                        f"q={q} sigma={sigma} steps={steps} delta={delta}: epsilon {eps} at "
                        f"{order}, Opacus {want} at {want_order}"
                    )
    assert worst < 1e-5, f"RDP differs from Opacus's by up to {worst:.2g} relative"


@pytest.mark.timeout(300)
def test_per_sample_gradients_agree_with_opacus(opacus, solution):
    from opacus import GradSampleModule

    from mlsafety.data import load_tensors
    from mlsafety.models import small_cnn_for

    x, y = load_tensors("digits", train=True, limit=16)
    model = small_cnn_for(x, seed=0)
    ours = solution["dpsgd"].per_sample_gradients(model, x, y)
    wrapped = GradSampleModule(copy.deepcopy(model), loss_reduction="sum")
    F.cross_entropy(wrapped(x), y, reduction="sum").backward()
    for name, p in wrapped._module.named_parameters():
        theirs = p.grad_sample
        scale = theirs.abs().max().item()
        assert (ours[name] - theirs).abs().max().item() <= 1e-5 * max(scale, 1e-6), name


@pytest.mark.timeout(300)
def test_a_noiseless_dp_sgd_step_agrees_with_opacus(opacus, solution):
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    from mlsafety.data import load_tensors
    from mlsafety.models import small_cnn_for

    x, y = load_tensors("digits", train=True, limit=24)
    model = small_cnn_for(x, seed=1)
    # Opacus's "mean" reduction: a mean loss, and the clipped sum divided by the
    # expected batch size, as dp_sgd_step does
    theirs = GradSampleModule(copy.deepcopy(model))
    optimizer = DPOptimizer(
        torch.optim.SGD(theirs.parameters(), lr=0.5),
        noise_multiplier=0.0,
        max_grad_norm=2.0,  # a bound some examples exceed and others do not
        expected_batch_size=32,
    )
    F.cross_entropy(theirs(x), y).backward()
    optimizer.step()
    ours = copy.deepcopy(model)
    solution["dpsgd"].dp_sgd_step(
        ours,
        torch.optim.SGD(ours.parameters(), lr=0.5),
        x,
        y,
        max_norm=2.0,
        noise_multiplier=0.0,
        expected_batch_size=32,
    )
    for (name, a), b in zip(ours.named_parameters(), theirs._module.parameters(), strict=True):
        moved = (b - dict(model.named_parameters())[name]).abs().max().item()
        # Opacus clips by C / (norm + 1e-6), we by min(1, C / norm): equal to ~1e-5 relative
        assert (a - b).abs().max().item() <= 1e-4 * moved, name
