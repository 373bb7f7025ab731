"""The home model's shapes, masks and inputs."""

from __future__ import annotations

import pytest
import torch

from trimodal.config import AudioEncoderConfig, ImageEncoderConfig, TextEncoderConfig
from trimodal.home.model import SLOT_ACTIONS, HomeInputs, HomeModel, HomeModelConfig, allowed_slots
from trimodal.home.room import DEVICES


def _model() -> HomeModel:
    torch.manual_seed(0)
    config = HomeModelConfig(
        vocab_size=40,
        dim=32,
        depth=1,
        heads=2,
        image=ImageEncoderConfig(stem_channels=[8, 16], depth=1, heads=2),
        text=TextEncoderConfig(depth=1, heads=2, max_length=12),
        audio=AudioEncoderConfig(depth=1, heads=2),
    )
    return HomeModel(config).eval()


def test_typed_spoken_and_camera_off() -> None:
    model = _model()
    images = torch.randn(3, 3, 64, 64)
    ids, mask = torch.randint(0, 40, (3, 6)), torch.ones(3, 6, dtype=torch.bool)
    mels, mel_mask = torch.randn(3, 64, 50), torch.ones(3, 50, dtype=torch.bool)
    for inputs in (
        HomeInputs(images, ids=ids, mask=mask),
        HomeInputs(None, ids=ids, mask=mask),
        HomeInputs(images, mels=mels, mel_mask=mel_mask),
    ):
        outputs = model(inputs)
        slots, values = outputs.slots, outputs.values
        assert slots.shape == (3, len(DEVICES), len(SLOT_ACTIONS)) and values.shape == (3, 13)
        assert outputs.states.shape == (3, len(DEVICES), 3)
        assert torch.isinf(slots[:, ~allowed_slots()]).all()
        assert torch.isfinite(slots[:, allowed_slots()]).all()
    with_camera = model(HomeInputs(images, ids=ids, mask=mask)).slots
    without = model(HomeInputs(None, ids=ids, mask=mask)).slots
    assert not torch.allclose(with_camera, without)
    with pytest.raises(ValueError, match=r"typed \(ids\) or spoken"):
        model(HomeInputs(images))


def test_what_each_device_may_do() -> None:
    allowed = allowed_slots()
    fan, door = DEVICES.index("fan"), DEVICES.index("door")
    assert allowed[fan, SLOT_ACTIONS.index("on")] and not allowed[fan, SLOT_ACTIONS.index("lock")]
    assert allowed[door, SLOT_ACTIONS.index("unlock")]
    assert not allowed[door, SLOT_ACTIONS.index("missing")]  # every room has its door


def test_device_state_targets_by_hand() -> None:
    from trimodal.home.data import state_targets
    from trimodal.home.model import DEVICE_STATES
    from trimodal.home.room import Room

    room = Room(
        {"lamp_window": True, "tv": False}, curtains_open=False, temperature=None, door_locked=True
    )
    states = dict(
        zip(DEVICES, (DEVICE_STATES[i] for i in state_targets(room.to_dict())), strict=True)
    )
    assert states == {
        "lamp_window": "on",
        "lamp_sofa": "absent",
        "fan": "absent",
        "tv": "off",
        "curtains": "off",
        "thermostat": "absent",
        "door": "on",
        "oven": "absent",
    }
