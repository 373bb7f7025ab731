"""Audio: log-mel ``[B, n_mels, F]`` and a frame mask ``[B, F]`` -> subsampled frame tokens."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trimodal.config import Config
from trimodal.modalities.base import Modality
from trimodal.modules.encoders.audio import AudioEncoder
from trimodal.modules.encoders.base import EncoderOutput, encode_in_length_groups


class AudioModality(Modality):
    """Spoken captions and questions, encoded by :class:`AudioEncoder` in groups of similar
    length (``model.length_groups``), so short clips do not pay for the longest one."""

    name = "audio"
    legacy_prefix = "audio_encoder."

    def build_encoder(self, config: Config, vocab_size: int) -> nn.Module:
        m = config.model
        return AudioEncoder(m.audio, config.data.n_mels, m.dim, m.embed_dim, m.mlp_ratio, m.pool)

    def encode(
        self, encoder: nn.Module, config: Config, *inputs: Any, **options: Any
    ) -> EncoderOutput:
        features, mask = inputs
        return encode_in_length_groups(encoder, features, mask, config.model.length_groups)

    def example_inputs(self, config: Config, batch: int, vocab_size: int) -> tuple[Any, ...]:
        frames = 96
        features = torch.randn(batch, config.data.n_mels, frames)
        mask = torch.arange(frames)[None, :] < torch.randint(8, frames + 1, (batch, 1))
        return features, mask
