"""Images through a frozen pretrained tower: EfficientNet-Lite0's feature map, then trainable
layers.

:class:`TowerImageEncoder` is the :class:`~trimodal.modules.encoders.image.ImageEncoder` with
its stem replaced by :class:`EfficientNetStem`: the model's normalized images go back to pixels,
are enlarged ``model.image.tower_scale`` times (bicubic) and scaled as the tower was trained
(``(x - 127) / 128``), EfficientNet-Lite0 (ImageNet weights, frozen, eval mode) gives its
stride-32 map of 320 channels, and a trainable 1x1 projection takes each cell to the model's
width. The encoder's learned positions, transformer, pooler and projection then run as for the
trained stem, so every head and stage reads it unchanged.

The tower's map of an image depends on that image alone, so it is computed once per distinct
image and kept (float16, on the CPU) in a memo keyed by the image's bytes: a run pays the tower
once per training image, and once per noisy view when pixel noise comes from fixed views
(``data.augment_noise_views``; fresh noise would make every view new). Its weights come from the installed package, not from the
checkpoint (which records ``model.image.tower``).
"""

from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F
from torch import nn

from trimodal.config import ImageEncoderConfig
from trimodal.data.transforms import IMAGE_MEAN, IMAGE_STD
from trimodal.modules.encoders.image import ImageEncoder
from trimodal.towers.efficientnet import EfficientNetLite0, load_efficientnet_lite0

TOWERS: tuple[str, ...] = ("none", "efficientnet")
FEATURE_STRIDE = 32
"""Input pixels per cell of the tower's last block."""
TOWER_CHANNELS = 320
MEMO_LIMIT = 100_000
"""Distinct images kept (about 10 KB each at a 4 x 4 grid); past this the memo starts afresh."""


class EfficientNetStem(nn.Module):
    """Normalized images ``[B, 3, S, S]`` -> ``[B, dim, g, g]`` with ``g = S * scale / 32``:
    the frozen tower's feature map (memoized per image), then a trainable 1x1 projection."""

    def __init__(self, dim: int, scale: int):
        super().__init__()
        self.scale = scale
        self.projection = nn.Conv2d(TOWER_CHANNELS, dim, 1)
        self._tower: list[EfficientNetLite0] = []
        """Loaded on first use; in a list so that it is neither in the state dict nor moved,
        trained or switched to train mode with the model."""
        self.memo: dict[bytes, torch.Tensor] = {}

    def tower(self, device: torch.device) -> EfficientNetLite0:
        """The frozen tower on ``device`` (loaded from the installed package once)."""
        if not self._tower:
            network = load_efficientnet_lite0()
            network.requires_grad_(False)
            # channels-last runs its depthwise convolutions 1.6x as fast on this CPU; torch's
            # stubs omit Module.to's memory_format
            network.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
            self._tower.append(network.eval())
        network = self._tower[0]
        if network._fc.weight.device != device:
            network.to(device)
        return network

    def tower_input(self, images: torch.Tensor) -> torch.Tensor:
        """The tower's input ``[B, 3, S * scale, S * scale]`` (channels-last) from normalized
        ``images``: pixels in ``[0, 255]`` again, enlarged (bicubic, clamped), then
        ``(x - 127) / 128``."""
        mean = torch.tensor(IMAGE_MEAN, device=images.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGE_STD, device=images.device).view(1, 3, 1, 1)
        pixels = images.float() * std + mean  # (B, 3, S, S) in [0, 1]
        if self.scale != 1:
            pixels = F.interpolate(pixels, scale_factor=self.scale, mode="bicubic")
        scaled = (pixels.clamp(0.0, 1.0) * 255.0 - 127.0) / 128.0
        return scaled.contiguous(memory_format=torch.channels_last)

    def feature_maps(self, images: torch.Tensor) -> torch.Tensor:
        """The tower's maps ``[B, 320, g, g]`` (float32, on the images' device), from the memo
        or computed now for the images it lacks. Images that require grad (an adversarial
        attack, Grad-CAM on the pixels) skip the memo, so the gradient reaches them."""
        if images.requires_grad:
            return self.tower(images.device).feature_map(self.tower_input(images))
        host = images.detach().float().cpu().contiguous()
        keys = [hashlib.blake2b(row.numpy().tobytes(), digest_size=16).digest() for row in host]
        first: dict[bytes, int] = {}
        for index, key in enumerate(keys):
            first.setdefault(key, index)
        todo = [index for key, index in first.items() if key not in self.memo]
        if todo:
            if len(self.memo) + len(todo) > MEMO_LIMIT:
                self.memo.clear()
            with torch.no_grad():
                chosen = images[torch.tensor(todo, device=images.device)]
                maps = self.tower(images.device).feature_map(self.tower_input(chosen))
            stored = maps.to("cpu", torch.float16).contiguous()
            for index, feature_map in zip(todo, stored, strict=True):
                self.memo[keys[index]] = feature_map
        stacked = torch.stack([self.memo[key] for key in keys])  # (B, 320, g, g)
        return stacked.to(images.device, torch.float32)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, S, S]`` -> ``[B, dim, g, g]``."""
        return self.projection(self.feature_maps(images))


class TowerImageEncoder(ImageEncoder):
    """Images ``[B, 3, S, S]`` (normalized) -> :class:`EncoderOutput` over the frozen tower's
    grid (``T = (S * tower_scale / 32) ** 2``); see the module docstring."""

    def build_stem(self, config: ImageEncoderConfig, dim: int) -> tuple[nn.Module, int]:
        if config.tower != "efficientnet":
            raise ValueError(f"model.image.tower must be one of {TOWERS}, got {config.tower!r}")
        scale = config.tower_scale
        if scale < 1 or FEATURE_STRIDE % scale:
            raise ValueError(
                f"model.image.tower_scale must divide {FEATURE_STRIDE} (1, 2, 4, ...), got {scale}"
            )
        return EfficientNetStem(dim, scale), FEATURE_STRIDE // scale
