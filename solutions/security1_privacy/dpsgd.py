"""Security lab 1: differentially private SGD (Abadi et al., 2016).

DP-SGD bounds how much any single training example can move the model: it
clips every example's gradient to a norm ``C`` and hides the sum under
Gaussian noise before the step. Its privacy is then counted by the
accountant (``accountant.py``).

Conventions for every function here:

- ``model`` is a ``torch.nn.Module`` returning logits ``(N, C)``; the loss of
  one example is the cross-entropy of its logits against its int64 label.
- **Per-sample gradients** are a dict ``{name: tensor}`` with one entry per
  parameter that requires grad, in the order of ``model.named_parameters()``;
  entry ``name`` has shape ``(N, *param.shape)``: row ``i`` is the gradient
  of example ``i``'s loss alone.
- Every random draw comes from the ``torch.Generator`` passed in (on the
  parameters' device); the same seeded generator gives the same result.
- Inputs are never modified in place; results are new tensors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap


def per_sample_gradients(model, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """The gradient of every example's loss, for every parameter, in one pass.

    Use ``torch.func``: a function computing the loss of ONE example from the
    parameters (``functional_call(model, (params, buffers), x_i[None])``,
    cross-entropy against ``y_i[None]``), its gradient with respect to the
    parameters (``grad``), mapped over the batch (``vmap``). This equals N
    separate backward passes of one example each, at about the cost of one
    batched backward pass.

    The model is used as given: its mode (train or eval) is not changed, its
    parameters are not updated and their ``.grad`` are left exactly as they
    were (no ``.backward()``). Parameters with ``requires_grad=False`` (frozen
    layers) get no entry.

    Args:
        model: classifier returning logits; no batch norm (it mixes examples).
        x: inputs ``(N, ...)`` on the model's device.
        y: labels ``(N,)``, int64.

    Returns:
        ``{name: (N, *param.shape)}``, detached, on the parameters' device, in
        the order of ``model.named_parameters()``.

    Raises:
        ValueError: if ``x`` and ``y`` hold different numbers of examples.
    """
    if len(x) != len(y):
        raise ValueError(f"x holds {len(x)} examples but y holds {len(y)} labels")
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def loss_of_one(trainable, xi, yi):
        logits = functional_call(model, ({**trainable, **frozen}, buffers), (xi.unsqueeze(0),))
        return F.cross_entropy(logits, yi.unsqueeze(0))

    if len(x) == 0:
        return {n: p.new_zeros((0, *p.shape)) for n, p in params.items()}
    grads = vmap(grad(loss_of_one), in_dims=(None, 0, 0))(params, x, y)
    return {n: grads[n].detach() for n in params}


def clip_per_sample(grads: dict[str, torch.Tensor], max_norm: float) -> dict[str, torch.Tensor]:
    """Clip every example's gradient to L2 norm at most ``max_norm``.

    The norm of example ``i`` is taken over ALL its parameters jointly:
    ``n_i = sqrt(sum over names of ||grads[name][i]||^2)``. Example ``i`` is
    scaled by ``min(1, max_norm / n_i)``: a gradient already within the bound
    is left exactly as it is (an all-zero one stays zero, no NaN), a larger
    one keeps its direction and gets norm ``max_norm``. Each example is
    clipped on its own, never the batch's gradient as a whole.

    Args:
        grads: per-sample gradients ``{name: (N, ...)}`` (see the module
            docstring).
        max_norm: the clipping bound ``C``, ``> 0``.

    Returns:
        A new dict with the same keys (in the same order), shapes, dtypes and
        devices; ``grads`` and its tensors are not modified.

    Raises:
        ValueError: if ``max_norm`` is not positive, or if the tensors
            disagree on the number of examples.
    """
    if not max_norm > 0:
        raise ValueError(f"max_norm (the clipping bound C) must be positive, got {max_norm}")
    sizes = {g.shape[0] for g in grads.values()}
    if len(sizes) > 1:
        raise ValueError(f"per-sample gradients disagree on the number of examples: {sizes}")
    if not grads:
        return {}
    # one norm per example and parameter (in the gradients' dtype, fast), combined in float64
    squares = sum(
        torch.linalg.vector_norm(g.flatten(1), dim=1).double().pow(2) for g in grads.values()
    )
    norms = squares.sqrt()
    factor = (max_norm / norms.clamp_min(1e-30)).clamp(max=1.0)
    return {
        name: g * factor.to(g.dtype).view(-1, *([1] * (g.dim() - 1))) for name, g in grads.items()
    }


def dp_sgd_step(
    model,
    optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    max_norm: float,
    noise_multiplier: float,
    expected_batch_size: int,
    generator: torch.Generator | None = None,
) -> None:
    """One step of DP-SGD.

    1. per-sample gradients of the batch (:func:`per_sample_gradients`);
    2. clip each example's gradient to ``max_norm`` (:func:`clip_per_sample`);
    3. sum them over the batch;
    4. add Gaussian noise with standard deviation ``noise_multiplier *
       max_norm`` to every coordinate of every parameter, drawn from
       ``generator`` (``torch.randn(p.shape, generator=generator, ...)``);
    5. divide by ``expected_batch_size``, the *expected* number of examples
       per batch (``sample_rate * dataset size`` under Poisson sampling), not
       by ``len(x)``: the actual size depends on who is in the batch, and
       dividing by it would leak it;
    6. write the result into each parameter's ``.grad`` (replacing what was
       there) and call ``optimizer.step()``.

    An empty batch (possible under Poisson sampling) gives a step with the
    noise alone. With ``noise_multiplier=0``, a large ``max_norm`` and
    ``expected_batch_size=len(x)`` the step is the ordinary SGD step on the
    mean cross-entropy (useful to check the code; it is not private). The
    model's mode is not changed. Parameters that do not require grad are not
    touched.

    Args:
        model: classifier returning logits.
        optimizer: a ``torch.optim`` optimizer over the model's parameters.
        x: inputs ``(B, ...)`` (``B`` may be 0), on the model's device.
        y: labels ``(B,)``, int64.
        max_norm: the clipping bound ``C``, ``> 0``.
        noise_multiplier: ``sigma``, ``>= 0``; the noise's std is
            ``sigma * C``.
        expected_batch_size: the divisor, ``>= 1``.
        generator: ``torch.Generator`` on the parameters' device for the noise
            (``None``: torch's global generator).

    Returns:
        None; the model's parameters are updated in place.

    Raises:
        ValueError: if ``max_norm`` is not positive, ``noise_multiplier`` is
            negative or ``expected_batch_size`` is below 1.
    """
    # a bound that is not positive is refused by clip_per_sample
    if not noise_multiplier >= 0:
        raise ValueError(f"noise_multiplier must be >= 0, got {noise_multiplier}")
    if not expected_batch_size >= 1:
        raise ValueError(f"expected_batch_size must be at least 1, got {expected_batch_size}")
    clipped = clip_per_sample(per_sample_gradients(model, x, y), max_norm)
    named = dict(model.named_parameters())
    for name, per_example in clipped.items():
        param = named[name]
        total = per_example.sum(dim=0)
        noise = torch.randn(
            param.shape, generator=generator, device=param.device, dtype=param.dtype
        )
        param.grad = (total + noise_multiplier * max_norm * noise) / expected_batch_size
    optimizer.step()


def poisson_sample(
    n: int, sample_rate: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Poisson sampling: the indices of one batch, each example in it
    independently with probability ``sample_rate``.

    The privacy analysis of DP-SGD (the sampled Gaussian mechanism in
    ``accountant.py``) assumes exactly this: the batch size is random, with
    mean ``sample_rate * n``, and may be 0. Draw one uniform number per
    example with ``torch.rand(n, generator=generator)`` and keep those below
    ``sample_rate``.

    Args:
        n: dataset size, ``>= 0``.
        sample_rate: ``q``, ``0 < q <= 1`` (``q = 1`` keeps everyone).
        generator: CPU ``torch.Generator`` (``None``: torch's global one).

    Returns:
        int64 indices in ``[0, n)``, ascending, without repeats, on the CPU.

    Raises:
        ValueError: if ``sample_rate`` is not in (0, 1].
    """
    if not 0 < sample_rate <= 1:
        raise ValueError(f"sample_rate must be in (0, 1], got {sample_rate}")
    keep = torch.rand(n, generator=generator) < sample_rate
    return torch.nonzero(keep).flatten()
