"""Image encoders: a ViT patch embedding or a strided conv stem, then a transformer.

At 64 px the conv stem (two stride-2 3x3 convs with GroupNorm + GELU, then a stride-2 conv to
the model width) sees edges and colours before tokenizing, which buys accuracy per FLOP over a
plain 8x8 patch projection. Both give an 8x8 grid of tokens at 64 px by default.
"""

from __future__ import annotations

import torch
from torch import nn

from trimodal.config import ImageEncoderConfig
from trimodal.modules.encoders.base import EncoderOutput
from trimodal.modules.layers import Pooler, TransformerStack, initial_grid_positions


def stem_norm(kind: str, width: int) -> nn.Module:
    """The normalization after each stem conv: ``group`` (GroupNorm, 8 groups) or ``batch``."""
    if kind == "group":
        return nn.GroupNorm(min(8, width), width)
    if kind == "batch":
        return nn.BatchNorm2d(width)
    raise ValueError(f"model.image.stem_norm must be 'group' or 'batch', got {kind!r}")


def conv_stem(channels: list[int], dim: int, norm: str = "group") -> nn.Sequential:
    """``[B, 3, H, W] -> [B, dim, H / 2**(len(channels)+1), ...]`` via stride-2 3x3 convs."""
    layers: list[nn.Module] = []
    previous = 3
    for width in channels:
        layers += [
            nn.Conv2d(previous, width, 3, stride=2, padding=1, bias=False),
            stem_norm(norm, width),
            nn.GELU(),
        ]
        previous = width
    layers.append(nn.Conv2d(previous, dim, 3, stride=2, padding=1))
    return nn.Sequential(*layers)


class ImageEncoder(nn.Module):
    """Images ``[B, 3, S, S]`` (normalized) -> :class:`EncoderOutput` with ``T = (S / stride)**2``."""

    def __init__(
        self,
        config: ImageEncoderConfig,
        image_size: int,
        dim: int,
        embed_dim: int,
        mlp_ratio: float = 4.0,
        pool: str = "mean",
        position_init: str = "normal",
    ):
        super().__init__()
        self.stem, stride = self.build_stem(config, dim)
        if image_size % stride:
            raise ValueError(
                f"image size {image_size} is not divisible by the stem stride {stride}"
            )
        self.grid = image_size // stride
        self.position_embedding = nn.Parameter(
            initial_grid_positions(position_init, self.grid, dim)
        )
        self.transformer = TransformerStack(dim, config.depth, config.heads, mlp_ratio)
        self.pooler = Pooler(pool, dim, config.heads)
        self.projection = nn.Linear(dim, embed_dim)

    def build_stem(self, config: ImageEncoderConfig, dim: int) -> tuple[nn.Module, int]:
        """The module that turns images ``[B, 3, S, S]`` into ``[B, dim, S / stride, S /
        stride]``, and its stride: a patch projection or the conv stem (``model.image.kind``)."""
        if config.kind == "patch":
            return nn.Conv2d(3, dim, config.patch_size, stride=config.patch_size), config.patch_size
        if config.kind == "conv":
            stem = conv_stem(config.stem_channels, dim, config.stem_norm)
            return stem, 2 ** (len(config.stem_channels) + 1)
        raise ValueError(f"model.image.kind must be 'conv' or 'patch', got {config.kind!r}")

    def forward(self, images: torch.Tensor) -> EncoderOutput:
        """Encode a batch of images; the mask is all True (no padding)."""
        features = self.stem(images)  # (B, D, g, g)
        tokens = features.flatten(2).transpose(1, 2) + self.position_embedding  # (B, g*g, D)
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        tokens = self.transformer(tokens, None)
        return EncoderOutput(tokens, mask, self.projection(self.pooler(tokens, mask)))
