"""Specs for membership.py: the loss attack, the offline LiRA, the shadow-model
attack and the TPR at a low FPR, with members as the positive class (label 1)
and higher scores meaning "more likely a member".

Run them with `make test-security1` (add IMPL=solution to see the reference pass).
Every failure message starts with the graded function it is about.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mlsafety.grading import graded
from mlsafety.specs import python_float

GRADED = {
    "loss_threshold_attack": "core",
    "tpr_at_fpr": "core",
    "lira_offline": "stretch",
    "shadow_attack": "stretch",
}
pytestmark = pytest.mark.timeout(30)


# --------------------------------------------------------------------------- #
# Independent references (written plainly).
# --------------------------------------------------------------------------- #


def auc(scores, members) -> float:
    """Mann-Whitney over all (member, non-member) pairs, ties counted as one half."""
    s = torch.as_tensor(scores).detach().cpu().double().numpy()
    m = np.asarray(torch.as_tensor(members).cpu()) != 0
    pos, neg = s[m][:, None], s[~m][None, :]
    return float((pos > neg).mean() + 0.5 * (pos == neg).mean())


def ref_tpr_at_fpr(s, m, level):
    """Sweep every threshold (each distinct score, and one above them all)."""
    best = 0.0
    for t in [np.inf, *np.unique(s)]:
        flagged = s >= t
        if flagged[m == 0].mean() <= level + 1e-12:
            best = max(best, flagged[m == 1].mean())
    return best


def ref_logit_confidence(logits, y):
    """log(p / (1 - p)) of the true class, from probabilities in float64."""
    p = torch.softmax(logits.double(), dim=-1).gather(-1, y.unsqueeze(-1)).squeeze(-1)
    return torch.log(p) - torch.log1p(-p)


def ref_lira(target_logits, y, reference_logits, global_variance=False):
    from scipy.special import log_ndtr  # log of the standard normal CDF

    phi = ref_logit_confidence(target_logits, y).numpy()
    refs = np.stack([ref_logit_confidence(r, y).numpy() for r in reference_logits])
    mu, var = refs.mean(axis=0), refs.var(axis=0, ddof=1)
    if global_variance:
        var = np.full_like(var, var.mean())
    return log_ndtr((phi - mu) / np.sqrt(var))


def ref_shadow(shadow_logits, shadow_members, target_logits, top_k=3, steps=300, lr=0.5):
    """Logistic regression by full-batch gradient descent, one example at a time."""

    def features(logits):
        probs = torch.softmax(logits.double(), dim=-1).numpy()
        return -np.sort(-probs, axis=1)[:, :top_k]

    f = features(shadow_logits)
    mean, std = f.mean(axis=0), f.std(axis=0)
    std[std == 0] = 1.0
    f = (f - mean) / std
    labels = np.asarray(shadow_members, dtype=float)
    w, b = np.zeros(top_k), 0.0
    for _ in range(steps):
        gw, gb = np.zeros(top_k), 0.0
        for fi, li in zip(f, labels, strict=True):
            err = 1 / (1 + np.exp(-(fi @ w + b))) - li
            gw += err * fi
            gb += err
        w, b = w - lr * gw / len(f), b - lr * gb / len(f)
    return ((features(target_logits) - mean) / std) @ w + b


def random_scores(seed, n=80, ties=True, prevalence=0.5):
    """Scores (float32 tensor) and membership labels (int64 tensor); integer scores tie."""
    rng = np.random.default_rng(seed)
    m = (rng.random(n) < prevalence).astype(np.int64)
    m[:2] = [0, 1]
    s = rng.integers(0, 8, n) + 2.0 * m if ties else rng.normal(size=n) + m
    return torch.tensor(s, dtype=torch.float32), torch.tensor(m)


def tpr(membership, s, m, level):
    return python_float(
        "tpr_at_fpr", membership.tpr_at_fpr(s, m, level), "use float(...) or .item()"
    )


def logits_with_labels(gen, n=40, classes=5, scale=3.0, seed=0):
    g = gen(seed)
    return scale * torch.randn(n, classes, generator=g), torch.randint(
        0, classes, (n,), generator=g
    )


def score_vector(function, scores, n, device=None) -> torch.Tensor:
    assert isinstance(scores, torch.Tensor), (
        f"{function}: returned {type(scores).__name__}, expected a tensor of scores"
    )
    assert scores.shape == (n,), (
        f"{function}: expected scores of shape ({n},), got {tuple(scores.shape)}"
    )
    assert not scores.requires_grad, f"{function}: scores still require grad; return them detached"
    if device is not None:
        assert scores.device.type == torch.device(device).type, (
            f"{function}: scores on {scores.device}, the inputs on {device}"
        )
    return scores


# --------------------------------------------------------------------------- #
# loss_threshold_attack
# --------------------------------------------------------------------------- #


@graded("loss_threshold_attack")
def test_loss_attack_scores_are_minus_the_per_example_loss(membership, privacy):
    model, x, y = privacy["target"], privacy["x"][:48], privacy["y"][:48]
    scores = score_vector(
        "loss_threshold_attack", membership.loss_threshold_attack(model, x, y), 48
    )
    with torch.no_grad():
        want = torch.stack(
            [-F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]) for i in range(len(x))]
        )
    worst = (scores.double() - want.double()).abs().max().item()
    assert worst < 1e-4, (
        f"loss_threshold_attack: score i must be -cross_entropy(model(x_i), y_i), one per "
        f"example; the largest difference is {worst:.3g} (examples 0-2: you give "
        f"{scores[:3].tolist()}, expected {want[:3].tolist()}); a positive score means the "
        f"sign is wrong (higher = more likely a member)"
    )
    assert scores.max().item() <= 0, "loss_threshold_attack: a score is minus a loss, never > 0"


@graded("loss_threshold_attack")
def test_loss_attack_does_not_depend_on_the_batching(membership, privacy):
    model, x, y = privacy["target"], privacy["x"][:37], privacy["y"][:37]
    whole = membership.loss_threshold_attack(model, x, y, batch_size=1000)
    for size in (1, 5, 16):
        part = membership.loss_threshold_attack(model, x, y, batch_size=size)
        worst = (part - whole).abs().max().item()
        assert worst < 1e-5, (
            f"loss_threshold_attack: batch_size={size} changed the scores by up to {worst:.3g} "
            f"against one batch of 37; each example's score is its own loss (no batch mean)"
        )


@graded("loss_threshold_attack")
def test_loss_attack_leaves_the_model_and_inputs_as_found(membership, mlp, gen):
    g = gen(3)
    x, y = torch.randn(30, 12, generator=g), torch.randint(0, 5, (30,), generator=g)
    before = x.clone(), y.clone()
    mlp.train()  # with dropout active the loss of an example is random: eval mode fixes it
    for p in mlp.parameters():
        p.grad = torch.full_like(p, 0.25)
    weights = [p.detach().clone() for p in mlp.parameters()]
    scores = membership.loss_threshold_attack(mlp, x, y, batch_size=7)
    assert mlp.training, (
        "loss_threshold_attack: the model was in train mode and is now in eval mode; put it back "
        "in the mode it was in"
    )
    mlp.eval()
    with torch.no_grad():
        want = -F.cross_entropy(mlp(x), y, reduction="none")
    worst = (scores - want).abs().max().item()
    assert worst < 1e-5, (
        f"loss_threshold_attack: with a dropout layer the scores must be the eval-mode losses; "
        f"they differ by up to {worst:.3g} (did you score in train mode?)"
    )
    assert all(torch.equal(p.grad, torch.full_like(p, 0.25)) for p in mlp.parameters()), (
        "loss_threshold_attack: changed the parameters' .grad; score under torch.no_grad()"
    )
    assert all(torch.equal(a, b) for a, b in zip(weights, mlp.parameters(), strict=True)), (
        "loss_threshold_attack: changed the model's weights"
    )
    assert torch.equal(x, before[0]) and torch.equal(y, before[1]), (
        "loss_threshold_attack: modified x or y in place"
    )
    score_vector("loss_threshold_attack", scores, 30)


@graded("loss_threshold_attack")
def test_loss_attack_runs_on_the_device_of_its_inputs(membership, privacy):
    from mlsafety.hardware import pick_device

    device = pick_device()
    model, x, y = privacy["target"].to(device), privacy["x"][:8], privacy["y"][:8]
    scores = membership.loss_threshold_attack(model, x.to(device), y.to(device))
    score_vector("loss_threshold_attack", scores, 8, device)


@graded("loss_threshold_attack")
def test_loss_attack_rejects_mismatched_lengths(membership, privacy):
    model = privacy["target"]
    for n_x, n_y in ((10, 9), (0, 3)):
        x, y = privacy["x"][:n_x], privacy["y"][:n_y]
        with pytest.raises(ValueError):
            membership.loss_threshold_attack(model, x, y)
            pytest.fail(
                f"loss_threshold_attack: {n_x} inputs with {n_y} labels must raise ValueError",
                pytrace=False,
            )


@pytest.mark.timeout(60)  # the smoke checkpoints on every candidate
@graded("loss_threshold_attack")
def test_loss_attack_finds_the_members_of_an_overfit_model_and_not_of_a_dp_one(membership, privacy):
    x, y, is_member = privacy["x"], privacy["y"], privacy["is_member"]
    n1, n0 = int(is_member.sum()), int((1 - is_member).sum())
    sd = float(np.sqrt((n0 + n1 + 1) / (12 * n0 * n1)))  # of the AUC of an uninformative score
    target = auc(membership.loss_threshold_attack(privacy["target"], x, y), is_member)
    defended = auc(membership.loss_threshold_attack(privacy["target_dp"], x, y), is_member)
    # one-sided test at the 5% level: an uninformative score rarely gets this far
    assert target > 0.5 + 1.65 * sd, (
        f"loss_threshold_attack: on the overfit smoke target the attack's AUC is {target:.3f}; "
        f"it should be clearly above 0.5 (> {0.5 + 1.65 * sd:.3f}): members have the lower "
        f"loss, so score = MINUS the loss"
    )
    assert abs(defended - 0.5) < 3 * sd and defended < target, (
        f"loss_threshold_attack: on the DP-trained target the AUC is {defended:.3f}, expected "
        f"near 0.5 (within {3 * sd:.3f}) and below the overfit target's {target:.3f}"
    )


# --------------------------------------------------------------------------- #
# tpr_at_fpr
# --------------------------------------------------------------------------- #


@graded("tpr_at_fpr")
@pytest.mark.parametrize("level", [0.01, 0.05, 0.1, 0.25, 0.5, 0.9])
def test_tpr_at_fpr_matches_a_threshold_sweep(membership, level):
    for seed in range(6):
        s, m = random_scores(seed, n=100 + 37 * seed, ties=seed % 2 == 0)
        if level * int((m == 0).sum()) < 1:
            continue
        got = tpr(membership, s, m, level)
        want = ref_tpr_at_fpr(s.double().numpy(), m.numpy(), level)
        assert abs(got - want) < 1e-12, (
            f"tpr_at_fpr: at fpr={level} a sweep over every threshold gives TPR {want:.4f}, you "
            f"give {got:.4f} ({len(s)} scores, {'many tied' if seed % 2 == 0 else 'no ties'}, "
            f"seed {seed}); among thresholds t with mean(non-member >= t) <= fpr, report the "
            f"largest mean(member >= t)"
        )


@graded("tpr_at_fpr")
def test_tpr_at_fpr_equals_the_scikit_learn_roc_curve(membership):
    from sklearn.metrics import roc_curve

    for seed in range(4):
        s, m = random_scores(50 + seed, n=2500, ties=seed % 2 == 0)
        fpr_curve, tpr_curve, _ = roc_curve(m.numpy(), s.numpy(), drop_intermediate=False)
        for level in (1e-3, 1e-2):
            want = tpr_curve[np.searchsorted(fpr_curve, level, side="right") - 1]
            got = tpr(membership, s, m, level)
            assert abs(got - want) < 1e-12, (
                f"tpr_at_fpr: at fpr={level} sklearn's ROC curve gives TPR {want:.4f}, you give "
                f"{got:.4f} (2500 scores, seed {50 + seed})"
            )


@graded("tpr_at_fpr")
def test_tpr_at_fpr_counts_an_fpr_exactly_at_the_target(membership):
    # 100 non-members: one false positive is FPR 0.01 exactly, which is allowed
    s = torch.cat([torch.arange(100.0), torch.tensor([99.5, 200.0, 300.0, 50.0])])
    m = torch.cat([torch.zeros(100), torch.ones(4)]).long()
    got = tpr(membership, s, m, 0.01)
    assert abs(got - 0.75) < 1e-12, (
        f"tpr_at_fpr: with the threshold at 99 one non-member of 100 is flagged (FPR = 0.01, "
        f"allowed: FPR <= fpr) and 3 of 4 members, so TPR = 0.75; got {got:.4f} (did you "
        f"require FPR < fpr instead of FPR <= fpr?)"
    )
    assert abs(tpr(membership, s, m, 0.02) - 0.75) < 1e-12


@graded("tpr_at_fpr")
def test_tpr_at_fpr_flags_tied_scores_together(membership):
    # 100 non-members; 3 members tie with one non-member at the top score
    s = torch.cat([torch.arange(100.0), torch.tensor([99.0, 99.0, 99.0, 10.0])])
    m = torch.cat([torch.zeros(100), torch.ones(4)]).long()
    got = tpr(membership, s, m, 0.01)
    assert abs(got - 0.75) < 1e-12, (
        f"tpr_at_fpr: three members tie with a non-member at score 99; flagging them all "
        f"gives FPR 0.01 and TPR 0.75; got {got:.4f}"
    )
    s[99] = 98.0  # that non-member drops below; a second one ties with the members instead
    s[98] = 99.0
    assert abs(tpr(membership, s, m, 0.01) - 0.75) < 1e-12, "tpr_at_fpr: expected 0.75"
    s[97] = 99.0  # two non-members tie with the three members: FPR 0.02 > 0.01
    got = tpr(membership, s, m, 0.01)
    assert abs(got) < 1e-12, (
        f"tpr_at_fpr: two non-members tie with three members at the top, so every threshold "
        f"that flags a member has FPR 0.02 > 0.01 and the TPR is 0; got {got:.4f} (tied scores "
        f"must never be split)"
    )


@graded("tpr_at_fpr")
def test_tpr_at_fpr_accepts_label_types_and_leaves_inputs(membership):
    s, m = random_scores(7, n=300)
    want = ref_tpr_at_fpr(s.double().numpy(), m.numpy(), 0.05)
    before = s.clone(), m.clone()
    for kind, (a, b) in {
        "int64": (s, m),
        "bool": (s, m.bool()),
        "float labels": (s, m.float()),
        "numpy arrays": (s.numpy(), m.numpy()),
        "Python lists": (s.tolist(), m.tolist()),
    }.items():
        got = tpr(membership, a, b, 0.05)
        assert abs(got - want) < 1e-12, (
            f"tpr_at_fpr: with {kind} expected {want:.4f}, got {got:.4f}"
        )
    assert torch.equal(s, before[0]) and torch.equal(m, before[1]), (
        "tpr_at_fpr: modified the scores or labels in place (sorting in place?)"
    )


@graded("tpr_at_fpr")
def test_tpr_at_fpr_rejects_mismatched_lengths(membership):
    s, m = random_scores(1, n=200)
    with pytest.raises(ValueError):
        membership.tpr_at_fpr(s, m[:-1], 0.1)
        pytest.fail(
            "tpr_at_fpr: 200 scores with 199 membership labels must raise ValueError",
            pytrace=False,
        )


@graded("tpr_at_fpr")
def test_tpr_at_fpr_needs_both_classes(membership):
    s = torch.arange(200.0)
    for labels in (torch.zeros(200).long(), torch.ones(200).long()):
        with pytest.raises(ValueError):
            membership.tpr_at_fpr(s, labels, 0.1)
            pytest.fail(
                f"tpr_at_fpr: labels all {int(labels[0])} hold a single class; raise ValueError",
                pytrace=False,
            )


@graded("tpr_at_fpr")
def test_tpr_at_fpr_rejects_fprs_outside_zero_one(membership):
    s, m = random_scores(2, n=400)
    for bad in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError):
            membership.tpr_at_fpr(s, m, bad)
            pytest.fail(f"tpr_at_fpr: fpr={bad} is not in (0, 1); raise ValueError", pytrace=False)


@graded("tpr_at_fpr")
def test_tpr_at_fpr_refuses_an_fpr_no_threshold_reaches(membership):
    s, m = random_scores(3, n=200)
    n0 = int((m == 0).sum())
    with pytest.raises(ValueError):
        membership.tpr_at_fpr(s, m, 0.5 / n0)
        pytest.fail(
            f"tpr_at_fpr: with {n0} non-members the smallest non-zero FPR is 1/{n0}; "
            f"fpr={0.5 / n0:.4g} must raise ValueError (too few non-members)",
            pytrace=False,
        )
    tpr(membership, s, m, 1 / n0)  # exactly one false positive is reachable


# --------------------------------------------------------------------------- #
# lira_offline
# --------------------------------------------------------------------------- #


def lira_case(gen, k=6, n=50, classes=6, seed=0):
    g = gen(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    base = 2.0 * torch.randn(n, classes, generator=g)
    refs = base + 0.8 * torch.randn(k, n, classes, generator=g)
    target = base + 0.8 * torch.randn(n, classes, generator=g)
    return target, y, refs


@graded("lira_offline")
@pytest.mark.parametrize("global_variance", [False, True])
def test_lira_matches_a_reference(membership, gen, global_variance):
    for seed in range(3):
        target, y, refs = lira_case(gen, k=3 + seed, seed=seed)
        before = target.clone(), y.clone(), refs.clone()
        got = membership.lira_offline(target, y, refs, global_variance=global_variance)
        score_vector("lira_offline", got, len(y))
        assert got.dtype == torch.float64, f"lira_offline: return float64 scores, not {got.dtype}"
        want = torch.as_tensor(ref_lira(target, y, refs, global_variance))
        worst = (got - want).abs().max().item()
        assert worst < 1e-6, (
            f"lira_offline: differs from log Phi((phi - mu) / sigma) by up to {worst:.3g} "
            f"(K={3 + seed} references, global_variance={global_variance}); phi = log(p/(1-p)) "
            f"of the true class, mu and sigma (divisor K - 1"
            + (", one pooled variance" if global_variance else "")
            + ") over the references"
        )
        assert all(torch.equal(a, b) for a, b in zip(before, (target, y, refs), strict=True)), (
            "lira_offline: modified its inputs in place"
        )


@graded("lira_offline")
def test_lira_is_one_sided_and_increasing_in_the_target_confidence(membership, gen):
    _, y, refs = lira_case(gen, k=8, n=1, seed=4)
    y = y[:1]
    margins = torch.linspace(-6, 6, 25)
    target = refs.mean(dim=0).repeat(25, 1)
    target[torch.arange(25), y.repeat(25)] += margins  # ever more confident in the true class
    got = membership.lira_offline(
        target, y.repeat(25), refs.repeat(1, 25, 1), global_variance=False
    )
    assert bool((got[1:] > got[:-1]).all()), (
        f"lira_offline: raising the target's confidence in the true class must raise the score "
        f"(one-sided test: members are MORE confident than the OUT models); scores "
        f"{[round(v, 3) for v in got.tolist()]}"
    )
    assert got[-1].item() > np.log(0.5) > got[0].item(), (
        "lira_offline: a target more confident than the OUT models should score above log(1/2), "
        "a less confident one below"
    )


@graded("lira_offline")
def test_lira_stays_finite_for_confident_models(membership):
    # float32 logits whose softmax rounds to exactly 1: p / (1 - p) would be inf
    y = torch.zeros(4, dtype=torch.long)
    margins = torch.tensor([30.0, 40.0, 50.0, 60.0])
    target = torch.zeros(4, 3)
    target[:, 0] = margins + 5
    refs = torch.zeros(5, 4, 3)
    refs[:, :, 0] = margins + torch.linspace(-1, 1, 5)[:, None]
    got = membership.lira_offline(target, y, refs)
    assert bool(torch.isfinite(got).all()), (
        f"lira_offline: confident logits (p_y rounds to 1) gave {got.tolist()}; compute phi as "
        f"logits[y] - logsumexp(other logits), not from p"
    )
    phi = margins + 5 - np.log(2)
    ref_phi = refs[:, :, 0] - np.log(2)
    z = (phi - ref_phi.mean(0)) / ref_phi.std(0)
    from scipy.special import log_ndtr

    want = torch.as_tensor(log_ndtr(z.double().numpy()))
    assert (got - want).abs().max().item() < 1e-6, (
        f"lira_offline: expected {want.tolist()}, got {got.tolist()}"
    )


@graded("lira_offline")
def test_lira_rejects_reference_logits_of_the_wrong_shape(membership, gen):
    target, y, refs = lira_case(gen, k=4)
    for bad, what in ((refs[:, :-1], "fewer examples"), (refs[0], "no model dimension")):
        with pytest.raises(ValueError):
            membership.lira_offline(target, y, bad)
            pytest.fail(
                f"lira_offline: reference logits of shape {tuple(bad.shape)} ({what}) for "
                f"target logits {tuple(target.shape)} must raise ValueError",
                pytrace=False,
            )


@graded("lira_offline")
def test_lira_needs_two_reference_models(membership, gen):
    target, y, refs = lira_case(gen, k=4)
    with pytest.raises(ValueError):
        membership.lira_offline(target, y, refs[:1], global_variance=True)
        pytest.fail(
            "lira_offline: one reference model gives no variance; raise ValueError", pytrace=False
        )


@pytest.mark.timeout(60)  # the smoke checkpoints on every candidate
@graded("lira_offline")
def test_lira_finds_the_members_of_the_overfit_model(membership, privacy):
    x, y, is_member = privacy["x"], privacy["y"], privacy["is_member"]
    with torch.no_grad():
        target = privacy["target"](x)
        refs = torch.stack([shadow(x) for shadow in privacy["shadows"]])
    scores = membership.lira_offline(target, y, refs, global_variance=True)
    got = auc(scores, is_member)
    assert got > 0.56, (
        f"lira_offline: with the 4 shadow models as OUT references, LiRA's AUC on the overfit "
        f"smoke target is {got:.3f}, expected clearly above 0.5"
    )


@pytest.mark.parametrize(
    "name",
    [pytest.param(f, marks=graded(f), id=f) for f in ("lira_offline", "shadow_attack")],
)
def test_attacks_on_logits_run_on_the_device_of_their_inputs(membership, gen, name):
    from mlsafety.hardware import pick_device

    device = pick_device()
    target, y, refs = lira_case(gen, k=3, n=12)
    target, y, refs = target.to(device), y.to(device), refs.to(device)
    if name == "lira_offline":
        scores = membership.lira_offline(target, y, refs)
    else:
        members = torch.tensor([0, 1] * 6, device=device)
        scores = membership.shadow_attack(refs[0], members, target)
    score_vector(name, scores, 12, device)


# --------------------------------------------------------------------------- #
# shadow_attack
# --------------------------------------------------------------------------- #


def shadow_case(gen, n=120, classes=6, seed=0, top_boost=5.0):
    """Members get a larger top logit, as an overfit model gives its training data."""
    g = gen(seed)
    members = (torch.rand(n, generator=g) < 0.5).long()
    members[:2] = torch.tensor([0, 1])
    logits = 1.5 * torch.randn(n, classes, generator=g)
    top = torch.randint(0, classes, (n,), generator=g)
    logits[torch.arange(n), top] += 1.0 + top_boost * members
    return logits, members


@graded("shadow_attack")
def test_shadow_attack_matches_a_reference(membership, gen):
    shadow, members = shadow_case(gen, n=60, seed=1)
    target, _ = shadow_case(gen, n=30, seed=2)
    for kw in ({}, {"top_k": 2, "steps": 25, "lr": 1.0}, {"top_k": 6, "steps": 40}):
        got = membership.shadow_attack(shadow, members, target, **kw)
        score_vector("shadow_attack", got, 30)
        want = torch.as_tensor(ref_shadow(shadow, members, target, **kw))
        worst = (got.double() - want).abs().max().item()
        assert worst < 1e-6, (
            f"shadow_attack: with {kw or 'the defaults'} your scores differ from a reference by "
            f"up to {worst:.3g}; features = the top_k softmax probabilities sorted in DESCENDING "
            f"order, standardised with the shadow features' mean and std (divisor M), then "
            f"full-batch gradient descent from zero on the mean BCE; score = f @ w + b"
        )


@graded("shadow_attack")
def test_shadow_attack_only_centres_a_constant_feature(membership, gen):
    # every row is a permutation of the same logits: the sorted features are constant
    base = torch.tensor([3.0, 1.0, 0.0, -1.0])
    g = gen(9)
    shadow = torch.stack([base[torch.randperm(4, generator=g)] for _ in range(20)])
    members = torch.tensor([0, 1] * 10)
    members[:3] = 1  # 11 members, 9 non-members: the bias learns that prior
    got = membership.shadow_attack(shadow, members, shadow[:5], top_k=4)
    want = torch.as_tensor(ref_shadow(shadow, members, shadow[:5], top_k=4))
    assert bool(torch.isfinite(got).all()) and (got.double() - want).abs().max().item() < 1e-8, (
        f"shadow_attack: when a feature is the same for every shadow row (standard deviation 0) "
        f"it is only centred, not divided by 0; expected {want.tolist()}, got {got.tolist()}"
    )
    assert got.dtype == torch.float64, f"shadow_attack: return float64 scores, not {got.dtype}"


@graded("shadow_attack")
def test_shadow_attack_ignores_which_class_is_which(membership, gen):
    shadow, members = shadow_case(gen, seed=3)
    target, _ = shadow_case(gen, n=40, seed=4)
    plain = membership.shadow_attack(shadow, members, target)
    order = torch.randperm(6, generator=gen(5))
    permuted = membership.shadow_attack(shadow[:, order], members, target[:, order])
    worst = (plain - permuted).abs().max().item()
    assert worst < 1e-8, (
        f"shadow_attack: permuting the classes changed the scores by up to {worst:.3g}; the "
        f"features are the SORTED probabilities, so the class order must not matter"
    )
    rows = torch.randperm(len(shadow), generator=gen(6))
    shuffled = membership.shadow_attack(shadow[rows], members[rows], target)
    assert (plain - shuffled).abs().max().item() < 1e-8, (
        "shadow_attack: shuffling the shadow rows changed the scores; full-batch gradient "
        "descent does not depend on the order of the rows"
    )


@graded("shadow_attack")
def test_shadow_attack_scores_members_higher(membership, gen):
    shadow, members = shadow_case(gen, n=300, seed=7)
    target, target_members = shadow_case(gen, n=200, seed=8)
    scores = membership.shadow_attack(shadow, members, target)
    got = auc(scores, target_members)
    assert got > 0.8, (
        f"shadow_attack: members have a much larger top probability here, yet the attack's AUC "
        f"is {got:.3f} (expected > 0.8); higher scores must mean MORE likely a member "
        f"(label 1 = member when fitting)"
    )
    untrained = membership.shadow_attack(shadow, members, target, steps=0)
    assert torch.equal(untrained.double(), torch.zeros(200, dtype=torch.float64)), (
        "shadow_attack: with steps=0 the weights and bias stay 0, so every score is 0"
    )


@graded("shadow_attack")
def test_shadow_attack_rejects_mismatched_lengths(membership, gen):
    shadow, members = shadow_case(gen, n=50)
    with pytest.raises(ValueError):
        membership.shadow_attack(shadow, members[:-1], shadow)
        pytest.fail(
            "shadow_attack: 50 shadow rows with 49 labels must raise ValueError", pytrace=False
        )


@graded("shadow_attack")
def test_shadow_attack_needs_members_and_non_members(membership, gen):
    shadow, _ = shadow_case(gen, n=50)
    for labels in (torch.zeros(50).long(), torch.ones(50).long()):
        with pytest.raises(ValueError):
            membership.shadow_attack(shadow, labels, shadow)
            pytest.fail(
                f"shadow_attack: shadow labels all {int(labels[0])} hold one class; raise "
                f"ValueError",
                pytrace=False,
            )


@pytest.mark.timeout(60)  # the smoke checkpoints on every candidate
@graded("shadow_attack")
def test_shadow_attack_finds_the_members_of_the_overfit_model(membership, privacy):
    data, x = privacy["data"], privacy["data"]["x"]
    logits, labels = [], []
    with torch.no_grad():
        for shadow, (inside, outside) in zip(privacy["shadows"], data["shards"], strict=True):
            logits += [shadow(x[inside]), shadow(x[outside])]
            labels += [torch.ones(len(inside)), torch.zeros(len(outside))]
        target = privacy["target"](privacy["x"])
    scores = membership.shadow_attack(torch.cat(logits), torch.cat(labels).long(), target)
    got = auc(scores, privacy["is_member"])
    assert got > 0.56, (
        f"shadow_attack: trained on the 4 shadow models, the attack's AUC on the overfit smoke "
        f"target is {got:.3f}, expected clearly above 0.5"
    )
