"""Rooms: deterministic, and their states visible where the renderer draws them."""

from __future__ import annotations

import numpy as np

from trimodal.home.room import Room, render_room, sample_room


def test_rooms_are_deterministic_and_round_trip() -> None:
    first = [sample_room(np.random.default_rng(5)) for _ in range(3)]
    assert first[0] == first[1] == first[2]
    room = first[0]
    assert Room.from_dict(room.to_dict()) == room
    assert np.array_equal(np.asarray(render_room(room)), np.asarray(render_room(room)))


def _room(**changes: object) -> Room:
    base = Room(
        {"lamp_window": False, "lamp_sofa": False, "fan": False, "tv": False},
        curtains_open=True,
        temperature=20,
        door_locked=True,
    )
    values = base.to_dict() | changes
    return Room.from_dict(values)


def test_states_change_the_pixels_where_the_device_is() -> None:
    off = np.asarray(render_room(_room())).astype(int)
    lamp_on = np.asarray(
        render_room(_room(on={"lamp_window": True, "lamp_sofa": False, "fan": False, "tv": False}))
    ).astype(int)
    changed = np.argwhere(np.abs(lamp_on - off).sum(-1) > 0)
    assert len(changed) > 0 and changed[:, 1].max() < 20  # only around the window lamp (x 8)
    unlocked = np.asarray(render_room(_room(door_locked=False))).astype(int)
    assert tuple(unlocked[10, 56]) != tuple(off[10, 56])  # the lock light
    warm = np.asarray(render_room(_room(temperature=28))).astype(int)
    assert warm[12, 43, 0] > off[12, 43, 0] and warm[12, 43, 2] < off[12, 43, 2]  # redder
    no_tv = Room.from_dict(_room().to_dict() | {"on": {"lamp_window": False}})
    assert not no_tv.has("tv") and no_tv.has("door") and not no_tv.has("oven")
