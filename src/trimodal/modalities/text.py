"""Text: BPE token ids ``[B, L]`` and their mask -> one token per id."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trimodal.config import Config
from trimodal.modalities.base import Modality
from trimodal.modules.encoders.text import TextEncoder
from trimodal.modules.encoders.tower_text import TowerTextEncoder


class TextModality(Modality):
    """Captions and typed questions, encoded by :class:`TextEncoder` (or, with
    ``model.text.tower``, by :class:`TowerTextEncoder` over a frozen pretrained tower);
    ``encode(..., causal=)`` overrides ``model.text.causal`` for one call."""

    name = "text"
    legacy_prefix = "text_encoder."

    def build_encoder(self, config: Config, vocab_size: int) -> nn.Module:
        m = config.model
        if m.text.tower != "none":
            return TowerTextEncoder(
                m.text, m.dim, m.embed_dim, m.mlp_ratio, m.pool, m.position_init
            )
        return TextEncoder(
            m.text, vocab_size, m.dim, m.embed_dim, m.mlp_ratio, m.pool, m.position_init
        )

    def example_inputs(self, config: Config, batch: int, vocab_size: int) -> tuple[Any, ...]:
        length = min(12, config.model.text.max_length)
        ids = torch.randint(0, vocab_size, (batch, length))
        mask = torch.arange(length)[None, :] < torch.randint(1, length + 1, (batch, 1))
        return ids, mask
