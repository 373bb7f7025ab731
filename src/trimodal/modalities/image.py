"""Images: normalized pixels ``[B, 3, S, S]`` -> a grid of tokens."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trimodal.config import Config
from trimodal.modalities.base import Modality
from trimodal.modules.encoders.image import ImageEncoder
from trimodal.modules.encoders.tower_image import TowerImageEncoder


class ImageModality(Modality):
    """Images, encoded by :class:`ImageEncoder` (conv or patch stem, then a transformer; with
    ``model.image.tower``, by :class:`TowerImageEncoder` over a frozen pretrained tower)."""

    name = "image"
    legacy_prefix = "image_encoder."

    def build_encoder(self, config: Config, vocab_size: int) -> nn.Module:
        m = config.model
        encoder = TowerImageEncoder if m.image.tower != "none" else ImageEncoder
        return encoder(
            m.image,
            config.data.image_size,
            m.dim,
            m.embed_dim,
            m.mlp_ratio,
            m.pool,
            m.position_init,
        )

    def example_inputs(self, config: Config, batch: int, vocab_size: int) -> tuple[Any, ...]:
        size = config.data.image_size
        return (torch.randn(batch, 3, size, size),)
