"""The home model: image, typed and spoken commands -> one action per device.

The family's image, text and audio encoders feed the concat fusion; one learned query token per
device (:data:`~trimodal.home.room.DEVICES`) is put in front of the fused tokens and a
transformer runs over them all, so each device's token can look at its own corner of the room and at the command. Each
device token gives logits over :data:`SLOT_ACTIONS` (nothing, an action, or "missing": the
command names it but the room lacks it), masked to what that device can do; the thermostat's
token also gives the temperature for ``set``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from trimodal.config import AudioEncoderConfig, ImageEncoderConfig, TextEncoderConfig
from trimodal.home.actions import DEVICE_ACTIONS
from trimodal.home.room import DEVICES, MAX_TEMPERATURE, MIN_TEMPERATURE, ROOM_SIZE
from trimodal.modules.encoders.audio import AudioEncoder
from trimodal.modules.encoders.image import ImageEncoder
from trimodal.modules.encoders.text import TextEncoder
from trimodal.modules.fusion import build_fusion
from trimodal.modules.layers import TokenSequence, TransformerStack

SLOT_ACTIONS = (
    "none",
    "on",
    "off",
    "open",
    "close",
    "lock",
    "unlock",
    "set",
    "warmer",
    "cooler",
    "missing",
)
CAN_BE_MISSING = ("fan", "tv", "thermostat", "oven", "lamp_window", "lamp_sofa")
TEMPERATURES = MAX_TEMPERATURE - MIN_TEMPERATURE + 1
DEVICE_STATES = ("absent", "on", "off")
"""What the camera shows of each device (the auxiliary head's classes): switches on or off,
curtains open (on) or closed (off), the door locked (on) or unlocked (off), a thermostat
present (on); absent where the room lacks it (the oven always)."""
N_MELS = 64


def allowed_slots() -> torch.Tensor:
    """``[devices, actions]`` True where a device can take that slot action."""
    allowed = torch.zeros(len(DEVICES), len(SLOT_ACTIONS), dtype=torch.bool)
    for row, device in enumerate(DEVICES):
        names = ("none", *DEVICE_ACTIONS[device]) + (
            ("missing",) if device in CAN_BE_MISSING else ()
        )
        for name in names:
            allowed[row, SLOT_ACTIONS.index(name)] = True
    return allowed


@dataclass
class HomeModelConfig:
    """Sizes of the home model (saved with a run)."""

    vocab_size: int
    dim: int = 128
    depth: int = 2
    heads: int = 4
    image: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    text: TextEncoderConfig = field(
        default_factory=lambda: TextEncoderConfig(depth=2, heads=4, max_length=24)
    )
    audio: AudioEncoderConfig = field(default_factory=AudioEncoderConfig)


@dataclass
class HomeInputs:
    """A batch: the room image (optional) and the command, typed or spoken.

    Attributes:
        images: normalized ``[B, 3, 64, 64]`` or ``None`` (camera off).
        ids, mask: typed command ``[B, L]``; or ``mels [B, 64, F]`` with ``mel_mask [B, F]``.
    """

    images: torch.Tensor | None = None
    ids: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    mels: torch.Tensor | None = None
    mel_mask: torch.Tensor | None = None


@dataclass
class HomeOutputs:
    """What the model gives per row.

    Attributes:
        slots: ``[B, devices, actions]`` action logits (-inf where a device cannot).
        values: ``[B, 13]`` the thermostat's temperature (16-28) for ``set``.
        states: ``[B, devices, 3]`` each device's state as the camera shows it
            (:data:`DEVICE_STATES`; an auxiliary task that teaches the device tokens to look).
    """

    slots: torch.Tensor
    values: torch.Tensor
    states: torch.Tensor


class HomeModel(nn.Module):
    """:class:`HomeInputs` -> :class:`HomeOutputs`."""

    def __init__(self, config: HomeModelConfig):
        super().__init__()
        self.config = config
        dim = config.dim
        self.image_encoder = ImageEncoder(config.image, ROOM_SIZE, dim, dim)
        self.text_encoder = TextEncoder(config.text, config.vocab_size, dim, dim)
        self.audio_encoder = AudioEncoder(config.audio, N_MELS, dim, dim)
        self.fusion = build_fusion("concat", dim, ("audio", "image", "text"))
        self.device_queries = nn.Parameter(torch.randn(len(DEVICES), dim) * 0.02)
        self.backbone = TransformerStack(dim, config.depth, config.heads)
        self.action_head = nn.Linear(dim, len(SLOT_ACTIONS))
        self.value_head = nn.Linear(dim, TEMPERATURES)
        self.state_head = nn.Linear(dim, len(DEVICE_STATES))
        self.allowed: torch.Tensor
        self.register_buffer("allowed", allowed_slots(), persistent=False)

    def forward(self, inputs: HomeInputs) -> HomeOutputs:
        """Slot logits (disallowed slots at -inf), the thermostat's temperature logits and each
        device's state logits."""
        encoded: dict[str, TokenSequence] = {}
        if inputs.images is not None:
            encoded["image"] = self.image_encoder(inputs.images).sequence()
        if inputs.ids is not None and inputs.mask is not None:
            encoded["text"] = self.text_encoder(inputs.ids, inputs.mask).sequence()
        if inputs.mels is not None and inputs.mel_mask is not None:
            encoded["audio"] = self.audio_encoder(inputs.mels, inputs.mel_mask).sequence()
        if "text" not in encoded and "audio" not in encoded:
            raise ValueError("a home command is typed (ids) or spoken (mels); neither was given")
        fused = self.fusion(encoded)
        batch = fused.tokens.shape[0]
        queries = self.device_queries.unsqueeze(0).expand(batch, -1, -1)  # (B, devices, D)
        tokens = torch.cat([queries, fused.tokens], dim=1)
        mask = torch.cat(
            [torch.ones(queries.shape[:2], dtype=torch.bool, device=queries.device), fused.mask],
            dim=1,
        )
        slots = self.backbone(tokens, mask)[:, : len(DEVICES)]  # (B, devices, D)
        logits = self.action_head(slots).masked_fill(~self.allowed, float("-inf"))
        thermostat = slots[:, DEVICES.index("thermostat")]
        return HomeOutputs(logits, self.value_head(thermostat), self.state_head(slots))
