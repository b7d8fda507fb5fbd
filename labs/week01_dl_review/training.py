"""Week 1: the training loop.

A *data* argument is any iterable of ``(x, y)`` batches: a DataLoader, or a
list of tensor pairs (batches may differ in size). Batches are moved to the
device of the model's parameters. An *optimizer* is anything with
``zero_grad()`` and ``step()``: a ``torch.optim`` optimizer, or the ``SGD`` and
``Adam`` classes of ``optimizers.py`` built on your update rules. A *loss
function* maps ``(logits, y)`` to a scalar tensor, the mean loss over the batch
(for example your ``losses.cross_entropy``).
"""

# The imports below are for the functions you will write.
# ruff: noqa: F401

from __future__ import annotations


def train_epoch(model, data, optimizer, loss_fn) -> tuple[float, float]:
    """One pass over ``data``: one optimizer step per batch.

    First switch the model to train mode (``model.train()``: dropout and
    batch norm behave differently in training). Then, for every batch:

    1. zero the gradients (``optimizer.zero_grad()``). ``backward()`` *adds*
       to ``.grad``, so without this every step would also follow the
       gradients of all earlier batches, and of whatever was left in
       ``.grad`` before the call;
    2. one forward pass: ``logits = model(x)``, ``loss = loss_fn(logits, y)``;
    3. ``loss.backward()``;
    4. ``optimizer.step()``.

    The model is left in train mode.

    Args:
        model: classifier returning logits ``(N, C)``.
        data: iterable of ``(x, y)`` batches, at least one.
        optimizer: has ``zero_grad()`` and ``step()``, over ``model``'s parameters.
        loss_fn: ``loss_fn(logits, y)`` -> mean loss over the batch (a scalar tensor).

    Returns:
        ``(mean_loss, accuracy)`` as Python floats: the loss and the fraction
        of correct predictions (argmax of the logits), both from the forward
        pass of step 2 (before each update) and averaged over *examples*: a
        batch of 10 weighs ten times a batch of 1.
    """
    raise NotImplementedError(
        "TODO: implement train_epoch as the docstring describes, then run `make test-week1`"
    )
