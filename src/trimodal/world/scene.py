"""Scene graphs of the embedded world: objects, their attributes, positions and relations.

A scene is 1-3 non-overlapping shapes on a jittered background. Everything a caption or an
answer says is derived from the scene graph, so every statement can be checked against it.
Coordinates are fractions of the image side (0 = left/top, 1 = right/bottom), so the graph is
independent of the rendered resolution.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "diamond", "hexagon")
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 175, 60),
    "blue": (45, 95, 235),
    "yellow": (235, 215, 35),
    "purple": (150, 55, 205),
    "orange": (245, 135, 25),
    "white": (240, 240, 240),
}
SIZES: dict[str, float] = {"small": 0.095, "large": 0.165}
"""Object radius as a fraction of the image side."""

SPLITS: tuple[str, ...] = ("train", "val", "test", "holdout")
"""``holdout`` is the compositional hold-out: scenes with colour-shape pairs unseen in training."""

HOLDOUT_PAIRS: tuple[tuple[str, str], ...] = (
    ("red", "star"),
    ("blue", "triangle"),
    ("green", "hexagon"),
    ("yellow", "circle"),
    ("purple", "square"),
    ("orange", "diamond"),
)
"""Colour-shape combinations that appear only in the ``holdout`` split."""

SPLIT_FRACTIONS: dict[str, float] = {"train": 0.8, "val": 0.05, "test": 0.1, "holdout": 0.05}

# Relations are only stated along the dominant axis, and only when it clearly dominates, so a
# reader of the image never has to guess whether "left of" or "above" was meant.
_AXIS_DOMINANCE = 1.4
_MARGIN = 0.02


@dataclass(frozen=True)
class SceneObject:
    """One shape: attributes plus centre ``(x, y)`` and radius as fractions of the image side."""

    shape: str
    color: str
    size: str
    x: float
    y: float
    radius: float
    rotation: float

    def phrase(self) -> str:
        """The full noun phrase, e.g. ``"large red circle"``."""
        return f"{self.size} {self.color} {self.shape}"


@dataclass(frozen=True)
class Scene:
    """A full scene graph."""

    index: int
    split: str
    background: tuple[int, int, int]
    objects: tuple[SceneObject, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form stored in the manifest (``relations`` included for readers)."""
        return {
            "index": self.index,
            "background": list(self.background),
            "objects": [asdict(obj) for obj in self.objects],
            "relations": [
                {"subject": a, "relation": relation(self.objects[a], self.objects[b]), "object": b}
                for a in range(len(self.objects))
                for b in range(len(self.objects))
                if a != b
            ],
        }

    @staticmethod
    def from_dict(data: dict[str, Any], split: str) -> Scene:
        """Inverse of :meth:`to_dict`."""
        objects = tuple(SceneObject(**obj) for obj in data["objects"])
        background = tuple(int(c) for c in data["background"])
        return Scene(
            int(data["index"]), split, (background[0], background[1], background[2]), objects
        )


def relation(subject: SceneObject, reference: SceneObject) -> str:
    """Spatial relation of ``subject`` to ``reference`` along the dominant axis.

    Returns:
        one of ``"left of"``, ``"right of"``, ``"above"``, ``"below"``.
    """
    dx, dy = subject.x - reference.x, subject.y - reference.y
    if abs(dx) >= abs(dy):
        return "left of" if dx < 0 else "right of"
    return "above" if dy < 0 else "below"


def split_of(index: int, seed: int) -> str:
    """Deterministic split of scene ``index``: a hash of (seed, index) against the fractions."""
    value = np.random.default_rng([seed, index, 7]).random()
    cumulative = 0.0
    for split in SPLITS:
        cumulative += SPLIT_FRACTIONS[split]
        if value < cumulative:
            return split
    return SPLITS[-1]


def _sample_attributes(
    rng: np.random.Generator, count: int, split: str
) -> list[tuple[str, str, str]]:
    """Draw (shape, colour, size) for ``count`` objects respecting the split's pair rules.

    Outside the hold-out no held-out colour-shape pair may appear; in the hold-out at least one
    object carries a held-out pair (the others are unconstrained).
    """
    colors, sizes = list(COLORS), list(SIZES)
    chosen: list[tuple[str, str, str]] = []
    if split == "holdout":
        color, shape = HOLDOUT_PAIRS[int(rng.integers(len(HOLDOUT_PAIRS)))]
        chosen.append((shape, color, sizes[int(rng.integers(len(sizes)))]))
    while len(chosen) < count:
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        color = colors[int(rng.integers(len(colors)))]
        size = sizes[int(rng.integers(len(sizes)))]
        if split != "holdout" and (color, shape) in HOLDOUT_PAIRS:
            continue
        if any(c == color and s == shape and z == size for s, c, z in chosen):
            continue  # identical twins would make every reference ambiguous
        chosen.append((shape, color, size))
    order = rng.permutation(len(chosen))
    return [chosen[i] for i in order]


def _well_separated(candidate: SceneObject, placed: list[SceneObject]) -> bool:
    for other in placed:
        dx, dy = abs(candidate.x - other.x), abs(candidate.y - other.y)
        if (dx * dx + dy * dy) ** 0.5 < candidate.radius + other.radius + _MARGIN:
            return False
        if max(dx, dy) < _AXIS_DOMINANCE * min(dx, dy):
            return False
    return True


def sample_scene(index: int, seed: int) -> Scene:
    """Draw scene ``index`` of the world with ``seed``; the same arguments give the same scene."""
    split = split_of(index, seed)
    rng = np.random.default_rng([seed, index])
    count = int(rng.integers(1, 4))
    base = int(rng.integers(45, 95))
    background = tuple(int(np.clip(base + rng.integers(-14, 15), 0, 255)) for _ in range(3))
    for _attempt in range(200):
        placed: list[SceneObject] = []
        for shape, color, size in _sample_attributes(rng, count, split):
            radius = SIZES[size] * float(rng.uniform(0.92, 1.08))
            for _try in range(60):
                candidate = SceneObject(
                    shape=shape,
                    color=color,
                    size=size,
                    x=round(float(rng.uniform(radius + 0.02, 0.98 - radius)), 4),
                    y=round(float(rng.uniform(radius + 0.02, 0.98 - radius)), 4),
                    radius=round(radius, 4),
                    rotation=round(float(rng.uniform(-12.0, 12.0)), 2),
                )
                if _well_separated(candidate, placed):
                    placed.append(candidate)
                    break
            else:
                break
        if len(placed) == count:
            bg = (background[0], background[1], background[2])
            return Scene(index=index, split=split, background=bg, objects=tuple(placed))
    raise RuntimeError(f"could not place {count} objects for scene {index} (seed {seed})")
