"""Video encoder: tubelet patches of a clip, then a transformer over space and time.

A clip ``[B, T, 3, S, S]`` is cut into tubelets of ``tubelet`` frames by ``patch_size`` pixels
squared (one 3-D convolution, as in ViViT's tubelet embedding); each tubelet becomes a token
with a learned time position plus a learned grid position, and full attention over all of them
lets the model compare where an object is early and late in the clip (which way it moves).
"""

from __future__ import annotations

import torch
from torch import nn

from trimodal.config import VideoEncoderConfig
from trimodal.modules.encoders.base import EncoderOutput
from trimodal.modules.layers import Pooler, TransformerStack, initial_positions


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
        size = (config.tubelet, config.patch_size, config.patch_size)
        self.tubelets = nn.Conv3d(3, dim, size, stride=size)
        self.time_positions = nn.Parameter(initial_positions(position_init, self.steps, dim))
        self.grid_positions = nn.Parameter(
            initial_positions(position_init, self.grid * self.grid, dim)
        )
        self.transformer = TransformerStack(dim, config.depth, config.heads, mlp_ratio)
        self.pooler = Pooler(pool, dim, config.heads)
        self.projection = nn.Linear(dim, embed_dim)

    def forward(self, clips: torch.Tensor) -> EncoderOutput:
        """Encode a batch of clips; the mask is all True (every clip has all its frames)."""
        if clips.dim() != 5 or clips.shape[1] != self.frames:
            raise ValueError(
                f"expected clips [B, {self.frames}, 3, S, S], got {tuple(clips.shape)}"
            )
        features = self.tubelets(clips.transpose(1, 2))  # (B, D, T/t, g, g)
        batch, dim = features.shape[:2]
        tokens = features.flatten(3).permute(0, 2, 3, 1)  # (B, T/t, g*g, D)
        tokens = tokens + self.time_positions[:, None, :] + self.grid_positions[None, :, :]
        tokens = tokens.reshape(batch, -1, dim)  # (B, T/t * g*g, D)
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        tokens = self.transformer(tokens, None)
        return EncoderOutput(tokens, mask, self.projection(self.pooler(tokens, mask)))
