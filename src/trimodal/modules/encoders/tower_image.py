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
(``data.augment_noise_views``; fresh noise would make every view new). Its weights come from
the installed package, not from the checkpoint (which records ``model.image.tower``).

``model.image.tower_tune: K`` fine-tunes the tower's last ``K`` MBConv blocks: they start from
the ImageNet weights, are trainable submodules of the stem (so the checkpoint holds them), and
learn at ``tower_tune_lr`` times the stage's rate (the optimizer reads the module's
``lr_scale``); their batch norms keep ImageNet's statistics. The blocks before them stay frozen,
and the memo keeps their output, so a tuned run still reads each image through the frozen part
once.
"""

from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F
from torch import nn

from trimodal.config import ImageEncoderConfig
from trimodal.data.transforms import IMAGE_MEAN, IMAGE_STD
from trimodal.modules.encoders.image import ImageEncoder
from trimodal.towers.efficientnet import (
    EfficientNetLite0,
    fold_batch_norms,
    load_efficientnet_lite0,
)

TOWERS: tuple[str, ...] = ("none", "efficientnet")
FEATURE_STRIDE = 32
"""Input pixels per cell of the tower's last block."""
TOWER_CHANNELS = 320
TOWER_BLOCKS = 16
"""MBConv blocks in EfficientNet-Lite0 (the most ``model.image.tower_tune`` can tune)."""
MEMO_LIMIT = 100_000
"""Distinct images kept (about 10 KB each at a 4 x 4 grid); past this the memo starts afresh."""


def frozen_copy(network: EfficientNetLite0) -> EfficientNetLite0:
    """A copy of ``network`` to read images with: batch norms folded into the convolutions,
    no gradient to its weights, eval mode, channels-last."""
    folded = fold_batch_norms(network).requires_grad_(False)
    # channels-last runs its depthwise convolutions 1.6x as fast on this CPU; torch's stubs
    # omit Module.to's memory_format
    folded.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return folded.eval()


class EfficientNetStem(nn.Module):
    """Normalized images ``[B, 3, S, S]`` -> ``[B, dim, g, g]`` with ``g = S * scale / 32``:
    the frozen tower's map up to its last ``tuned_blocks`` blocks (memoized per image), those
    blocks (trained, starting from ImageNet's weights), then a trainable 1x1 projection."""

    def __init__(self, dim: int, scale: int, tuned_blocks: int = 0, tuned_lr: float = 0.1):
        super().__init__()
        self.scale = scale
        self.projection = nn.Conv2d(TOWER_CHANNELS, dim, 1)
        self._tower: list[EfficientNetLite0] = []
        """Loaded on first use; in a list so that it is neither in the state dict nor moved,
        trained or switched to train mode with the model."""
        self.memo: dict[bytes, torch.Tensor] = {}
        self.frozen_blocks = TOWER_BLOCKS - tuned_blocks
        self.tuned = nn.ModuleList()
        if tuned_blocks:
            pretrained = load_efficientnet_lite0()
            self.tuned = nn.ModuleList(pretrained._blocks[self.frozen_blocks :])
            # read by the trainer when it builds the optimizer
            setattr(self.tuned, "lr_scale", tuned_lr)  # noqa: B010 (nn.Module types attributes)
            self._tower.append(frozen_copy(pretrained))  # the same load serves the frozen part

    def train(self, mode: bool = True) -> EfficientNetStem:
        """As :meth:`nn.Module.train`, but the tuned blocks' batch norms stay in eval mode
        (ImageNet's statistics, not those of a 4 x 4 grid of the world's batches)."""
        super().train(mode)
        self.tuned.eval()
        return self

    def tower(self, device: torch.device) -> EfficientNetLite0:
        """The frozen tower on ``device`` (loaded from the installed package once, its batch
        norms folded into its convolutions)."""
        if not self._tower:
            self._tower.append(frozen_copy(load_efficientnet_lite0()))
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
        """The frozen part's maps ``[B, C, g', g']`` (float32, on the images' device; the
        tower's ``[B, 320, g, g]`` when nothing is tuned), from the memo or computed now for the
        images it lacks. Images that require grad (an adversarial attack, Grad-CAM on the
        pixels) skip the memo, so the gradient reaches them."""
        if images.requires_grad:
            return self.frozen_map(images)
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
                maps = self.frozen_map(images[torch.tensor(todo, device=images.device)])
            stored = maps.to("cpu", torch.float16).contiguous()
            for index, feature_map in zip(todo, stored, strict=True):
                self.memo[keys[index]] = feature_map
        # The memo is float16 on the host; CPU bf16 autocast refuses to promote it in a stack.
        with torch.autocast("cpu", enabled=False):
            stacked = torch.stack([self.memo[key] for key in keys])  # (B, C, g', g')
        return stacked.to(images.device, torch.float32)

    def frozen_map(self, images: torch.Tensor) -> torch.Tensor:
        """The frozen part of the tower (its stem and first blocks) on ``images``."""
        network = self.tower(images.device)
        return network.feature_map(self.tower_input(images), self.frozen_blocks)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, S, S]`` -> ``[B, dim, g, g]``."""
        maps = self.feature_maps(images)
        for block in self.tuned:
            maps = block(maps)
        return self.projection(maps)


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
        tuned = config.tower_tune
        if not 0 <= tuned <= TOWER_BLOCKS:
            raise ValueError(
                f"model.image.tower_tune must be between 0 and {TOWER_BLOCKS} (the tower's "
                f"MBConv blocks), got {tuned}"
            )
        if config.tower_tune_lr <= 0:
            raise ValueError(f"model.image.tower_tune_lr must be > 0, got {config.tower_tune_lr}")
        return EfficientNetStem(dim, scale, tuned, config.tower_tune_lr), FEATURE_STRIDE // scale
