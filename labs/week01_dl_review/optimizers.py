"""Week 1: optimizer update rules, written as functions of the parameters,
their gradients and a state dictionary.

Conventions for every function here:

- ``params`` is a list of parameter tensors (leaf tensors with
  ``requires_grad=True``, for example ``list(model.parameters())``), each with
  its gradient in ``p.grad`` from ``loss.backward()``. A parameter whose
  ``.grad`` is None is skipped: it is not changed and gets no state.
- The update is **in place**: modify each parameter's values (``p.add_``,
  ``p.mul_``, ``p.addcdiv_`` inside ``torch.no_grad()``, so autograd does not
  record it). Never rebind a name (``p = p - lr * g`` changes nothing the
  caller sees) and never replace ``p.data``. The function returns None.
- ``p.grad`` is read, never modified: gradients belong to the caller.
- ``state`` is a dictionary the caller keeps between steps, empty before the
  first step. ``state[i]`` is a dictionary for ``params[i]``; each function
  documents its keys. Pass the same ``params`` list, in the same order, and
  the same ``state`` on every step. State tensors must not share memory with
  ``p.grad`` (clone when you store a gradient): the caller may zero the
  gradients in place before the next step.
- Write the update yourself; do not call ``torch.optim``. The specs run the
  same steps with ``torch.optim`` and compare the trajectories.

The classes at the end are given (not graded): ``SGD`` and ``Adam`` wrap your
functions in the ``zero_grad()`` / ``step()`` interface of ``torch.optim``, so
a training loop can use them.
"""

# The imports below are for the functions you will write.
# ruff: noqa: F401

from __future__ import annotations

import torch


def sgd_step(
    params: list[torch.Tensor],
    state: dict,
    *,
    lr: float,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
) -> None:
    """One step of stochastic gradient descent, as ``torch.optim.SGD`` does it.

    For every parameter ``p`` with a gradient ``g = p.grad``, in this order:

    1. weight decay (an L2 penalty): ``g = g + weight_decay * p``;
    2. momentum, if ``momentum != 0``: the buffer ``b`` is ``g`` (a copy) on
       the first step and ``b = momentum * b + g`` afterwards; then the
       direction is ``d = g + momentum * b`` with ``nesterov``, else ``d = b``.
       Without momentum, ``d = g``;
    3. ``p = p - lr * d``, in place.

    Weight decay enters the gradient *before* the momentum buffer, so the
    buffer accumulates the decay too.

    Args:
        params: parameters with gradients (see the module docstring).
        state: ``state[i] = {"momentum_buffer": b}`` for ``params[i]``, created
            on its first step when ``momentum != 0``.
        lr: learning rate, ``lr >= 0``.
        momentum: momentum factor in ``[0, 1)``.
        weight_decay: L2 penalty factor, ``>= 0``.
        nesterov: Nesterov momentum (needs ``momentum > 0``).
    """
    raise NotImplementedError(
        "TODO: implement sgd_step as the docstring describes, then run `make test-week1`"
    )


def adam_step(
    params: list[torch.Tensor],
    state: dict,
    *,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decoupled: bool = False,
) -> None:
    """One step of Adam (Kingma and Ba, 2015), as ``torch.optim.Adam`` does it,
    or of AdamW (Loshchilov and Hutter, 2019) with ``decoupled=True``.

    For every parameter ``p`` with a gradient ``g = p.grad``:

    1. count the step: ``t = t + 1`` (``t = 1`` on the parameter's first step);
    2. weight decay, if ``weight_decay != 0``:

       - coupled (``decoupled=False``, ``torch.optim.Adam``): an L2 penalty
         in the gradient, ``g = g + weight_decay * p``;
       - decoupled (``decoupled=True``, ``torch.optim.AdamW``): shrink the
         parameter directly, ``p = p * (1 - lr * weight_decay)``, and leave
         ``g`` alone;

    3. moments: ``m = beta1 * m + (1 - beta1) * g`` and
       ``v = beta2 * v + (1 - beta2) * g * g`` (both start at zero);
    4. bias correction: ``m_hat = m / (1 - beta1**t)`` and
       ``v_hat = v / (1 - beta2**t)``. The moments start at zero, so without
       this the first steps would be far too small or large;
    5. ``p = p - lr * m_hat / (sqrt(v_hat) + eps)``, in place (``eps``
       outside the square root).

    Args:
        params: parameters with gradients (see the module docstring).
        state: ``state[i] = {"step": t, "exp_avg": m, "exp_avg_sq": v}`` for
            ``params[i]`` (``t`` a Python int; ``m`` and ``v`` tensors like
            the parameter), created on its first step.
        lr: learning rate.
        betas: ``(beta1, beta2)``, each in ``[0, 1)``.
        eps: added to the denominator, ``> 0``.
        weight_decay: decay factor, ``>= 0``.
        decoupled: AdamW's decoupled weight decay instead of an L2 penalty.
    """
    raise NotImplementedError(
        "TODO: implement adam_step as the docstring describes, then run `make test-week1`"
    )


# --------------------------------------------------------------------------- #
# Given (not graded): torch.optim-style objects around your update rules.
# --------------------------------------------------------------------------- #


class _Optimizer:
    """What a training loop needs: ``zero_grad()`` and ``step()``."""

    def __init__(self, params, **hyper):
        self.params = list(params)
        self.hyper = hyper
        self.state: dict = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v}" for k, v in self.hyper.items())
        return f"{type(self).__name__}({settings})"


class SGD(_Optimizer):
    """``torch.optim.SGD``'s interface around your :func:`sgd_step`."""

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(
            params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov
        )

    def step(self) -> None:
        sgd_step(self.params, self.state, **self.hyper)


class Adam(_Optimizer):
    """``torch.optim.Adam``'s interface around your :func:`adam_step`
    (``decoupled=True`` for AdamW)."""

    def __init__(
        self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False
    ):
        super().__init__(
            params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, decoupled=decoupled
        )

    def step(self) -> None:
        adam_step(self.params, self.state, **self.hyper)
