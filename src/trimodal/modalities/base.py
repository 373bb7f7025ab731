"""A modality is one object: its name, the encoder it builds and how that encoder is called.

The model holds one encoder per registered modality in ``encoders: nn.ModuleDict`` keyed by the
modality's name and reaches it through ``TriModalModel.encode(name, ...)``; nothing else in the
model names a modality's encoder. See :mod:`trimodal.modalities` for the registry.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from torch import nn

from trimodal.config import Config
from trimodal.modules.encoders.base import EncoderOutput


class Modality(ABC):
    """One input modality.

    Attributes:
        name: the key of its encoder in ``TriModalModel.encoders`` and of its inputs in fusion.
        legacy_prefix: where checkpoints written before the registry kept its encoder's weights
            (``"image_encoder."``); they load under ``encoders.<name>.``.
    """

    name: str
    legacy_prefix: str

    @abstractmethod
    def build_encoder(self, config: Config, vocab_size: int) -> nn.Module:
        """The modality's encoder for a recipe (``vocab_size``: the tokenizer's)."""

    def encode(
        self, encoder: nn.Module, config: Config, *inputs: Any, **options: Any
    ) -> EncoderOutput:
        """Run ``encoder`` on one batch of this modality's inputs."""
        output: EncoderOutput = encoder(*inputs, **options)
        return output
