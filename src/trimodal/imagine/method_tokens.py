"""The token method of ``trimodal imagine``: a VQ-VAE tokenizer plus our decoder over its ids.

Training fits the tokenizer on the training images (reconstruction), then the caption-to-ids
prior on the tokenizer's ids of every training image. Painting samples 64 ids from the prior
and the tokenizer's decoder turns them into pixels. Files in a run folder:
``tokenizer.safetensors`` and ``prior.safetensors``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from trimodal.config import from_dict, to_dict
from trimodal.imagine.painter import Sampling, to_unit
from trimodal.imagine.prior import IMAGE_TOKENS, CaptionToImage
from trimodal.imagine.tokenizer import ImageTokenizer, TokenizerConfig
from trimodal.models.checkpoint import save_weights
from trimodal.modules.decoder import DecoderConfig
from trimodal.train.schedule import adamw_warmup_cosine, clipped_step

Report = Callable[[str], None] | None


@dataclass
class TokenSettings:
    """Training settings of the tokenizer and the prior."""

    tokenizer_steps: int = 600
    tokenizer_batch: int = 64
    tokenizer_lr: float = 2e-3
    prior_steps: int = 1200
    prior_batch: int = 64
    prior_lr: float = 1e-3
    prior_dim: int = 192
    prior_depth: int = 4
    tokenizer: TokenizerConfig = field(default_factory=lambda: TokenizerConfig(width=48))
    caption_dropout: float = 0.1
    """Share of prior training rows without their caption (for classifier-free guidance)."""


@dataclass
class TokenPainter:
    """A trained tokenizer and the prior that predicts its ids from a caption."""

    tokenizer: ImageTokenizer
    prior: CaptionToImage

    def paint(
        self,
        states: torch.Tensor,
        mask: torch.Tensor,
        generator: torch.Generator,
        sampling: Sampling,
    ) -> torch.Tensor:
        """Images ``[B, 3, 64, 64]`` in [-1, 1] for caption states ``[B, L, D]``."""
        self.prior.eval()
        self.tokenizer.eval()
        ids = self.prior.sample(
            states, mask, generator, sampling.temperature, sampling.top_k, sampling.guidance
        )
        with torch.no_grad():
            return self.tokenizer.decode(ids.view(-1, 8, 8))

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor | None:
        """The tokenizer's round trip of images ``[B, 3, 64, 64]`` in [-1, 1]."""
        with torch.no_grad():
            return self.tokenizer.decode(self.tokenizer.encode(images))

    def save(self, folder: Path) -> None:
        """Write both parts' weights into ``folder``."""
        save_weights(self.tokenizer, folder / "tokenizer.safetensors")
        save_weights(self.prior, folder / "prior.safetensors")

    def to(self, device: torch.device | str) -> TokenPainter:
        """Both parts on ``device``, in eval mode."""
        return TokenPainter(self.tokenizer.to(device).eval(), self.prior.to(device).eval())

    @classmethod
    def load(cls, folder: Path, settings: TokenSettings, info: dict[str, Any]) -> TokenPainter:
        """The parts saved by :meth:`save` (``info`` carries the prior's sizes)."""
        tokenizer = ImageTokenizer(settings.tokenizer)
        tokenizer.load_state_dict(load_file(str(folder / "tokenizer.safetensors")))
        decoder = from_dict(DecoderConfig, info["decoder"])
        prior = CaptionToImage(info["text_dim"], tokenizer.config.codes, decoder)
        prior.load_state_dict(load_file(str(folder / "prior.safetensors")))
        return cls(tokenizer.eval(), prior.eval())


def train_tokenizer(
    pixels: torch.Tensor, settings: TokenSettings, seed: int, report: Report
) -> ImageTokenizer:
    """Fit the tokenizer on uint8 images ``[N, 3, 64, 64]``."""
    generator = torch.Generator().manual_seed(seed)
    tokenizer = ImageTokenizer(settings.tokenizer)
    optimizer = torch.optim.Adam(tokenizer.parameters(), lr=settings.tokenizer_lr)
    tokenizer.train()
    for step in range(settings.tokenizer_steps):
        rows = torch.randint(0, pixels.shape[0], (settings.tokenizer_batch,), generator=generator)
        _, loss, _ = tokenizer(to_unit(pixels[rows]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if report is not None and (step + 1) % 100 == 0:
            report(f"tokenizer step {step + 1}/{settings.tokenizer_steps}: loss {loss.item():.4f}")
    return tokenizer.eval()


def image_ids(tokenizer: ImageTokenizer, pixels: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Token ids ``[N, 64]`` of uint8 images."""
    with torch.no_grad():
        return torch.cat(
            [
                tokenizer.encode(to_unit(pixels[s : s + batch])).reshape(-1, IMAGE_TOKENS)
                for s in range(0, pixels.shape[0], batch)
            ]
        )


def train_prior(
    prior: CaptionToImage,
    states: torch.Tensor,
    mask: torch.Tensor,
    ids: torch.Tensor,
    settings: TokenSettings,
    seed: int,
    report: Report,
) -> None:
    """Fit the caption-to-ids decoder (AdamW, linear warmup, cosine decay)."""
    generator = torch.Generator().manual_seed(seed + 1)
    total = settings.prior_steps
    optimizer, schedule = adamw_warmup_cosine(
        prior.parameters(), settings.prior_lr, 0.01, total, total // 20
    )
    prior.train()
    for step in range(total):
        rows = torch.randint(0, ids.shape[0], (settings.prior_batch,), generator=generator)
        length = int(mask[rows].sum(1).max())
        drop = torch.rand(len(rows), generator=generator) < settings.caption_dropout
        loss = prior.loss(states[rows, :length], mask[rows, :length], ids[rows], drop)
        clipped_step(loss, prior, optimizer, schedule)
        if report is not None and (step + 1) % 100 == 0:
            report(f"prior step {step + 1}/{total}: loss {loss.item():.4f}")
    prior.eval()


def train_token_painter(
    pixels: torch.Tensor,
    states: torch.Tensor,
    mask: torch.Tensor,
    settings: TokenSettings,
    seed: int,
    report: Report,
) -> tuple[TokenPainter, dict[str, Any]]:
    """Both parts on uint8 images ``[N, 3, 64, 64]`` and their captions' states ``[N, L, D]``;
    returns the painter and what the run records of it (sizes, codes in use, seconds)."""
    started = time.perf_counter()
    tokenizer = train_tokenizer(pixels, settings, seed, report)
    tokenizer_seconds = time.perf_counter() - started
    ids = image_ids(tokenizer, pixels)
    decoder = DecoderConfig(
        vocab_size=tokenizer.config.codes + 1,
        max_positions=states.shape[1] + IMAGE_TOKENS + 1,
        dim=settings.prior_dim,
        depth=settings.prior_depth,
        heads=4,
        tie_embeddings=False,  # its input ids include <start>; safetensors keeps no aliases
    )
    prior = CaptionToImage(states.shape[2], tokenizer.config.codes, decoder)
    started = time.perf_counter()
    train_prior(prior, states, mask, ids, settings, seed, report)
    prior_seconds = time.perf_counter() - started
    record = {
        "decoder": to_dict(decoder),
        "codes_used": int(ids.unique().numel()),
        "tokenizer_seconds": round(tokenizer_seconds, 1),
        "prior_seconds": round(prior_seconds, 1),
        "seconds": round(tokenizer_seconds + prior_seconds, 1),
    }
    return TokenPainter(tokenizer, prior), record
