"""Security lab 2: stealing a model through its API.

Conventions for every function here:

- ``victim`` is a black box from ``blackbox.victim``: calling it on a batch of
  images answers probabilities ``(N, K)`` (possibly top-k or rounded) or
  int64 labels ``(N,)``, and counts one query per image against its budget.
- ``pool`` holds the attacker's unlabelled images, float ``(N, C, H, W)`` in
  [0, 1]: natural images of the victim's task, a surrogate data set of other
  images (Knockoff Nets), or anything else the attacker can draw.
- The substitute is a fresh ``mlsafety.models.SmallCNN`` sized for the pool
  (or a copy of ``init``), trained with Adam, and returned in eval mode.
- Every random choice (which images are queried, the substitute's
  initialisation, the shuffling) comes from ``generator``: the same seeded
  generator gives the same substitute.
- Models given as arguments are left as found (mode, weights and grads).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from mlsafety.models import small_cnn_for


def _check_budget(function: str, budget) -> None:
    if isinstance(budget, bool) or not isinstance(budget, int):
        raise TypeError(f"{function}: budget must be a positive int, got {budget!r}")
    if budget <= 0:
        raise ValueError(f"{function}: budget must be a positive int, got {budget}")


def _soft_targets(answers: torch.Tensor) -> torch.Tensor:
    """Rows of (possibly top-k or rounded) probabilities renormalised to sum to 1."""
    answers = answers.float().clamp_min(0)
    return answers / answers.sum(dim=1, keepdim=True).clamp_min(1e-12)


def extract(
    victim,
    pool: torch.Tensor,
    budget: int,
    *,
    num_classes: int = 10,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 2e-3,
    init: torch.nn.Module | None = None,
    generator: torch.Generator | None = None,
) -> torch.nn.Module:
    """Train a substitute of ``victim`` from ``budget`` of its answers.

    1. Choose ``budget`` distinct images of ``pool`` uniformly at random
       (``torch.randperm(len(pool), generator=generator)[:budget]``).
    2. Ask the victim about them, ``batch_size`` images per call: exactly
       ``budget`` queries in all, each image asked once.
    3. Train the substitute for ``epochs`` epochs over those images (shuffled
       each epoch, minibatches of ``batch_size``) with Adam at ``lr``:
       when the victim answers probabilities, the cross-entropy against them
       as soft targets (each row renormalised to sum to 1, so top-k and
       rounded answers work too); when it answers labels, the ordinary
       cross-entropy against the labels.

    The substitute starts as ``small_cnn_for(pool, num_classes, seed=s)`` with
    ``s`` drawn from ``generator`` after the images are chosen, or as a copy
    of ``init`` when given (Knockoff-style: start from a model the attacker
    already has; ``init`` itself is not modified).

    Args:
        victim: the black box to steal from.
        pool: the attacker's images ``(N, C, H, W)``, float, ``N >= budget``.
        budget: number of queries to spend, a positive int.
        num_classes: the victim's number of classes.
        epochs: training epochs, ``>= 0`` (0 returns the untrained start).
        batch_size: queries per call and training minibatch size, ``>= 1``.
        lr: Adam's learning rate.
        init: optional model to start from instead of a fresh SmallCNN.
        generator: ``torch.Generator`` (CPU) for every random choice.

    Returns:
        The substitute, in eval mode, on the pool's device.

    Raises:
        TypeError: if ``budget`` is not an int.
        ValueError: if ``budget <= 0``, ``budget > len(pool)`` or ``pool`` is
            not a 4-D floating-point tensor.
    """
    _check_budget("extract", budget)
    if not isinstance(pool, torch.Tensor) or pool.dim() != 4 or not pool.is_floating_point():
        shape = tuple(pool.shape) if isinstance(pool, torch.Tensor) else type(pool).__name__
        raise ValueError(f"extract: pool must be float images (N, C, H, W), got {shape}")
    if budget > len(pool):
        raise ValueError(f"extract: budget {budget} exceeds the pool's {len(pool)} images")
    chosen = torch.randperm(len(pool), generator=generator)[:budget].to(pool.device)
    queries = pool[chosen]
    answers = torch.cat([victim(queries[i : i + batch_size]) for i in range(0, budget, batch_size)])
    labels_only = answers.dim() == 1
    targets = answers.long() if labels_only else _soft_targets(answers)
    seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
    if init is not None:
        substitute = copy.deepcopy(init)
    else:
        substitute = small_cnn_for(pool, num_classes, seed=seed)
    substitute = substitute.to(pool.device).train()
    optimizer = torch.optim.Adam(substitute.parameters(), lr=lr)
    for _ in range(epochs):
        order = torch.randperm(budget, generator=generator).to(pool.device)
        for start in range(0, budget, batch_size):
            batch = order[start : start + batch_size]
            logits = substitute(queries[batch])
            if labels_only:
                loss = F.cross_entropy(logits, targets[batch])
            else:
                loss = -(targets[batch] * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return substitute.eval()


def fidelity(
    substitute: torch.nn.Module, model: torch.nn.Module, x: torch.Tensor, batch_size: int = 256
) -> float:
    """Top-1 agreement of ``substitute`` with the victim's ``model`` on ``x``.

    The fraction of images of ``x`` on which both models predict the same
    class (whatever the true label). Measure it on held-out images, never on
    the images the substitute was trained on. Both models run in eval mode
    without gradients, in batches of ``batch_size``, and are put back in the
    mode they were in; every image counts once, however the batches split.

    Args:
        substitute: the stolen model.
        model: the victim's model itself (the evaluator may look inside).
        x: held-out images ``(N, C, H, W)``, ``N >= 1``.
        batch_size: images per forward pass, ``>= 1``.

    Returns:
        A Python float in [0, 1].

    Raises:
        ValueError: if ``x`` holds no image.
    """
    if len(x) == 0:
        raise ValueError("fidelity: no images to compare on")
    modes = substitute.training, model.training
    substitute.eval()
    model.eval()
    agree = 0
    try:
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                xb = x[start : start + batch_size]
                agree += (substitute(xb).argmax(1) == model(xb).argmax(1)).sum().item()
    finally:
        substitute.train(modes[0])
        model.train(modes[1])
    return agree / len(x)


def budget_curve(
    make_victim,
    model: torch.nn.Module,
    pool: torch.Tensor,
    x_test: torch.Tensor,
    budgets,
    *,
    generator: torch.Generator | None = None,
    **extract_kwargs,
) -> list[float]:
    """Fidelity of a stolen model as a function of the query budget.

    For each budget ``b`` in ``budgets``, in order: build a fresh black box
    with ``make_victim(b)``, steal it with
    ``extract(box, pool, b, generator=generator, **extract_kwargs)`` (one
    generator shared by all budgets, drawn from in order), and measure
    ``fidelity(substitute, model, x_test)`` on the held-out ``x_test``, never
    on the pool.

    Args:
        make_victim: ``budget -> Victim`` (the same model behind each).
        model: the victim's model, for measuring fidelity.
        pool: the attacker's images, as in :func:`extract`.
        x_test: held-out images for :func:`fidelity`.
        budgets: the budgets to try, positive ints.
        generator: ``torch.Generator`` passed to every :func:`extract`.
        extract_kwargs: further arguments for :func:`extract`.

    Returns:
        One Python float per budget, in the order of ``budgets``.
    """
    curve = []
    for budget in budgets:
        substitute = extract(
            make_victim(budget), pool, budget, generator=generator, **extract_kwargs
        )
        curve.append(fidelity(substitute, model, x_test))
    return curve


def jacobian_augment(
    substitute: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor, lam: float = 0.1
) -> torch.Tensor:
    """Jacobian-based dataset augmentation (Papernot et al., 2017).

    New queries where the substitute's decision is most sensitive: for each
    image, step along the sign of the gradient of the substitute's logit for
    the victim's label, ``x_new = clamp(x + lam * sign(d logit_y / d x), 0, 1)``.
    The substitute is used as given (its mode, weights and ``.grad`` are left
    alone: take gradients with ``torch.autograd.grad``).

    Args:
        substitute: the current substitute, logits ``(N, K)``.
        x: the current queries ``(N, C, H, W)`` in [0, 1].
        labels: the victim's labels for ``x``, int64 ``(N,)``.
        lam: step size (a negative ``lam`` steps the other way).

    Returns:
        ``torch.cat([x, x_new])``: ``(2N, C, H, W)``, detached, values in
        [0, 1]; ``x`` is not modified.
    """
    xg = x.detach().clone().requires_grad_(True)
    picked = substitute(xg).gather(1, labels.view(-1, 1)).sum()
    (grad,) = torch.autograd.grad(picked, xg)
    x_new = (x.detach() + lam * grad.sign()).clamp(0, 1)
    return torch.cat([x.detach(), x_new])
