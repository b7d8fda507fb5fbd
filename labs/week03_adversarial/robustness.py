"""Week 3: measuring and training for robustness.

An *attack* here is any callable ``attack(model, x, y) -> x_adv`` returning
adversarial images like ``x`` (for example
``functools.partial(attacks.pgd_linf, eps=0.1, alpha=0.025, steps=10)``).
A *data* argument is any iterable of ``(x, y)`` batches: a DataLoader or a
list of tensor pairs. Batches are moved to the model's device.
"""

# The imports below are for the functions you will write.
# ruff: noqa: F401

from __future__ import annotations

import torch
import torch.nn.functional as F


def robust_accuracy(model, data, attack=None) -> float:
    """Fraction of examples the model classifies correctly after the attack.

    With ``attack=None`` this is the clean accuracy. Every example counts
    once, however the batches are sized (not a mean of per-batch accuracies).
    The model is evaluated in eval mode and left in the mode it was in.

    Args:
        model: classifier returning logits.
        data: iterable of ``(x, y)`` batches.
        attack: ``attack(model, x, y) -> x_adv``, or None.

    Returns:
        A Python float in [0, 1].
    """
    raise NotImplementedError(
        "TODO: implement robust_accuracy as the docstring describes, then run `make test-week3`"
    )


def adversarial_training_epoch(model, data, optimizer, attack) -> tuple[float, float]:
    """One epoch of adversarial training (Madry et al., 2018).

    For every batch: craft ``x_adv = attack(model, x, y)`` with the model in
    eval mode; switch to train mode; zero the gradients; compute the mean
    cross-entropy of ``model(x_adv)`` against ``y``; backpropagate; take one
    ``optimizer.step()``. The model is left in train mode.

    Returns:
        ``(mean_loss, robust_accuracy)``: the training loss on the adversarial
        examples and the accuracy of the model on them (from the same forward
        pass, before the update), each averaged over examples (a batch of 10
        weighs ten times a batch of 1). Python floats.
    """
    raise NotImplementedError(
        "TODO: implement adversarial_training_epoch as the docstring describes, then run `make test-week3`"
    )


def transfer_success(source_model, target_model, x: torch.Tensor, y: torch.Tensor, attack) -> float:
    """How often adversarial examples crafted on one model fool another.

    Craft ``x_adv = attack(source_model, x, y)`` (the target model is never
    queried for gradients: a black-box transfer attack). Among the examples
    that ``target_model`` classifies correctly on clean input, return the
    fraction it misclassifies on ``x_adv``. If it gets none right, return 0.0.
    Both models are evaluated in eval mode and left in the mode they were in.

    Returns:
        A Python float in [0, 1].
    """
    raise NotImplementedError(
        "TODO: implement transfer_success as the docstring describes, then run `make test-week3`"
    )
