"""The room world: a room with devices in states, drawn as a small RGB image.

A :class:`Room` lists which devices are present and their states; :func:`sample_room` draws one
from a seeded generator and :func:`render_room` paints it at 64 px (a window with curtains on
the left, two lamps, a ceiling fan, a TV on a stand, a thermostat whose colour shows its
temperature, the front door with a lock light, a sofa, and maybe a person). Same seed, same
room, same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

SWITCHES = ("lamp_window", "lamp_sofa", "fan", "tv")
"""Devices that are on or off."""
DEVICES = (*SWITCHES, "curtains", "thermostat", "door", "oven")
"""Every device a command may name; the oven is never in a room (commands for it are refused)."""
MIN_TEMPERATURE, MAX_TEMPERATURE = 16, 28
PRESENCE = {
    "lamp_window": 0.85,
    "lamp_sofa": 0.85,
    "fan": 0.6,
    "tv": 0.7,
    "curtains": 1.0,
    "thermostat": 0.8,
    "door": 1.0,
    "oven": 0.0,
}
"""Probability that a room has each device."""
ROOM_SIZE = 64


@dataclass(frozen=True)
class Room:
    """Devices present and their states.

    Attributes:
        on: per present switch, whether it is on.
        curtains_open: whether the curtains are open.
        temperature: the thermostat's setting (``None``: no thermostat).
        door_locked: whether the front door is locked.
        person: x position of a person standing in the room (``None``: nobody).
        wall: RGB of the wall (rooms differ).
    """

    on: dict[str, bool]
    curtains_open: bool
    temperature: int | None
    door_locked: bool
    person: int | None = None
    wall: tuple[int, int, int] = (226, 214, 190)
    jitter: tuple[int, int] = field(default=(0, 0))

    def has(self, device: str) -> bool:
        """Whether ``device`` is in the room."""
        if device in SWITCHES:
            return device in self.on
        if device == "thermostat":
            return self.temperature is not None
        return device in ("curtains", "door")

    def to_dict(self) -> dict[str, object]:
        """JSON-ready state."""
        return {
            "on": dict(self.on),
            "curtains_open": self.curtains_open,
            "temperature": self.temperature,
            "door_locked": self.door_locked,
            "person": self.person,
            "wall": list(self.wall),
            "jitter": list(self.jitter),
        }

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> Room:
        """Inverse of :meth:`to_dict`."""
        wall = values.get("wall", [226, 214, 190])
        jitter = values.get("jitter", [0, 0])
        assert isinstance(wall, list) and isinstance(jitter, list)
        on = values["on"]
        assert isinstance(on, dict)
        temperature, person = values["temperature"], values.get("person")
        return cls(
            {str(k): bool(v) for k, v in on.items()},
            bool(values["curtains_open"]),
            None if temperature is None else int(str(temperature)),
            bool(values["door_locked"]),
            None if person is None else int(str(person)),
            (int(wall[0]), int(wall[1]), int(wall[2])),
            (int(jitter[0]), int(jitter[1])),
        )


def sample_room(rng: np.random.Generator) -> Room:
    """A random room: each device present with :data:`PRESENCE`, states uniform."""
    on = {d: bool(rng.random() < 0.5) for d in SWITCHES if rng.random() < PRESENCE[d]}
    temperature = (
        int(rng.integers(MIN_TEMPERATURE, MAX_TEMPERATURE + 1))
        if rng.random() < PRESENCE["thermostat"]
        else None
    )
    person = int(rng.integers(14, 40)) if rng.random() < 0.4 else None
    shade = rng.integers(-20, 21, 3)
    wall = tuple(
        int(np.clip(base + s, 0, 255)) for base, s in zip((226, 214, 190), shade, strict=True)
    )
    jitter = (int(rng.integers(-1, 2)), int(rng.integers(-1, 2)))
    return Room(
        on,
        bool(rng.random() < 0.5),
        temperature,
        bool(rng.random() < 0.5),
        person,
        (wall[0], wall[1], wall[2]),
        jitter,
    )


def _temperature_colour(temperature: int) -> tuple[int, int, int]:
    """Blue at 16 degrees to red at 28."""
    t = (temperature - MIN_TEMPERATURE) / (MAX_TEMPERATURE - MIN_TEMPERATURE)
    return int(40 + 215 * t), 40, int(255 - 215 * t)


def render_room(room: Room, size: int = ROOM_SIZE) -> Image.Image:
    """Paint ``room`` at 64 px (scaled to ``size``)."""
    image = Image.new("RGB", (ROOM_SIZE, ROOM_SIZE), room.wall)
    draw = ImageDraw.Draw(image)
    dx, dy = room.jitter
    draw.rectangle([0, 52, 63, 63], fill=(140, 100, 62))  # floor
    # Window and curtains (left wall).
    draw.rectangle([3 + dx, 6 + dy, 20 + dx, 26 + dy], fill=(168, 208, 240), outline=(90, 90, 90))
    curtain = (150, 30, 40)
    if room.curtains_open:
        draw.rectangle([1 + dx, 4 + dy, 3 + dx, 28 + dy], fill=curtain)
        draw.rectangle([20 + dx, 4 + dy, 22 + dx, 28 + dy], fill=curtain)
    else:
        draw.rectangle([1 + dx, 4 + dy, 22 + dx, 28 + dy], fill=curtain)
        draw.line([11 + dx, 4 + dy, 11 + dx, 28 + dy], fill=(110, 20, 30))
    # Sofa.
    draw.rectangle([17, 44, 43, 53], fill=(70, 110, 80))
    draw.rectangle([17, 40, 43, 45], fill=(60, 95, 70))
    if "lamp_window" in room.on:
        _lamp(draw, 8 + dx, 32, room.on["lamp_window"])
    if "lamp_sofa" in room.on:
        _lamp(draw, 44 + dx, 30, room.on["lamp_sofa"])
    if "fan" in room.on:
        _fan(draw, 30 + dx, 5, room.on["fan"])
    if "tv" in room.on:
        draw.rectangle([22 + dx, 24 + dy, 36 + dx, 35 + dy], fill=(20, 20, 20))
        screen = (70, 140, 240) if room.on["tv"] else (45, 45, 50)
        draw.rectangle([23 + dx, 25 + dy, 35 + dx, 34 + dy], fill=screen)
        draw.rectangle([28 + dx, 36 + dy, 30 + dx, 39 + dy], fill=(20, 20, 20))
    if room.temperature is not None:
        draw.rectangle(
            [40 + dx, 9 + dy, 46 + dx, 16 + dy], fill=(245, 245, 245), outline=(60, 60, 60)
        )
        draw.rectangle(
            [42 + dx, 11 + dy, 44 + dx, 14 + dy], fill=_temperature_colour(room.temperature)
        )
    # Front door with its lock light: red locked, green unlocked.
    draw.rectangle([51, 14, 62, 52], fill=(110, 70, 40), outline=(60, 40, 20))
    draw.point([53, 34], fill=(230, 200, 80))
    lock = (220, 30, 30) if room.door_locked else (40, 200, 60)
    draw.rectangle([55, 9, 58, 12], fill=lock)
    if room.person is not None:
        _person(draw, room.person)
    if size != ROOM_SIZE:
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return image


def _lamp(draw: ImageDraw.ImageDraw, x: int, top: int, on: bool) -> None:
    draw.line([x, top + 6, x, 52], fill=(50, 50, 50), width=1)
    shade = (255, 230, 70) if on else (120, 120, 120)
    if on:
        draw.ellipse([x - 6, top - 4, x + 6, top + 8], fill=(255, 245, 170))
    draw.polygon([(x - 3, top), (x + 3, top), (x + 4, top + 6), (x - 4, top + 6)], fill=shade)


def _fan(draw: ImageDraw.ImageDraw, x: int, y: int, on: bool) -> None:
    draw.line([x, 0, x, y], fill=(60, 60, 60))
    if on:
        draw.ellipse([x - 7, y - 2, x + 7, y + 4], fill=(190, 230, 245), outline=(80, 120, 140))
    else:
        draw.line([x - 7, y + 1, x + 7, y + 1], fill=(70, 70, 70), width=2)
    draw.ellipse([x - 1, y, x + 1, y + 2], fill=(40, 40, 40))


def _person(draw: ImageDraw.ImageDraw, x: int) -> None:
    colour = (40, 60, 150)
    draw.ellipse([x - 2, 30, x + 2, 34], fill=(230, 190, 160))
    draw.line([x, 34, x, 44], fill=colour, width=2)
    draw.line([x - 3, 37, x + 3, 37], fill=colour)
    draw.line([x, 44, x - 2, 52], fill=colour)
    draw.line([x, 44, x + 2, 52], fill=colour)
