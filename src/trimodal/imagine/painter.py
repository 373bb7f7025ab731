"""What every method of ``trimodal imagine`` is: caption token states in, images out.

A method (``method_tokens.py``, ``method_diffusion.py``) trains a :class:`Painter` from the
training images and their captions' states, and loads it back from a run folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from PIL import Image


@dataclass
class Sampling:
    """How to draw: ``temperature`` and ``top_k`` act on the token method's ids (temperature 0:
    greedy); ``guidance`` is the classifier-free guidance scale of either method (1: none);
    ``steps`` is the diffusion method's number of sampler steps (None: its configured count)."""

    temperature: float = 1.0
    top_k: int = 0
    guidance: float = 1.0
    steps: int | None = None


class Painter(Protocol):
    """A trained text-to-image generator."""

    def paint(
        self,
        states: torch.Tensor,
        mask: torch.Tensor,
        generator: torch.Generator,
        sampling: Sampling,
    ) -> torch.Tensor:
        """Images ``[B, 3, 64, 64]`` in [-1, 1] for caption states ``[B, L, D]`` (mask
        ``[B, L]``); random draws come from ``generator`` on the host."""
        ...

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor | None:
        """The method's own round trip of real images (its ceiling), or None without one."""
        ...

    def save(self, folder: Path) -> None:
        """Write the weights into ``folder``."""
        ...

    def to(self, device: torch.device | str) -> Painter:
        """The painter on ``device``, in eval mode."""
        ...


def to_unit(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 ``[B, 3, S, S]`` -> float in [-1, 1]."""
    return pixels.float() / 127.5 - 1.0


def to_pixels(images: torch.Tensor) -> list[Image.Image]:
    """Float ``[B, 3, S, S]`` in [-1, 1] -> PIL images."""
    array = ((images.detach().cpu() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return [Image.fromarray(a.permute(1, 2, 0).numpy()) for a in array]
