"""Audio encoder: log-mel -> strided 1-D conv subsampling -> transformer -> masked-mean pool."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from trimodal.config import AudioEncoderConfig
from trimodal.data.transforms import MAX_AUDIO_FRAMES
from trimodal.modules.encoders.base import EncoderOutput
from trimodal.modules.layers import Pooler, TransformerStack, sinusoidal_positions


class AudioEncoder(nn.Module):
    """Log-mel ``[B, n_mels, F]`` (+ frame mask ``[B, F]``) -> tokens ``[B, ceil(F / s), D]``.

    ``stack`` consecutive frames are concatenated and linearly projected (a patch embedding
    with stride ``stack``: one large matmul, far cheaper on CPU than a conv at the full frame
    rate), then each stride-2 conv (kernel 3, padding 1) halves the rate until ``subsample``
    frames make one token. Input features are normalized per utterance (mean/std over real
    frames), so loudness and recording level do not matter.
    """

    def __init__(
        self,
        config: AudioEncoderConfig,
        n_mels: int,
        dim: int,
        embed_dim: int,
        mlp_ratio: float = 4.0,
        pool: str = "mean",
    ):
        super().__init__()
        ratio = config.subsample // max(1, config.stack)
        levels = int(math.log2(ratio)) if ratio >= 1 else -1
        if config.stack < 1 or levels < 0 or 2**levels * config.stack != config.subsample:
            raise ValueError(
                f"model.audio: subsample ({config.subsample}) must be stack ({config.stack}) "
                "times a power of two"
            )
        self.stack = config.stack
        self.frame_projection = nn.Linear(n_mels * config.stack, dim)
        layers: list[nn.Module] = [nn.GELU()]
        for _ in range(levels):
            layers += [nn.Conv1d(dim, dim, 3, stride=2, padding=1), nn.GELU()]
        self.subsampling = nn.Sequential(*layers)
        self.levels = levels
        self.register_buffer(
            "positions",
            sinusoidal_positions(MAX_AUDIO_FRAMES // config.subsample + 1, dim),
            persistent=False,
        )
        self.positions: torch.Tensor
        self.transformer = TransformerStack(dim, config.depth, config.heads, mlp_ratio)
        self.pooler = Pooler(pool, dim, config.heads)
        self.projection = nn.Linear(dim, embed_dim)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> EncoderOutput:
        """Encode ``features [B, n_mels, F]`` with frame ``mask [B, F]``."""
        weights = mask.to(features.dtype).unsqueeze(1)  # (B, 1, F)
        count = weights.sum(-1, keepdim=True).clamp_min(1.0)
        mean = (features * weights).sum(-1, keepdim=True) / count
        std = (
            (((features - mean) ** 2 * weights).sum(-1, keepdim=True) / count)
            .sqrt()
            .clamp_min(1e-3)
        )
        normalized = (features - mean) / std * weights  # padding stays exactly zero
        batch, mels, frames = normalized.shape
        padded = F.pad(normalized, (0, (-frames) % self.stack))  # (B, M, F') with F' % stack == 0
        stacked = padded.transpose(1, 2).reshape(
            batch, -1, mels * self.stack
        )  # (B, F'/stack, M*stack)
        projected = self.frame_projection(stacked).transpose(1, 2)  # (B, D, F'/stack)
        lengths = torch.div(mask.sum(-1) + self.stack - 1, self.stack, rounding_mode="floor")
        # Zero every step past a clip's end before each conv, as its own zero padding would
        # be alone: a clip encodes the same in any batch, however much padding follows it.
        x = self.subsampling[0](projected) * _valid(lengths, projected.shape[-1]).unsqueeze(1)
        for level in range(self.levels):
            conv, activation = self.subsampling[1 + 2 * level], self.subsampling[2 + 2 * level]
            lengths = torch.div(lengths - 1, 2, rounding_mode="floor") + 1
            x = activation(conv(x))
            x = x * _valid(lengths, x.shape[-1]).unsqueeze(1)
        tokens = x.transpose(1, 2)  # (B, T, D)
        token_mask = _valid(lengths, tokens.shape[1])
        tokens = tokens + self.positions[: tokens.shape[1]]
        tokens = self.transformer(tokens, token_mask)
        return EncoderOutput(tokens, token_mask, self.projection(self.pooler(tokens, token_mask)))


def _valid(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """``[B, steps]`` mask: True at the first ``lengths[b]`` steps of row ``b``."""
    return torch.arange(steps, device=lengths.device)[None, :] < lengths[:, None]
