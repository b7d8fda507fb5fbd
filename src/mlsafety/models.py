"""Small models shared by the labs."""

from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    """Two conv blocks and a two-layer head: about 0.1 M parameters at width 16.

    Input: float images in [0, 1], shape ``(N, in_channels, image_size, image_size)``
    with ``image_size`` divisible by 4. Output: logits ``(N, num_classes)``.
    No batch norm or dropout, so train and eval mode compute the same function
    (attacks and evaluations can then be compared exactly).
    """

    def __init__(
        self, in_channels: int = 1, num_classes: int = 10, width: int = 16, image_size: int = 28
    ):
        super().__init__()
        self.config = {
            "in_channels": in_channels,
            "num_classes": num_classes,
            "width": width,
            "image_size": image_size,
        }
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        side = image_size // 4
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(2 * width * side * side, 4 * width),
            nn.ReLU(),
            nn.Linear(4 * width, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def small_cnn_for(
    x: torch.Tensor, num_classes: int = 10, width: int = 16, seed: int = 0
) -> SmallCNN:
    """A freshly initialised SmallCNN sized for images like ``x``, seeded."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SmallCNN(x.shape[1], num_classes, width, x.shape[-1])


def _instruct_lm(**config):
    """The language model of security lab 3 (transformers is imported only here)."""
    from transformers.initialization import no_init_weights

    from mlsafety.llm import InstructLM

    with no_init_weights():  # the checkpoint's weights replace them at once
        return InstructLM(**config)


MODELS = {"SmallCNN": SmallCNN, "InstructLM": _instruct_lm}
