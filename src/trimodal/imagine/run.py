"""Train, save, load and sample the text-to-image recipe (``trimodal imagine``).

Training reads the world's ``train`` scenes: their images, and their captions through a trained
trimodal checkpoint's frozen text encoder; then the chosen method trains its painter on them
(``method_tokens.py``: a VQ-VAE tokenizer and our decoder over its ids; ``method_diffusion.py``:
a pixel-space diffusion model). Layout of a run::

    RUN/imagine.json            the checkpoint it reads captions with, settings, sizes, timings
    RUN/*.safetensors           the painter's weights (the method's own files)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from trimodal.config import ConfigError, from_dict, to_dict
from trimodal.data.manifest import Sample, load_manifest
from trimodal.data.tensors import uint8_image
from trimodal.data.transforms import ImageTransform
from trimodal.imagine.method_diffusion import (
    DiffusionPainter,
    DiffusionSettings,
    train_diffusion_painter,
)
from trimodal.imagine.method_tokens import TokenPainter, TokenSettings, train_token_painter
from trimodal.imagine.painter import Painter, Sampling, to_pixels
from trimodal.inference import Model
from trimodal.io import atomic_write_text
from trimodal.models.checkpoint import write_directory_atomically

IMAGE_SIZE = 64


@dataclass(frozen=True)
class Method:
    """How a method trains its painter and loads it back; its settings are the
    :class:`ImagineSettings` field of the method's name."""

    train: Callable[..., tuple[Painter, dict[str, Any]]]
    """``(pixels, states, mask, settings, seed, report) -> (painter, record)``."""
    load: Callable[[Path, Any, dict[str, Any]], Painter]
    """``(folder, settings, info) -> painter``."""


METHODS = {
    "tokens": Method(train_token_painter, TokenPainter.load),
    "diffusion": Method(train_diffusion_painter, DiffusionPainter.load),
}


@dataclass
class ImagineSettings:
    """The method and its training settings."""

    method: str = "tokens"
    """``tokens`` (tokenizer + decoder) or ``diffusion`` (pixel-space denoiser)."""
    tokens: TokenSettings = field(default_factory=TokenSettings)
    diffusion: DiffusionSettings = field(default_factory=DiffusionSettings)
    guidance: float = 3.0
    """Default classifier-free guidance scale when sampling (1: none)."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"imagine method must be one of {tuple(METHODS)}, got {self.method!r}")

    def method_settings(self) -> Any:
        """The chosen method's own settings (``tokens`` or ``diffusion``)."""
        return getattr(self, self.method)


def load_pixels(samples: Sequence[Sample]) -> torch.Tensor:
    """uint8 ``[N, 3, 64, 64]`` of the samples' images."""
    transform = ImageTransform(size=IMAGE_SIZE)
    images = []
    for sample in samples:
        if sample.image is None:
            raise ValueError(f"line {sample.line}: sample {sample.id} has no image")
        images.append(uint8_image(sample.image, transform))
    return torch.stack(images)


def caption_states(
    model: Model, captions: Sequence[str], batch: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """The checkpoint's text-encoder token states ``[N, L, D]`` and mask ``[N, L]`` (CPU)."""
    states, masks = [], []
    for start in range(0, len(captions), batch):
        chunk_states, chunk_mask = model.text_states(captions[start : start + batch])
        states.append(chunk_states)
        masks.append(chunk_mask)
    length = max(s.shape[1] for s in states)
    padded = torch.cat([torch.nn.functional.pad(s, (0, 0, 0, length - s.shape[1])) for s in states])
    mask = torch.cat([torch.nn.functional.pad(m, (0, length - m.shape[1])) for m in masks])
    return padded, mask


@dataclass
class ImagineRun:
    """A trained painter and the checkpoint whose text encoder reads the captions."""

    checkpoint: Model
    painter: Painter
    info: dict[str, Any]

    @property
    def settings(self) -> ImagineSettings:
        """The settings the run was trained with."""
        return from_dict(ImagineSettings, self.info["settings"])

    def imagine(
        self,
        captions: Sequence[str],
        seed: int = 0,
        temperature: float = 1.0,
        top_k: int = 0,
        guidance: float | None = None,
        steps: int | None = None,
    ) -> list[Image.Image]:
        """One 64 px image per caption; the same seed gives the same images. ``guidance``:
        classifier-free guidance scale (None: the run's default; 1: none); ``steps``: the
        diffusion sampler's steps (None: the run's)."""
        if guidance is None:
            guidance = self.settings.guidance
        if not captions or any(not c.strip() for c in captions):
            raise ValueError("imagine needs non-empty captions")
        device = self.checkpoint.device
        states, mask = caption_states(self.checkpoint, captions)
        generator = torch.Generator().manual_seed(seed)
        sampling = Sampling(temperature, top_k, guidance, steps)
        images = self.painter.paint(states.to(device), mask.to(device), generator, sampling)
        return to_pixels(images)

    def save(self, out: str | os.PathLike[str]) -> Path:
        """Write the run folder atomically."""

        def write(staging: Path) -> None:
            atomic_write_text(staging / "imagine.json", json.dumps(self.info, indent=2) + "\n")
            self.painter.save(staging)

        return write_directory_atomically(Path(out), write)

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str = "cpu") -> ImagineRun:
        """Load a run and its checkpoint (``imagine.json`` names it)."""
        folder = Path(path)
        if not (folder / "imagine.json").is_file():
            raise FileNotFoundError(
                f"{folder} is not an imagine run (no imagine.json); train one with "
                "trimodal imagine train"
            )
        info = json.loads((folder / "imagine.json").read_text())
        try:
            settings = from_dict(ImagineSettings, info["settings"], "settings")
        except ConfigError as error:
            raise ConfigError(
                f"{folder / 'imagine.json'}: {error} (a run of an older trimodal? train it again)"
            ) from error
        checkpoint = Model.from_pretrained(info["checkpoint"], device=device)
        painter = METHODS[settings.method].load(folder, settings.method_settings(), info)
        return cls(checkpoint, painter.to(checkpoint.device), info)


def train_imagine(
    checkpoint: str | os.PathLike[str],
    manifest: str | os.PathLike[str],
    settings: ImagineSettings,
    report: Callable[[str], None] | None = None,
) -> ImagineRun:
    """Train the settings' method on the manifest's ``train`` samples (with an image and a
    caption)."""
    model = Model.from_pretrained(checkpoint)
    samples = [s for s in load_manifest(manifest).split("train") if s.image is not None and s.text]
    if not samples:
        raise ValueError(f"{manifest}: no train samples with an image and a caption")
    pixels = load_pixels(samples)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        states, mask = caption_states(model, [s.text or "" for s in samples])
        train = METHODS[settings.method].train
        painter, record = train(
            pixels, states, mask, settings.method_settings(), settings.seed, report
        )
    info = {
        "checkpoint": str(Path(checkpoint).resolve()),
        "manifest": str(Path(manifest).resolve()),
        "settings": to_dict(settings),
        "text_dim": int(states.shape[2]),
        "train_images": len(samples),
        **record,
    }
    return ImagineRun(model, painter, info)
