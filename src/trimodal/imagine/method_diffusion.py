"""The diffusion method of ``trimodal imagine``: a pixel-space denoiser conditioned on the
caption (``diffusion.py``), sampled with DDIM. File in a run folder: ``denoiser.safetensors``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from trimodal.imagine.diffusion import (
    CaptionDenoiser,
    DiffusionConfig,
    diffusion_loss,
    sample_images,
    training_schedule,
)
from trimodal.imagine.painter import Sampling, to_unit
from trimodal.models.checkpoint import save_weights
from trimodal.train.schedule import adamw_warmup_cosine, clipped_step

Report = Callable[[str], None] | None


@dataclass
class DiffusionSettings:
    """Training settings of the denoiser."""

    model: DiffusionConfig = field(default_factory=DiffusionConfig)
    steps: int = 1500
    batch: int = 64
    lr: float = 1e-3
    caption_dropout: float = 0.1
    """Share of training rows without their caption (for classifier-free guidance)."""


@dataclass
class DiffusionPainter:
    """A trained denoiser."""

    denoiser: CaptionDenoiser

    def paint(
        self,
        states: torch.Tensor,
        mask: torch.Tensor,
        generator: torch.Generator,
        sampling: Sampling,
    ) -> torch.Tensor:
        """Images ``[B, 3, 64, 64]`` in [-1, 1] for caption states ``[B, L, D]``."""
        self.denoiser.eval()
        return sample_images(
            self.denoiser, states, mask, generator, sampling.guidance, sampling.steps
        )

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor | None:
        """None: pixel-space diffusion has no lossy round trip."""
        return None

    def save(self, folder: Path) -> None:
        """Write the denoiser's weights into ``folder``."""
        save_weights(self.denoiser, folder / "denoiser.safetensors")

    def to(self, device: torch.device | str) -> DiffusionPainter:
        """The denoiser on ``device``, in eval mode."""
        return DiffusionPainter(self.denoiser.to(device).eval())

    @classmethod
    def load(
        cls, folder: Path, settings: DiffusionSettings, info: dict[str, Any]
    ) -> DiffusionPainter:
        """The denoiser saved by :meth:`save`."""
        denoiser = CaptionDenoiser(info["text_dim"], settings.model)
        denoiser.load_state_dict(load_file(str(folder / "denoiser.safetensors")))
        return cls(denoiser.eval())


def train_diffusion_painter(
    pixels: torch.Tensor,
    states: torch.Tensor,
    mask: torch.Tensor,
    settings: DiffusionSettings,
    seed: int,
    report: Report,
) -> tuple[DiffusionPainter, dict[str, Any]]:
    """The denoiser on uint8 images ``[N, 3, 64, 64]`` and their captions' states
    ``[N, L, D]`` (AdamW, linear warmup, cosine decay); returns the painter and what the run
    records of it."""
    generator = torch.Generator().manual_seed(seed + 1)
    denoiser = CaptionDenoiser(states.shape[2], settings.model)
    schedule = training_schedule(settings.model)
    total = settings.steps
    optimizer, learning_rate = adamw_warmup_cosine(
        denoiser.parameters(), settings.lr, 0.01, total, total // 20
    )
    denoiser.train()
    started = time.perf_counter()
    for step in range(total):
        rows = torch.randint(0, pixels.shape[0], (settings.batch,), generator=generator)
        length = int(mask[rows].sum(1).max())
        drop = torch.rand(len(rows), generator=generator) < settings.caption_dropout
        images = to_unit(pixels[rows])
        loss = diffusion_loss(
            denoiser, schedule, images, states[rows, :length], mask[rows, :length], drop, generator
        )
        clipped_step(loss, denoiser, optimizer, learning_rate)
        if report is not None and (step + 1) % 100 == 0:
            report(f"denoiser step {step + 1}/{total}: loss {loss.item():.4f}")
    seconds = time.perf_counter() - started
    return DiffusionPainter(denoiser.eval()), {"seconds": round(seconds, 1)}
