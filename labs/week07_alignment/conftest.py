"""Fixtures for the week 7 specs: the implementation under test (chosen by
--impl / MLSAFETY_IMPL) and small synthetic data with a
planted structure (preference direction, truth direction)."""

import pytest
import torch

from mlsafety.grading import module_fixture

utility = module_fixture("utility")
consistency = module_fixture("consistency")
ccs = module_fixture("ccs")
goodhart = module_fixture("goodhart")


def planted_pairs(n: int, d: int, seed: int):
    """Ranked pairs of synthetic embeddings whose true utility is ``x . direction``.

    Returns ``(better, worse, direction)``: ``(n, d)`` float32 embeddings with
    ``better @ direction > worse @ direction`` row by row, and the unit
    ``(d,)`` direction.
    """
    g = torch.Generator().manual_seed(seed)
    direction = torch.randn(d, generator=g)
    direction /= direction.norm()
    a, b = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    swap = (a @ direction < b @ direction)[:, None]
    return torch.where(swap, b, a), torch.where(swap, a, b), direction


@pytest.fixture(scope="session")
def preference_data():
    """Train and held-out ranked pairs in 12 dimensions with a planted preference direction."""
    better, worse, direction = planted_pairs(600, 12, seed=7)
    return {
        "train": (better[:400], worse[:400]),
        "test": (better[400:], worse[400:]),
        "direction": direction,
    }


def contrast_pairs(n: int, d: int, seed: int, *, truth=1.0, answer=6.0, content=2.0, noise=0.5):
    """Synthetic activations of contrast pairs with a planted truth direction.

    Statement ``i`` is true or false (``labels[i]``, True when its "Yes"
    version is the true one). Its two activations share a random content
    vector (``content`` scale); the "Yes" side adds ``+truth * t_i * v`` and
    the "No" side ``-truth * t_i * v`` (``t_i = ±1``), so the truth direction
    ``v`` tells which answer is right. Every "Yes" activation also carries
    ``+answer * a`` and every "No" one ``-answer * a``: the direction ``a`` of
    the answer token, large, the same for every statement, and useless for
    truth. Independent noise of scale ``noise`` is added to each side.

    Returns ``(x_pos, x_neg, labels, v, a)``.
    """
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(d, generator=g)
    v /= v.norm()
    a = torch.randn(d, generator=g)
    a -= (a @ v) * v
    a /= a.norm()
    labels = torch.rand(n, generator=g) < 0.5
    t = labels.float() * 2 - 1
    shared = content * torch.randn(n, d, generator=g)
    x_pos = shared + truth * t[:, None] * v + answer * a + noise * torch.randn(n, d, generator=g)
    x_neg = shared - truth * t[:, None] * v - answer * a + noise * torch.randn(n, d, generator=g)
    return x_pos, x_neg, labels, v, a


@pytest.fixture(scope="session")
def contrast_data():
    """Contrast pairs (300 statements, 10 features) with a truth and a large answer direction."""
    return contrast_pairs(300, 10, seed=3)


@pytest.fixture(scope="session")
def make_pairs():
    """planted_pairs(n, d, seed) as a fixture, for specs that need other sizes."""
    return planted_pairs


@pytest.fixture(scope="session")
def make_contrast():
    """contrast_pairs(n, d, seed, ...) as a fixture, for specs that need other settings."""
    return contrast_pairs
