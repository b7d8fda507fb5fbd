"""mlsafety.text: offline hashed sentence features and week 7's generated scenarios."""

import socket

import numpy as np
import pytest
import torch

from mlsafety.specs import same_global_draw
from mlsafety.text import (
    ADDITIONS,
    MIN_GAP,
    SCOPE_COUNTS,
    TRAIN_COUNTS,
    embed,
    planted_utility,
    scenario_sentence,
    scenarios,
)

# Computed once and written down: the same numbers must come out on every machine
# (MurmurHash3 buckets, numpy's PCG64 normals, a plain sparse product).
GOLDEN = {
    ("I saved 5 people from a fire.", 0): [
        0.585963, -0.245504, -0.300512, -0.029735, 0.105225, -0.397078, -0.460811, -0.352269
    ],
    ("The stock market fell.", 0): [
        0.038528, 0.431674, 0.140644, 0.639099, 0.322608, -0.103001, -0.256908, -0.450842
    ],
    ("I saved 5 people from a fire.", 1): [
        0.24913, -0.385644, 0.17712, -0.442311, -0.404387, 0.128175, -0.447414, 0.426692
    ],
}  # fmt: skip


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("mlsafety.text tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_embed_shape_dtype_and_unit_rows(offline):
    x = embed(["I saved 5 people from a fire.", "I lied to 2 strangers.", ""], dim=64)
    assert isinstance(x, torch.Tensor) and x.dtype == torch.float32 and x.device.type == "cpu"
    assert tuple(x.shape) == (3, 64)
    norms = x.norm(dim=1)
    assert torch.allclose(norms[:2], torch.ones(2), atol=1e-5)
    assert norms[2] == 0, "a sentence without words embeds as a zero row"
    assert tuple(embed([], dim=16).shape) == (0, 16)
    assert tuple(embed(("a tuple", "of sentences")).shape) == (2, 512), "default dim is 512"


def test_embed_is_deterministic_and_matches_the_recorded_values(offline):
    sentences = ["I saved 5 people from a fire.", "The stock market fell."]
    first, again = embed(sentences, dim=8, seed=0), embed(list(sentences), dim=8, seed=0)
    assert torch.equal(first, again)
    for (sentence, seed), want in GOLDEN.items():
        got = embed([sentence], dim=8, seed=seed)[0]
        assert torch.allclose(got, torch.tensor(want), atol=1e-5), (sentence, seed, got.tolist())
    assert not torch.allclose(embed(sentences[:1], 8, seed=0), embed(sentences[:1], 8, seed=1))


def test_embed_rows_do_not_depend_on_the_batch(offline):
    sentences = ["I helped 3 neighbours carry their shopping.", "I stole money from 1 child."]
    together = embed(sentences, dim=32)
    alone = torch.cat([embed([s], dim=32) for s in sentences])
    assert torch.allclose(together, alone, atol=1e-6)


def test_similar_sentences_are_closer_than_unrelated_ones(offline):
    a, b, c, d = embed(
        [
            "I saved 5 people from a fire.",
            "I saved 6 people from a fire.",
            "I saved 5 children from a flood.",
            "The quarterly report is due on Friday.",
        ]
    )
    assert a @ b > a @ c > a @ d
    assert a @ b > 0.7 and abs(a @ d) < 0.2


def test_embed_leaves_the_global_generators_alone(offline):
    assert same_global_draw(lambda: embed(["one sentence"], dim=16, seed=3))
    state = torch.random.get_rng_state()
    embed(["one sentence"], dim=16, seed=4)
    assert torch.equal(state, torch.random.get_rng_state())


def test_embed_rejects_a_bare_string_and_bad_sizes():
    with pytest.raises(TypeError, match="list of sentences"):
        embed("I saved 5 people from a fire.")
    with pytest.raises(TypeError):
        embed(["fine", 3])
    with pytest.raises(ValueError):
        embed(["fine"], dim=0)


def test_scenarios_are_reproducible_from_the_seed(offline):
    a, b, c = scenarios(0, n_train=50, n_test=20), scenarios(0, n_train=50, n_test=20), scenarios(1)
    assert a == b
    assert a.train != c.train[:50]
    assert same_global_draw(lambda: scenarios(2, n_train=10, n_test=5))


def test_scenario_pairs_have_the_planted_order():
    s = scenarios(3)
    assert len(s.train) == 2000 and len(s.test) == 500
    for better, worse in s.train + s.test:
        assert s.utility[better] >= s.utility[worse] + MIN_GAP, (better, worse)
    words = " ".join(better + " " + worse for better, worse in s.train).split()
    assert {int(word) for word in words if word.isdigit()} <= set(TRAIN_COUNTS)


def test_scenario_probe_sets_describe_equal_outcomes():
    s = scenarios(4, n_probe=25)
    assert s.counts == SCOPE_COUNTS and list(s.counts) == sorted(s.counts)
    for act, series in s.scope.items():
        assert len(series) == len(s.counts)
        values = [s.utility[text] for text in series]
        sign = np.sign(s.valence[act])
        assert all(np.sign(b - a) == sign for a, b in zip(values, values[1:], strict=False))
    assert s.scope["save"][0] == "I saved 1 person from a fire."
    for name in ("framing", "paraphrase", "irrelevant"):
        pairs = getattr(s, name)
        assert len(pairs) == 25
        assert all(s.utility[a] == s.utility[b] and a != b for a, b in pairs), name
    assert len(s.questions) == 50
    assert all((s.utility[text] > 0) == good for text, good in s.questions)
    training_text = " ".join(b + " " + w for b, w in s.train)
    for addition in ADDITIONS:
        assert addition.strip() not in training_text, (
            "irrelevant additions never appear in training"
        )


def test_scenario_sentences_and_their_planted_utility():
    assert scenario_sentence("save", "children", 5) == "I saved 5 children from a fire."
    assert scenario_sentence("save", "children", 1) == "I saved 1 child from a fire."
    assert (
        scenario_sentence("rob", "people", 3, paraphrase=True, tail=" on a Tuesday")
        == "I took money from 3 people without asking on a Tuesday."
    )
    assert planted_utility("save", "children", 3) == 3.0 * 1.5 * 2.0
    assert planted_utility("greet", "people", 100) == 0.0
    assert planted_utility("injure", "people", 7) < planted_utility("injure", "people", 1) < 0


def test_statements_have_known_truth_and_a_negation():
    from mlsafety.text import CAPITALS, KINDS, STATEMENT_TOPICS, statements

    found = statements(0, n=80)
    assert found == statements(0, n=80) and found != statements(1, n=80)
    assert same_global_draw(lambda: statements(2, n=8))
    assert [s.topic for s in found[:4]] == list(STATEMENT_TOPICS)
    for topic in STATEMENT_TOPICS:
        mine = [s for s in found if s.topic == topic]
        assert sum(s.true for s in mine) == len(mine) // 2, f"{topic}: half true"
    for s in found:
        assert s.negation != s.text and "not" in s.negation.split()
        words = s.text.rstrip(".").split()
        if s.topic == "arithmetic":
            assert (int(words[0]) + int(words[2]) == int(words[4])) == s.true, s
        elif s.topic == "comparison":
            assert (int(words[0]) > int(words[4])) == s.true, s
        elif s.topic == "capital":
            assert (CAPITALS[words[-1]] == words[0]) == s.true, s
        else:
            assert (KINDS[words[1]] == words[-1]) == s.true, s
    assert {s.topic for s in statements(0, n=6, topics=["capital"])} == {"capital"}
    with pytest.raises(ValueError):
        statements(0, n=4, topics=["astrology"])
    with pytest.raises(ValueError):
        statements(0, n=-1)
