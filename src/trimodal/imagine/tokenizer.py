"""A discrete image tokenizer (VQ-VAE, van den Oord et al. 2017) for the world's 64 px scenes.

Encoder: three stride-2 convs (64 -> 8) and a residual block to ``code_dim`` channels; each of
the 8 x 8 vectors is replaced by its nearest codebook entry (``codes`` entries); the decoder
mirrors the encoder with transposed convs. The codebook follows the encoder's outputs by
exponential moving averages (no codebook gradient), with the commitment loss pulling the
encoder toward its codes; entries unused for a while restart at a random encoder output of the
batch (so all of them stay in use). An image is then 64 token ids, which the prior predicts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class TokenizerConfig:
    """Sizes of the tokenizer."""

    codes: int = 256
    code_dim: int = 32
    width: int = 64
    decay: float = 0.95
    commitment: float = 0.25


class _Residual(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.GELU(), nn.Conv2d(width, width, 3, padding=1), nn.GELU(), nn.Conv2d(width, width, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ImageTokenizer(nn.Module):
    """Images ``[B, 3, 64, 64]`` in [-1, 1] <-> token ids ``[B, 8, 8]``."""

    def __init__(self, config: TokenizerConfig):
        super().__init__()
        self.config = config
        w, d = config.width, config.code_dim
        self.encoder = nn.Sequential(
            nn.Conv2d(3, w, 4, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(2 * w, 2 * w, 4, stride=2, padding=1),
            _Residual(2 * w),
            nn.GELU(),
            nn.Conv2d(2 * w, d, 1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(d, 2 * w, 3, padding=1),
            _Residual(2 * w),
            nn.GELU(),
            nn.ConvTranspose2d(2 * w, 2 * w, 4, stride=2, padding=1),
            nn.GELU(),
            nn.ConvTranspose2d(2 * w, w, 4, stride=2, padding=1),
            nn.GELU(),
            nn.ConvTranspose2d(w, 3, 4, stride=2, padding=1),
        )
        self.codebook: torch.Tensor
        self.register_buffer("codebook", torch.randn(config.codes, d) * 0.1)
        self.register_buffer("cluster_size", torch.ones(config.codes))
        self.register_buffer("cluster_sum", self.codebook.clone())
        self.cluster_size: torch.Tensor
        self.cluster_sum: torch.Tensor

    def nearest(self, vectors: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code for each row of ``vectors`` ``[N, d]`` -> ``[N]``."""
        distances = (
            vectors.pow(2).sum(1, keepdim=True)
            - 2 * vectors @ self.codebook.t()
            + self.codebook.pow(2).sum(1)[None]
        )
        return distances.argmin(1)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Token ids ``[B, 8, 8]`` of images in [-1, 1]."""
        latent = self.encoder(images)  # (B, d, 8, 8)
        batch, dim, height, width = latent.shape
        flat = latent.permute(0, 2, 3, 1).reshape(-1, dim)
        return self.nearest(flat).view(batch, height, width)

    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        """Images ``[B, 3, 64, 64]`` in [-1, 1] from token ids ``[B, 8, 8]``."""
        vectors = self.codebook[ids].permute(0, 3, 1, 2)  # (B, d, 8, 8)
        return self.decoder(vectors).clamp(-1, 1)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass: reconstruction ``[B, 3, 64, 64]``, the loss (reconstruction MSE plus
        commitment) and the ids ``[B, 8, 8]``. Updates the codebook in training mode."""
        latent = self.encoder(images)
        batch, dim, height, width = latent.shape
        flat = latent.permute(0, 2, 3, 1).reshape(-1, dim)
        ids = self.nearest(flat.detach())
        if self.training:
            self._update_codebook(flat.detach(), ids)
        quantized = self.codebook[ids]
        commitment = F.mse_loss(flat, quantized)
        straight = flat + (quantized - flat).detach()  # straight-through gradient
        decoded = self.decoder(straight.view(batch, height, width, dim).permute(0, 3, 1, 2))
        loss = F.mse_loss(decoded, images) + self.config.commitment * commitment
        return decoded, loss, ids.view(batch, height, width)

    @torch.no_grad()
    def _update_codebook(self, vectors: torch.Tensor, ids: torch.Tensor) -> None:
        decay = self.config.decay
        one_hot = F.one_hot(ids, self.config.codes).to(vectors.dtype)  # (N, K)
        self.cluster_size.mul_(decay).add_(one_hot.sum(0), alpha=1 - decay)
        self.cluster_sum.mul_(decay).add_(one_hot.t() @ vectors, alpha=1 - decay)
        self.codebook.copy_(self.cluster_sum / self.cluster_size.clamp_min(1e-5)[:, None])
        dead = self.cluster_size < 1e-2
        if bool(dead.any()):
            picks = torch.randint(0, vectors.shape[0], (int(dead.sum()),), device=vectors.device)
            self.codebook[dead] = vectors[picks]
            self.cluster_sum[dead] = vectors[picks]
            self.cluster_size[dead] = 1.0
