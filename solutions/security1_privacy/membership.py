"""Security lab 1: membership inference, the attacks and how they are measured.

A membership inference attack gets a trained model and a candidate example
and guesses whether the example was in the model's training set.

Conventions for every function here:

- **Membership is the positive class**: label 1 = member (the model trained
  on it), 0 = non-member. An attack returns one score per example,
  **higher = more likely a member**.
- ``model`` maps float images to logits ``(N, C)``; ``y`` holds int64 labels
  ``(N,)``. Logits are float tensors ``(N, C)``. Inputs are never modified.
- Attacks return a new 1-D float tensor ``(N,)`` of scores, detached, on the
  device of their inputs. Metrics return Python floats.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def loss_threshold_attack(
    model, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 256
) -> torch.Tensor:
    """The loss attack (Yeom et al., 2018): score = minus the per-example loss.

    A model fits its training examples better than unseen ones, so a low
    cross-entropy ``-log softmax(model(x_i))[y_i]`` suggests a member. The score
    of example ``i`` is ``-cross_entropy(model(x_i), y_i)``, so higher = more
    likely a member and a score is at most 0. Thresholding it at ``-t`` is the
    attack "member if the loss is below t".

    The model is run in eval mode, without gradients, in batches of
    ``batch_size`` (the scores do not depend on the batching), and put back in
    the mode it was in. Its parameters and their ``.grad`` are left alone.

    Args:
        model: classifier returning logits ``(N, C)``.
        x: inputs ``(N, ...)`` on the model's device.
        y: labels ``(N,)``, int64.
        batch_size: examples per forward pass, ``>= 1``.

    Returns:
        Scores ``(N,)``, float, on ``x``'s device, all ``<= 0``.

    Raises:
        ValueError: if ``x`` and ``y`` hold different numbers of examples.
    """
    if len(x) != len(y):
        raise ValueError(f"x holds {len(x)} examples but y holds {len(y)} labels")
    was_training = model.training
    model.eval()
    scores = []
    try:
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                logits = model(x[start : start + batch_size])
                target = y[start : start + batch_size]
                scores.append(-F.cross_entropy(logits, target, reduction="none"))
    finally:
        model.train(was_training)
    if not scores:
        return torch.zeros(0, device=x.device)
    return torch.cat(scores).to(x.device)


def _logit_confidence(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``log(p_y / (1 - p_y))`` without forming ``p_y`` (no overflow at p = 1)."""
    logits = logits.double()
    true = logits.gather(-1, y.unsqueeze(-1)).squeeze(-1)
    others = logits.scatter(-1, y.unsqueeze(-1), float("-inf"))
    return true - torch.logsumexp(others, dim=-1)


