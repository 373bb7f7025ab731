"""Image + text classifier from the model family's parts: the image and text encoders, a fusion
module, a transformer over the fused tokens and a linear head.

The same class is the fused model and both single-modality baselines: ``modalities`` names the
inputs it is built for, and fusion modules take any subset, so a baseline differs from the fused
model only in what it reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from trimodal.config import ImageEncoderConfig, TextEncoderConfig
from trimodal.modules.encoders.image import ImageEncoder
from trimodal.modules.encoders.text import TextEncoder
from trimodal.modules.fusion import FUSIONS, build_fusion
from trimodal.modules.layers import Pooler, TokenSequence, TransformerStack

MODALITIES = ("image", "text")


@dataclass
class ClassifierConfig:
    """Everything needed to rebuild a classifier (saved as ``config.json`` in a run)."""

    classes: list[str]
    multi_label: bool
    vocab_size: int
    modalities: list[str] = field(default_factory=lambda: list(MODALITIES))
    image_size: int = 64
    dim: int = 128
    image: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    text: TextEncoderConfig = field(
        default_factory=lambda: TextEncoderConfig(depth=2, heads=4, max_length=64)
    )
    fusion: str = "concat"
    fusion_depth: int = 1
    heads: int = 4
    dropout: float = 0.1

    def __post_init__(self) -> None:
        unknown = sorted(set(self.modalities) - set(MODALITIES))
        if unknown or not self.modalities:
            raise ValueError(
                f"modalities {self.modalities}: each must be one of {', '.join(MODALITIES)}"
            )
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion {self.fusion!r} is not one of {', '.join(sorted(FUSIONS))}")


class ImageTextClassifier(nn.Module):
    """Images ``[B, 3, S, S]`` and/or token ids ``[B, L]`` -> class logits ``[B, C]``."""

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        modalities = tuple(sorted(config.modalities))
        if "image" in modalities:
            self.image_encoder = ImageEncoder(
                config.image, config.image_size, config.dim, config.dim
            )
        if "text" in modalities:
            self.text_encoder = TextEncoder(config.text, config.vocab_size, config.dim, config.dim)
        self.fusion = build_fusion(config.fusion, config.dim, modalities)
        self.backbone = TransformerStack(
            config.dim, config.fusion_depth, config.heads, dropout=config.dropout
        )
        self.pooler = Pooler("mean", config.dim, config.heads)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.dim, len(config.classes))

    @property
    def modalities(self) -> tuple[str, ...]:
        """The inputs this model reads, sorted."""
        return tuple(sorted(self.config.modalities))

    def encode(
        self,
        images: torch.Tensor | None = None,
        ids: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> dict[str, TokenSequence]:
        """Each read modality's tokens ``[B, T_m, D]`` with its mask ``[B, T_m]``."""
        inputs: dict[str, TokenSequence] = {}
        if "image" in self.modalities:
            if images is None:
                raise ValueError("this classifier reads images; none were given")
            inputs["image"] = self.image_encoder(images).sequence()
        if "text" in self.modalities:
            if ids is None or mask is None:
                raise ValueError("this classifier reads text; no token ids were given")
            inputs["text"] = self.text_encoder(ids, mask).sequence()
        return inputs

    def classify(self, inputs: dict[str, TokenSequence]) -> torch.Tensor:
        """Encoded modalities -> logits ``[B, C]`` (fusion, backbone, mean pool, head)."""
        fused = self.fusion(inputs)
        tokens = self.backbone(fused.tokens, fused.mask)
        return self.head(self.dropout(self.pooler(tokens, fused.mask)))

    def forward(
        self,
        images: torch.Tensor | None = None,
        ids: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits ``[B, C]`` from images ``[B, 3, S, S]`` and/or ids and mask ``[B, L]``."""
        return self.classify(self.encode(images, ids, mask))
