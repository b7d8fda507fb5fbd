"""mlsafety.encoder: the MiniLM-L6 sentence encoder, offline, batched and cached."""

import importlib.util
import os
import socket

import pytest
import torch

from mlsafety import SetupError, encoder

# The first test imports sentence-transformers and transformers: seconds on an idle
# machine, minutes on a busy one.
pytestmark = pytest.mark.timeout(300)

SENTENCES = [
    "I saved 5 people from a fire.",
    "I rescued 5 people from a burning house.",
    "I stole money from 3 neighbours before breakfast.",
    "Paris is the capital of France.",
    "The quarterly report is due on Friday, and nobody has started it yet.",
]


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("mlsafety.encoder tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture
def cache_root(tmp_path, monkeypatch):
    """An empty data root, so every test starts with an empty cache."""
    monkeypatch.setenv("MLSAFETY_DATA", str(tmp_path / "data"))
    return tmp_path / "data" / "encoder"


@pytest.fixture(scope="module")
def model():
    return encoder.load("cpu")


def test_loads_offline_once_on_the_chosen_device(offline, monkeypatch):
    for key in encoder.OFFLINE:
        monkeypatch.delenv(key, raising=False)
    encoder._load.cache_clear()
    first = encoder.load("cpu")
    assert all(os.environ[key] == "1" for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    assert encoder.load("cpu") is first, "the model is loaded once per device"
    assert first.device == torch.device("cpu") and first.layers == 6 and first.dim == 384
    assert not first.bert.training
    assert not any(p.requires_grad for p in first.model.parameters())
    assert len(first.hash) == 64 and first.hash == encoder.model_hash()


def test_a_missing_package_is_one_line_naming_the_fix(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SetupError) as err:
        encoder.model_dir()
    message = str(err.value)
    assert "\n" not in message and "make setup" in message and encoder.PIP_NAME in message


def test_encode_matches_sentence_transformers(model, cache_root, offline):
    got = encoder.encode(SENTENCES)
    assert got.dtype == torch.float32 and got.device.type == "cpu"
    assert tuple(got.shape) == (len(SENTENCES), 384)
    assert torch.allclose(got.norm(dim=1), torch.ones(len(SENTENCES)), atol=1e-5)
    want = model.model.encode(SENTENCES, convert_to_tensor=True).cpu()
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
    assert tuple(encoder.encode([]).shape) == (0, 384)


def test_rows_do_not_depend_on_the_batch_or_duplicates(model, cache_root):
    together = encoder.encode(SENTENCES, cache=False)
    alone = encoder.encode(SENTENCES, batch_size=1, cache=False)
    assert torch.allclose(together, alone, atol=1e-5)
    doubled = encoder.encode(SENTENCES[:2] + SENTENCES[:2], cache=False)
    assert torch.equal(doubled[:2], doubled[2:])


def test_meaning_beats_shared_words(model, cache_root):
    """What a hashing featurizer cannot do: a paraphrase is closer than a sentence
    that shares most of its words but not its meaning."""
    saved, rescued, _, _, report = encoder.encode(SENTENCES)
    decoy = encoder.encode(["I saved 5 dollars from a fire sale."])[0]
    assert saved @ rescued > saved @ decoy > saved @ report


def test_hidden_states_per_layer(model, cache_root):
    states = encoder.hidden_states(SENTENCES[:3])
    assert states.dtype == torch.float32 and tuple(states.shape) == (7, 3, 384)
    last = torch.nn.functional.normalize(states[-1], dim=-1)
    assert torch.allclose(last, encoder.encode(SENTENCES[:3]), atol=1e-5)
    ids, mask, tokens = model.tokenize(SENTENCES[:1])
    with torch.no_grad():
        layer2 = model.bert(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    assert torch.allclose(states[2, 0], layer2.hidden_states[2][0].mean(0), atol=1e-5)
    assert tokens[0][0] == "[CLS]" and tokens[0][-1] == "[SEP]"


def test_the_cache_is_keyed_by_sentences_and_model(model, cache_root, monkeypatch):
    first = encoder.encode(SENTENCES[:2])
    files = sorted(cache_root.glob("embed-*.pt"))
    assert len(files) == 1, f"one cache file per set, found {files}"

    def no_model(*args, **kwargs):
        raise AssertionError("recomputed what the cache holds")

    monkeypatch.setattr(encoder, "_pooled_layers", no_model)
    assert torch.equal(encoder.encode(SENTENCES[:2]), first)
    with pytest.raises(AssertionError, match="recomputed"):
        encoder.encode(SENTENCES[1:3])
    key = encoder.cache_key("embed", SENTENCES[:2], model.hash)
    assert files[0].name == key
    assert encoder.cache_key("embed", SENTENCES[:2], "0" * 64) != key
    assert encoder.cache_key("embed", SENTENCES[1::-1], model.hash) != key


def test_the_cache_moves_to_the_user_cache_when_the_data_root_is_read_only(monkeypatch, tmp_path):
    from mlsafety import paths

    monkeypatch.setenv("MLSAFETY_DATA", str(tmp_path / "baked"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home-cache"))
    assert encoder.cache_dir() == tmp_path / "baked" / "encoder"
    monkeypatch.setattr(paths, "writable", lambda folder: False)
    assert encoder.cache_dir() == tmp_path / "home-cache" / "mlsafety" / "encoder"


def test_a_damaged_cache_file_is_recomputed(model, cache_root):
    first = encoder.encode(SENTENCES[:1])
    (path,) = cache_root.glob("embed-*.pt")
    path.write_bytes(b"not a tensor")
    assert torch.allclose(encoder.encode(SENTENCES[:1]), first)


def test_bad_input_is_one_clear_error():
    with pytest.raises(TypeError, match="list of sentences"):
        encoder.encode("I saved 5 people from a fire.")
    with pytest.raises(TypeError):
        encoder.hidden_states(["fine", 3])
    with pytest.raises(ValueError, match="batch_size"):
        encoder.encode(["fine"], batch_size=0)


def test_text_classifier_explains_the_sentence_embedding_head(model, cache_root):
    g = torch.Generator().manual_seed(0)
    head = torch.nn.Linear(384, 2)
    with torch.no_grad():
        head.weight.copy_(torch.randn(2, 384, generator=g))
    classifier = encoder.text_classifier(head, device="cpu")
    embeds, mask, tokens = classifier.inputs(SENTENCES)
    assert embeds.shape[:2] == mask.shape and embeds.shape[2] == 384
    with torch.no_grad():
        logits = classifier(embeds, mask)
        want = head(encoder.encode(SENTENCES))
        alone = classifier(*classifier.inputs(SENTENCES[:1])[:2])
    assert torch.allclose(logits, want, atol=1e-4), "head(encode(s)) and the classifier agree"
    assert torch.allclose(alone, logits[:1], atol=1e-4), "padding has no influence"
    assert [len(t) for t in tokens] == mask.sum(1).tolist()
    assert torch.equal(model.pad_embedding(), model.word_embeddings(torch.tensor([0]))[0])


def test_fit_head_separates_good_from_bad_scenarios(model, cache_root):
    from mlsafety.text import scenarios

    questions = scenarios(0, n_train=10, n_test=10, n_probe=40).questions
    x = encoder.encode([q for q, _ in questions])
    y = torch.tensor([int(good) for _, good in questions])
    head = encoder.fit_head(x[:60], y[:60], 2, steps=100)
    accuracy = (head(x[60:]).argmax(1) == y[60:]).float().mean().item()
    assert accuracy > 0.85, accuracy
    again = encoder.fit_head(x[:60], y[:60], 2, steps=100)
    assert torch.equal(head.weight, again.weight), "the same seed gives the same head"


def test_week6_text_ig_is_complete_on_the_real_classifier(model, cache_root):
    """The reference token IG on MiniLM with a head: completeness within 2% at 32
    steps from the [PAD] baseline, padding at 0, the [CLS] ... [SEP] tokens covered."""
    from mlsafety.grading import load_module

    text_saliency = load_module("text_saliency", 6, "solution")
    g = torch.Generator().manual_seed(1)
    head = torch.nn.Linear(384, 2)
    with torch.no_grad():
        head.weight.copy_(torch.randn(2, 384, generator=g))
    classifier = encoder.text_classifier(head, device="cpu")
    embeds, mask, tokens = classifier.inputs(SENTENCES[:2])
    pad = model.pad_embedding()
    ig = text_saliency.token_integrated_gradients(
        classifier, embeds, mask, 1, baseline=pad, steps=32
    )
    with torch.no_grad():
        change = classifier(embeds, mask)[:, 1] - classifier(pad.expand_as(embeds), mask)[:, 1]
    gap = text_saliency.completeness_gap(classifier, embeds, mask, 1, ig, baseline=pad)
    assert (gap.abs() / change.abs()).max() < 0.02, (gap, change)
    assert torch.all(ig[mask == 0] == 0) and ig.shape == mask.shape
