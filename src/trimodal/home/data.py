"""A home world's rows as tensors: room pixels, typed commands, spoken commands' log-mel, and
the per-device targets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trimodal.data.tensors import to_float_images, tokenized, uint8_image
from trimodal.data.tokenizer import TextTokenizer
from trimodal.data.transforms import ImageTransform, LogMel, load_audio
from trimodal.home.actions import Outcome
from trimodal.home.model import DEVICE_STATES, SLOT_ACTIONS, HomeInputs
from trimodal.home.room import DEVICES, MIN_TEMPERATURE, ROOM_SIZE, SWITCHES, Room

IGNORE = -100
MAX_COMMAND_SECONDS = 8.0


def state_targets(room: dict[str, Any]) -> list[int]:
    """Per device, its :data:`~trimodal.home.model.DEVICE_STATES` index in this room."""
    state = Room.from_dict(room)
    on, off, absent = DEVICE_STATES.index("on"), DEVICE_STATES.index("off"), 0
    shown = {
        **{d: (on if state.on[d] else off) for d in SWITCHES if state.has(d)},
        "curtains": on if state.curtains_open else off,
        "door": on if state.door_locked else off,
    }
    if state.has("thermostat"):
        shown["thermostat"] = on
    return [shown.get(device, absent) for device in DEVICES]


def slot_targets(outcome: dict[str, Any], missing: list[str]) -> tuple[list[int], int]:
    """Per-device slot indices ``[devices]`` and the temperature class (``IGNORE`` without
    ``set``) of an expected outcome (before the policy)."""
    slots = [SLOT_ACTIONS.index("none")] * len(DEVICES)
    value = IGNORE
    for device in missing:
        slots[DEVICES.index(device)] = SLOT_ACTIONS.index("missing")
    for action in Outcome.from_dict(outcome).actions:
        slots[DEVICES.index(action.device)] = SLOT_ACTIONS.index(action.action)
        if action.value is not None:
            value = action.value - MIN_TEMPERATURE
    return slots, value


@dataclass
class HomeTensors:
    """Rows of one split.

    Attributes:
        images: uint8 ``[N, 3, 64, 64]``; ids, mask: ``[N, L]``; mels: float16 ``[N, 64, F]``
        with mel_mask ``[N, F]``; slots: ``[N, devices]``; values: ``[N]``; states:
        ``[N, devices]`` (what the camera shows of each device).
    """

    rows: list[dict[str, Any]]
    images: torch.Tensor
    ids: torch.Tensor
    mask: torch.Tensor
    mels: torch.Tensor
    mel_mask: torch.Tensor
    slots: torch.Tensor
    values: torch.Tensor
    states: torch.Tensor

    def __len__(self) -> int:
        return len(self.rows)

    def inputs(
        self, rows: torch.Tensor, spoken: bool, with_image: bool, device: torch.device
    ) -> HomeInputs:
        """The model's inputs for ``rows`` ``[B]``: spoken or typed, with or without the room."""
        images = to_float_images(self.images[rows]).to(device) if with_image else None
        if spoken:
            frames = int(self.mel_mask[rows].sum(-1).max())
            return HomeInputs(
                images,
                mels=self.mels[rows, :, :frames].float().to(device),
                mel_mask=self.mel_mask[rows, :frames].to(device),
            )
        length = max(1, int(self.mask[rows].sum(-1).max()))
        return HomeInputs(
            images, ids=self.ids[rows, :length].to(device), mask=self.mask[rows, :length].to(device)
        )


def home_tensors(
    rows: list[dict[str, Any]], root: Path, tokenizer: TextTokenizer, max_length: int
) -> HomeTensors:
    """Decode every row's image and clip and encode its command and targets."""
    transform, log_mel = ImageTransform(size=ROOM_SIZE), LogMel()
    images = torch.stack([uint8_image(root / row["image"], transform) for row in rows])
    ids, mask = tokenized(tokenizer, [row["text"] for row in rows], max_length)
    spectra = [
        log_mel(load_audio(root / row["audio"], max_seconds=MAX_COMMAND_SECONDS)) for row in rows
    ]
    frames = max(s.shape[-1] for s in spectra)
    mels = torch.zeros(len(rows), log_mel.n_mels, frames, dtype=torch.float16)
    mel_mask = torch.zeros(len(rows), frames, dtype=torch.bool)
    for i, spectrum in enumerate(spectra):
        mels[i, :, : spectrum.shape[-1]] = spectrum.to(torch.float16)
        mel_mask[i, : spectrum.shape[-1]] = True
    targets = [slot_targets(row["outcome"], row.get("missing", [])) for row in rows]
    slots = torch.tensor([t[0] for t in targets], dtype=torch.long)
    values = torch.tensor([t[1] for t in targets], dtype=torch.long)
    states = torch.tensor([state_targets(row["room"]) for row in rows], dtype=torch.long)
    return HomeTensors(rows, images, ids, mask, mels, mel_mask, slots, values, states)
