"""Train, save, load and sample the text-to-image recipe (``trimodal imagine``).

Training has two parts on the world's ``train`` scenes: the image tokenizer (reconstruction),
then the caption-to-ids prior over the tokenizer's ids of every training image, with the
captions read by a trained trimodal checkpoint's frozen text encoder. Layout of a run::

    RUN/imagine.json            the checkpoint it reads captions with, settings, sizes, timings
    RUN/tokenizer.safetensors   the image tokenizer
    RUN/prior.safetensors       the caption-to-image decoder
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from safetensors.torch import load_file

from trimodal.config import from_dict, to_dict
from trimodal.data.manifest import Sample, load_manifest
from trimodal.data.tensors import uint8_image
from trimodal.data.transforms import ImageTransform
from trimodal.imagine.prior import IMAGE_TOKENS, CaptionToImage
from trimodal.imagine.tokenizer import ImageTokenizer, TokenizerConfig
from trimodal.inference import Model
from trimodal.io import atomic_write_text
from trimodal.models.checkpoint import save_weights, write_directory_atomically
from trimodal.modules.decoder import DecoderConfig
from trimodal.train.schedule import adamw_warmup_cosine, clipped_step

IMAGE_SIZE = 64


@dataclass
class ImagineSettings:
    """Training settings of both parts."""

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
    guidance: float = 3.0
    """Default classifier-free guidance scale when sampling (1: none)."""
    seed: int = 0


def to_unit(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 ``[B, 3, S, S]`` -> float in [-1, 1]."""
    return pixels.float() / 127.5 - 1.0


def to_pixels(images: torch.Tensor) -> list[Image.Image]:
    """Float ``[B, 3, S, S]`` in [-1, 1] -> PIL images."""
    array = ((images.detach().cpu() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return [Image.fromarray(a.permute(1, 2, 0).numpy()) for a in array]


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
    """A trained recipe and the checkpoint whose text encoder reads the captions."""

    checkpoint: Model
    tokenizer: ImageTokenizer
    prior: CaptionToImage
    info: dict[str, Any]

    def imagine(
        self,
        captions: Sequence[str],
        seed: int = 0,
        temperature: float = 1.0,
        top_k: int = 0,
        guidance: float | None = None,
    ) -> list[Image.Image]:
        """One 64 px image per caption; the same seed gives the same images. ``guidance``:
        classifier-free guidance scale (None: the run's default; 1: none)."""
        if guidance is None:
            guidance = float(self.info["settings"].get("guidance", 1.0))
        if not captions or any(not c.strip() for c in captions):
            raise ValueError("imagine needs non-empty captions")
        device = self.checkpoint.device
        states, mask = caption_states(self.checkpoint, captions)
        generator = torch.Generator().manual_seed(seed)
        self.prior.eval()
        self.tokenizer.eval()
        ids = self.prior.sample(
            states.to(device), mask.to(device), generator, temperature, top_k, guidance
        )
        with torch.no_grad():
            images = self.tokenizer.decode(ids.view(-1, 8, 8))
        return to_pixels(images)

    def save(self, out: str | os.PathLike[str]) -> Path:
        """Write the run folder atomically."""

        def write(staging: Path) -> None:
            atomic_write_text(staging / "imagine.json", json.dumps(self.info, indent=2) + "\n")
            save_weights(self.tokenizer, staging / "tokenizer.safetensors")
            save_weights(self.prior, staging / "prior.safetensors")

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
        checkpoint = Model.from_pretrained(info["checkpoint"], device=device)
        settings = info["settings"]
        tokenizer = ImageTokenizer(from_dict(TokenizerConfig, settings["tokenizer"]))
        tokenizer.load_state_dict(load_file(str(folder / "tokenizer.safetensors")))
        prior = _prior(info["text_dim"], tokenizer.config.codes, info["decoder"])
        prior.load_state_dict(load_file(str(folder / "prior.safetensors")))
        target = checkpoint.device
        return cls(checkpoint, tokenizer.to(target).eval(), prior.to(target).eval(), info)


def _prior(text_dim: int, codes: int, decoder: dict[str, Any]) -> CaptionToImage:
    return CaptionToImage(text_dim, codes, DecoderConfig(**decoder))


def train_tokenizer(
    pixels: torch.Tensor, settings: ImagineSettings, report: Callable[[str], None] | None
) -> ImageTokenizer:
    """Fit the tokenizer on uint8 images ``[N, 3, 64, 64]``."""
    generator = torch.Generator().manual_seed(settings.seed)
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
            report(f"tokenizer step {step + 1}/{settings.tokenizer_steps}: loss {float(loss):.4f}")
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
    settings: ImagineSettings,
    report: Callable[[str], None] | None,
) -> None:
    """Fit the caption-to-ids decoder (AdamW, linear warmup, cosine decay)."""
    generator = torch.Generator().manual_seed(settings.seed + 1)
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
            report(f"prior step {step + 1}/{total}: loss {float(loss):.4f}")
    prior.eval()


def train_imagine(
    checkpoint: str | os.PathLike[str],
    manifest: str | os.PathLike[str],
    settings: ImagineSettings,
    report: Callable[[str], None] | None = None,
) -> ImagineRun:
    """Train both parts on the manifest's ``train`` samples (with an image and a caption)."""
    model = Model.from_pretrained(checkpoint)
    samples = [s for s in load_manifest(manifest).split("train") if s.image is not None and s.text]
    if not samples:
        raise ValueError(f"{manifest}: no train samples with an image and a caption")
    pixels = load_pixels(samples)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        started = time.perf_counter()
        tokenizer = train_tokenizer(pixels, settings, report)
        tokenizer_seconds = time.perf_counter() - started
        ids = image_ids(tokenizer, pixels)
        states, mask = caption_states(model, [s.text or "" for s in samples])
        decoder = DecoderConfig(
            vocab_size=settings.tokenizer.codes + 1,
            max_positions=states.shape[1] + IMAGE_TOKENS + 1,
            dim=settings.prior_dim,
            depth=settings.prior_depth,
            heads=4,
            tie_embeddings=False,  # its input ids include <start>; safetensors keeps no aliases
        )
        prior = CaptionToImage(states.shape[2], settings.tokenizer.codes, decoder)
        started = time.perf_counter()
        train_prior(prior, states, mask, ids, settings, report)
        prior_seconds = time.perf_counter() - started
    info = {
        "checkpoint": str(Path(checkpoint).resolve()),
        "manifest": str(Path(manifest).resolve()),
        "settings": to_dict(settings),
        "text_dim": int(states.shape[2]),
        "decoder": to_dict(decoder),
        "train_images": len(samples),
        "codes_used": int(ids.unique().numel()),
        "tokenizer_seconds": round(tokenizer_seconds, 1),
        "prior_seconds": round(prior_seconds, 1),
    }
    return ImagineRun(model, tokenizer, prior, info)