def lira_offline(
    target_logits: torch.Tensor,
    y: torch.Tensor,
    reference_logits: torch.Tensor,
    *,
    global_variance: bool = False,
) -> torch.Tensor:
    """The offline likelihood-ratio attack (LiRA, Carlini et al., 2022).

    Reference models trained *without* the candidates (OUT models) show how
    confident a model is on each example when it has not seen it. The attack
    scores how unusually confident the target model is in comparison:

    1. The logit-scaled confidence of a model on example ``i`` is
       ``phi = log(p / (1 - p))`` with ``p = softmax(logits_i)[y_i]``. Compute
       it as ``logits_i[y_i] - logsumexp_{j != y_i} logits_i[j]`` (the same
       number, finite even where ``p`` rounds to 1).
    2. Fit a Gaussian per example to the K reference confidences:
       ``mu_i`` = their mean, ``sigma_i`` = their standard deviation (with
       Bessel's correction, divisor K - 1). With ``global_variance=True`` every
       example shares one ``sigma``: the square root of the mean over examples
       of the per-example variances (better when K is small).
    3. One-sided test: the score is ``log Pr[Z <= phi_target_i]`` for
       ``Z ~ N(mu_i, sigma_i^2)``, that is
       ``log Phi((phi_target_i - mu_i) / sigma_i)`` with the standard normal
       CDF ``Phi`` (use ``torch.special.log_ndtr``: it stays finite and ordered
       far in the tails). A target far more confident than the OUT models
       scores near 0, the highest possible score; a target less confident
       scores very negative.

    Computed in float64; the scores are returned as float64.

    Args:
        target_logits: the target model's logits ``(N, C)``.
        y: labels ``(N,)``, int64.
        reference_logits: the K OUT reference models' logits on the same
            examples ``(K, N, C)``.
        global_variance: one variance for all examples instead of one each.

    Returns:
        Scores ``(N,)``, float64, on ``target_logits``' device, all ``<= 0``.

    Raises:
        ValueError: if ``reference_logits`` is not ``(K, N, C)`` with the
            ``(N, C)`` of ``target_logits``, or if there are fewer than two
            reference models (no variance can be estimated).
    """
    if reference_logits.dim() != 3 or reference_logits.shape[1:] != target_logits.shape:
        raise ValueError(
            f"reference_logits must be (K, N, C) = (K, {', '.join(map(str, target_logits.shape))}),"
            f" got {tuple(reference_logits.shape)}"
        )
    if reference_logits.shape[0] < 2:
        raise ValueError(
            f"lira_offline needs at least 2 reference models to fit a variance, got "
            f"{reference_logits.shape[0]}"
        )
    phi = _logit_confidence(target_logits, y)
    phi_ref = _logit_confidence(reference_logits, y.expand(reference_logits.shape[:2]))
    mu = phi_ref.mean(dim=0)
    var = phi_ref.var(dim=0, correction=1)
    if global_variance:
        var = var.mean().expand_as(var)
    sigma = var.sqrt().clamp_min(1e-12)
    return torch.special.log_ndtr((phi - mu) / sigma)


