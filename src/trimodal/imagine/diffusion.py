"""Images from words, the other option: a small diffusion model in pixel space.

The denoiser is a transformer over one sequence of tokens, in the manner of U-ViT (Bao et al.
2023): a token for the diffusion time, the caption's token states (read by the trained
checkpoint's frozen text encoder, projected) and the noisy image cut into ``patch`` x ``patch``
patches; a linear head turns each patch token back into pixels. It predicts the clean image
x0 (``prediction: sample``, the default) or the velocity ``v = alpha_t * noise - sigma_t * x0``
(``v_prediction``, Salimans and Ho 2022). The noise schedule, noising, velocity target and the
DDIM sampler are diffusers' (``DDPMScheduler`` for training,
``DDIMScheduler`` with eta 0 for sampling). Captions are dropped from a share of the training
rows (their tokens masked out), so sampling can use classifier-free guidance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.schedulers.scheduling_ddim import DDIMScheduler
from diffusers.schedulers.scheduling_ddpm import DDPMScheduler
from torch import nn

from trimodal.modules.layers import TransformerStack, initial_grid_positions

PREDICTIONS = ("sample", "v_prediction")


@dataclass
class DiffusionConfig:
    """Sizes of the denoiser and its noise schedule."""

    dim: int = 192
    depth: int = 4
    heads: int = 4
    patch: int = 8
    image_size: int = 64
    train_timesteps: int = 1000
    schedule: str = "squaredcos_cap_v2"
    sample_steps: int = 50
    prediction: str = "sample"
    """What the denoiser predicts: ``sample`` (the clean image x0) or ``v_prediction``."""

    def __post_init__(self) -> None:
        if self.prediction not in PREDICTIONS:
            raise ValueError(
                f"DiffusionConfig.prediction must be one of {PREDICTIONS}, got {self.prediction!r}"
            )
        if self.image_size % self.patch:
            raise ValueError(
                f"DiffusionConfig.patch {self.patch} must divide image_size {self.image_size}"
            )

    @property
    def grid(self) -> int:
        """Patches along a side."""
        return self.image_size // self.patch


def training_schedule(config: DiffusionConfig) -> DDPMScheduler:
    """The forward process: noising (and velocity targets) at ``train_timesteps`` levels."""
    return DDPMScheduler(
        num_train_timesteps=config.train_timesteps,
        beta_schedule=config.schedule,
        prediction_type=config.prediction,
        clip_sample=False,
    )


def sampling_schedule(config: DiffusionConfig) -> DDIMScheduler:
    """The deterministic DDIM sampler over the same schedule (``sample_steps`` steps)."""
    scheduler = DDIMScheduler(
        num_train_timesteps=config.train_timesteps,
        beta_schedule=config.schedule,
        prediction_type=config.prediction,
        clip_sample=True,
        set_alpha_to_one=False,
        timestep_spacing="trailing",
    )
    scheduler.set_timesteps(config.sample_steps)
    return scheduler


class CaptionDenoiser(nn.Module):
    """Noisy images ``[B, 3, S, S]``, timesteps ``[B]`` and caption states ``[B, L, text_dim]``
    (mask ``[B, L]``, True = real) -> the prediction ``[B, 3, S, S]`` (x0 or v, per
    ``config.prediction``)."""

    def __init__(self, text_dim: int, config: DiffusionConfig):
        super().__init__()
        self.config = config
        dim, patch = config.dim, config.patch
        self.patches = nn.Conv2d(3, dim, patch, stride=patch)
        self.positions = nn.Parameter(initial_grid_positions("sincos", config.grid, dim))
        self.time_features = Timesteps(dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time = TimestepEmbedding(dim, dim)
        self.caption = nn.Linear(text_dim, dim)
        self.caption_type = nn.Parameter(torch.zeros(1, 1, dim))
        self.stack = TransformerStack(dim, config.depth, config.heads)
        self.head = nn.Linear(dim, patch * patch * 3)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(
        self,
        noisy: torch.Tensor,
        timesteps: torch.Tensor,
        states: torch.Tensor,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        """The prediction ``[B, 3, S, S]``; rows whose ``mask`` is all False are unconditional."""
        batch, grid, patch = noisy.shape[0], self.config.grid, self.config.patch
        image = self.patches(noisy).flatten(2).transpose(1, 2) + self.positions  # (B, G*G, D)
        time = self.time(self.time_features(timesteps).to(image.dtype))[:, None]  # (B, 1, D)
        caption = self.caption(states) + self.caption_type  # (B, L, D)
        tokens = torch.cat([time, caption, image], dim=1)
        real = torch.ones(batch, 1, dtype=torch.bool, device=noisy.device)
        key_mask = torch.cat([real, mask, real.expand(batch, grid * grid)], dim=1)
        out = self.head(self.stack(tokens, key_mask)[:, -grid * grid :])  # (B, G*G, p*p*3)
        out = out.view(batch, grid, grid, patch, patch, 3)
        return out.permute(0, 5, 1, 3, 2, 4).reshape_as(noisy)


def diffusion_loss(
    denoiser: CaptionDenoiser,
    schedule: DDPMScheduler,
    images: torch.Tensor,
    states: torch.Tensor,
    mask: torch.Tensor,
    drop: torch.Tensor,
    generator: torch.Generator,
) -> torch.Tensor:
    """MSE of the prediction (x0 or v) on images ``[B, 3, S, S]`` in [-1, 1] at uniformly drawn
    timesteps; rows
    where ``drop`` (bool ``[B]``) is True learn without their caption."""
    batch = images.shape[0]
    noise = torch.randn(images.shape, generator=generator).to(images.device)
    levels = denoiser.config.train_timesteps
    drawn = torch.randint(0, levels, (batch,), generator=generator).to(images.device)
    timesteps = cast(torch.IntTensor, drawn)
    noisy = schedule.add_noise(images, noise, timesteps)
    if denoiser.config.prediction == "sample":
        target = images
    else:
        target = schedule.get_velocity(images, noise, timesteps)
    kept = mask & ~drop.to(mask.device)[:, None]
    return F.mse_loss(denoiser(noisy, timesteps, states, kept), target)


@torch.no_grad()
def sample_images(
    denoiser: CaptionDenoiser,
    states: torch.Tensor,
    mask: torch.Tensor,
    generator: torch.Generator,
    guidance: float = 1.0,
    steps: int | None = None,
) -> torch.Tensor:
    """Images ``[B, 3, S, S]`` in [-1, 1] for caption states ``[B, L, D]``; the starting noise is
    drawn on the host with ``generator`` (the same images on every device). ``guidance`` above
    1: classifier-free guidance ``u + g (c - u)`` of the captioned and caption-less
    predictions, run as one batch of ``2B`` rows."""
    config = denoiser.config
    scheduler = sampling_schedule(config)
    if steps is not None:
        scheduler.set_timesteps(steps)
    batch, size = states.shape[0], config.image_size
    images = torch.randn((batch, 3, size, size), generator=generator).to(states.device)
    guided = guidance != 1.0
    if guided:
        states = torch.cat([states, states])
        mask = torch.cat([mask, torch.zeros_like(mask)])
    rows = states.shape[0]
    for timestep in scheduler.timesteps:
        level = torch.full((rows,), int(timestep), dtype=torch.long, device=states.device)
        inputs = torch.cat([images, images]) if guided else images
        prediction = denoiser(inputs, level, states, mask)
        if guided:
            conditional, unconditional = prediction.chunk(2)
            prediction = unconditional + guidance * (conditional - unconditional)
        images = scheduler.step(prediction, timestep, images, return_dict=False)[0]
    return images.clamp(-1, 1)
