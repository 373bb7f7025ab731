"""Video encoder: a clip's tubelets become tokens, then a transformer over space and time.

A clip ``[B, T, 3, S, S]`` is cut into tubelets of ``tubelet`` frames by ``patch_size`` pixels
squared: by one linear 3-D convolution (``kind: tubelet``, ViViT's tubelet embedding), or by a
small 3-D conv stem over the frames and their frame-to-frame differences (``kind: conv``), whose
nonlinear layers can detect local motion (an edge appearing on one side of an object and
leaving the other) before tokenizing. Each token gets a learned time position plus a learned
grid position, and full attention over all of them relates places and times. An optional
per-token motion head reads, from each token, which way the thing under it moves (trained
densely by the ``video_objects`` task).
"""

from __future__ import annotations

import torch
from torch import nn

from trimodal.config import VideoEncoderConfig
from trimodal.modules.encoders.base import EncoderOutput
from trimodal.modules.layers import Pooler, TransformerStack, initial_positions


def with_differences(volume: torch.Tensor) -> torch.Tensor:
    """``[B, 3, T, S, S]`` -> ``[B, 6, T, S, S]``: the frames, then each frame minus the one
    before it (zero for the first): where something appears or leaves, which way it moves."""
    differences = torch.diff(volume, dim=2, prepend=volume[:, :, :1])
    return torch.cat([volume, differences], dim=1)


def video_stem(config: VideoEncoderConfig, dim: int) -> nn.Module:
    """The clip -> token-volume stem of :class:`VideoEncoder` (``kind``: tubelet or conv)."""
    tubelet = (config.tubelet, config.patch_size, config.patch_size)
    if config.kind == "tubelet":
        return nn.Conv3d(3, dim, tubelet, stride=tubelet)
    if config.kind != "conv":
        raise ValueError(f"model.video.kind must be 'tubelet' or 'conv', got {config.kind!r}")
    stride = 2 ** (len(config.stem_channels) + 1)
    if config.patch_size != stride:
        raise ValueError(
            f"model.video.patch_size must be {stride} for a conv stem of "
            f"{len(config.stem_channels)} layers, got {config.patch_size}"
        )
    layers: list[nn.Module] = []
    previous = 6
    for width in config.stem_channels:
        layers += [
            nn.Conv3d(previous, width, 3, stride=(1, 2, 2), padding=1, bias=False),
            nn.GroupNorm(min(8, width), width),
            nn.GELU(),
        ]
        previous = width
    last = (config.tubelet, 2, 2)
    layers.append(nn.Conv3d(previous, dim, last, stride=last))
    return nn.Sequential(*layers)


class VideoEncoder(nn.Module):
    """Clips ``[B, T, 3, S, S]`` (normalized) -> :class:`EncoderOutput` with
    ``T / tubelet * (S / patch_size) ** 2`` tokens, ordered time-major."""

    def __init__(
        self,
        config: VideoEncoderConfig,
        dim: int,
        embed_dim: int,
        mlp_ratio: float = 4.0,
        pool: str = "mean",
        position_init: str = "normal",
    ):
        super().__init__()
        if config.frames % config.tubelet:
            raise ValueError(
                f"model.video.frames={config.frames} is not divisible by "
                f"model.video.tubelet={config.tubelet}"
            )
        if config.frame_size % config.patch_size:
            raise ValueError(
                f"model.video.frame_size={config.frame_size} is not divisible by "
                f"model.video.patch_size={config.patch_size}"
            )
        self.frames = config.frames
        self.steps = config.frames // config.tubelet
        self.grid = config.frame_size // config.patch_size
        self.kind = config.kind
        self.tubelets = video_stem(config, dim)
        self.time_positions = nn.Parameter(initial_positions(position_init, self.steps, dim))
        self.grid_positions = nn.Parameter(
            initial_positions(position_init, self.grid * self.grid, dim)
        )
        self.transformer = TransformerStack(dim, config.depth, config.heads, mlp_ratio)
        self.pooler = Pooler(pool, dim, config.heads)
        self.projection = nn.Linear(dim, embed_dim)
        self.motion_head = (
            nn.Linear(dim, config.motion_classes) if config.motion_classes > 0 else None
        )

    def motion_logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """Per-token motion scores ``[B, T, motion_classes]`` from encoded ``tokens [B, T, D]``:
        which way the thing under each token moves (or that nothing is there)."""
        if self.motion_head is None:
            raise ValueError(
                "model.video.motion_classes is 0: this video encoder has no motion head"
            )
        return self.motion_head(tokens)

    def forward(self, clips: torch.Tensor) -> EncoderOutput:
        """Encode a batch of clips; the mask is all True (every clip has all its frames)."""
        if clips.dim() != 5 or clips.shape[1] != self.frames:
            raise ValueError(
                f"expected clips [B, {self.frames}, 3, S, S], got {tuple(clips.shape)}"
            )
        volume = clips.transpose(1, 2)  # (B, 3, T, S, S)
        if self.kind == "conv":
            volume = with_differences(volume)  # (B, 6, T, S, S)
        features = self.tubelets(volume)  # (B, D, T/t, g, g)
        batch, dim = features.shape[:2]
        tokens = features.flatten(3).permute(0, 2, 3, 1)  # (B, T/t, g*g, D)
        tokens = tokens + self.time_positions[:, None, :] + self.grid_positions[None, :, :]
        tokens = tokens.reshape(batch, -1, dim)  # (B, T/t * g*g, D)
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        tokens = self.transformer(tokens, None)
        return EncoderOutput(tokens, mask, self.projection(self.pooler(tokens, mask)))