def _sorted_probabilities(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    probs = logits.double().softmax(dim=-1)
    return probs.sort(dim=-1, descending=True).values[:, :top_k]


def shadow_attack(
    shadow_logits: torch.Tensor,
    shadow_members: torch.Tensor,
    target_logits: torch.Tensor,
    *,
    top_k: int = 3,
    steps: int = 300,
    lr: float = 0.5,
) -> torch.Tensor:
    """The shadow-model attack (Shokri et al., 2017), with one attack model for
    all classes on the sorted softmax (Salem et al., 2019).

    The attacker trains shadow models on data of its own, so it knows which
    examples each shadow model saw. Their outputs, labelled member /
    non-member, train an attack classifier that is then applied to the target
    model's outputs:

    1. Features: the softmax of each row of logits, sorted in descending
       order, keeping the ``top_k`` largest probabilities (sorting makes the
       features independent of the class; ``top_k`` of them carry most of the
       signal).
    2. Standardise each feature with the mean and the standard deviation
       (divisor M, no correction) of the *shadow* features; a feature whose
       standard deviation is 0 is only centred. The target features use the
       same shadow statistics.
    3. Logistic regression: weights ``w`` (``top_k``) and bias ``b``, both
       starting at 0, trained by ``steps`` steps of full-batch gradient
       descent with learning rate ``lr`` on the mean binary cross-entropy of
       ``sigmoid(f @ w + b)`` against ``shadow_members``.
    4. The score of a target row is the attack's log-odds ``f @ w + b``.

    Computed in float64; deterministic (no random draw).

    Args:
        shadow_logits: logits of the shadow models on their own candidate
            examples ``(M, C)`` (all shadow models' rows concatenated).
        shadow_members: ``(M,)`` 1 where the shadow model trained on the row's
            example, 0 where it did not; both classes present.
        target_logits: the target model's logits on the candidates ``(N, C)``.
        top_k: how many sorted probabilities to keep, ``1 <= top_k <= C``.
        steps: gradient descent steps, ``>= 0``.
        lr: learning rate, ``> 0``.

    Returns:
        Scores ``(N,)``, float64, on ``target_logits``' device.

    Raises:
        ValueError: if ``shadow_logits`` and ``shadow_members`` hold different
            numbers of rows, or ``shadow_members`` lacks members or non-members.
    """
    if len(shadow_logits) != len(shadow_members):
        raise ValueError(
            f"shadow_logits has {len(shadow_logits)} rows but shadow_members has "
            f"{len(shadow_members)} labels"
        )
    labels = torch.as_tensor(shadow_members, device=shadow_logits.device).double().flatten()
    if bool((labels != 0).all()) or bool((labels == 0).all()):
        raise ValueError("shadow_members must contain both members (1) and non-members (0)")
    labels = (labels != 0).double()
    features = _sorted_probabilities(shadow_logits, top_k)
    mean = features.mean(dim=0)
    std = features.std(dim=0, correction=0)
    scale = torch.where(std > 0, std, torch.ones_like(std))
    features = (features - mean) / scale
    w = torch.zeros(features.shape[1], dtype=torch.float64, device=features.device)
    b = torch.zeros((), dtype=torch.float64, device=features.device)
    for _ in range(steps):
        error = torch.sigmoid(features @ w + b) - labels  # gradient of the mean BCE in the logit
        w = w - lr * features.T @ error / len(labels)
        b = b - lr * error.mean()
    target = (_sorted_probabilities(target_logits, top_k) - mean) / scale
    return target @ w + b


def tpr_at_fpr(scores, members, fpr: float) -> float:
    """True positive rate of a membership attack at a false positive rate.

    A threshold ``t`` calls every example with ``score >= t`` a member, so
    ``TPR(t) = #{members with score >= t} / #members`` and
    ``FPR(t) = #{non-members with score >= t} / #non-members``. Among every
    threshold with ``FPR(t) <= fpr`` (the distinct scores, and one above them
    all, which flags nobody), return the largest ``TPR(t)``. Equal scores are
    never split: tied examples are flagged together. This is
    ``tpr[searchsorted(fpr_curve, fpr, side="right") - 1]`` of
    ``sklearn.metrics.roc_curve(members, scores, drop_intermediate=False)``.

    Attacks are compared at a low FPR (1e-3 or 1e-2, Carlini et al., 2022):
    an attack that is confident about a few members matters even if its AUC
    is near 0.5. The smallest non-zero FPR a threshold can reach is
    ``1 / #non-members``, so asking for a smaller ``fpr`` is an error rather
    than a number that only says "too few non-members".

    Args:
        scores: ``(N,)`` attack scores, higher = more likely a member (tensor,
            numpy array or list).
        members: ``(N,)`` 1 (or True) for members, 0 for non-members.
        fpr: the false positive rate, ``1 / #non-members <= fpr < 1``.

    Returns:
        A Python float in [0, 1].

    Raises:
        ValueError: if ``scores`` and ``members`` have different lengths, if
            either class is missing, if ``fpr`` is not in (0, 1), or if
            ``fpr < 1 / #non-members`` (no threshold reaches it).
    """
    scores = torch.as_tensor(scores).detach().cpu().double().flatten()
    members = torch.as_tensor(members).detach().cpu().flatten() != 0
    if scores.shape != members.shape:
        raise ValueError(
            f"scores has {scores.numel()} entries but members has {members.numel()}; "
            f"give one membership label per score"
        )
    n_members = int(members.sum())
    n_non = len(members) - n_members
    if n_members == 0 or n_non == 0:
        raise ValueError("members must contain both members (1) and non-members (0)")
    if not 0 < fpr < 1:
        raise ValueError(f"fpr must be in (0, 1), got {fpr}")
    if fpr * n_non < 1:
        raise ValueError(
            f"no threshold reaches FPR {fpr:g} with {n_non} non-members (the smallest non-zero "
            f"FPR is 1/{n_non} = {1 / n_non:.2g}); use at least {int(-(-1 // fpr))} non-members"
        )
    order = torch.argsort(scores, descending=True)
    s, m = scores[order], members[order].double()
    tp, fp = m.cumsum(0), (1 - m).cumsum(0)
    last = torch.ones_like(s, dtype=torch.bool)  # the end of each run of tied scores
    last[:-1] = s[1:] != s[:-1]
    tpr = tp[last] / n_members
    # fpr * n_non in whole false positives: 0.01 * 300 must admit exactly 3, not 2.9999
    allowed = fp[last] <= fpr * n_non + 1e-9
    return float(tpr[allowed].max()) if bool(allowed.any()) else 0.0
