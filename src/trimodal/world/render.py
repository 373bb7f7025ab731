"""Rendering scene graphs to RGB images with Pillow.

Shapes are drawn on a 4x supersampled canvas and box-filtered down, which gives anti-aliased
edges at 64 px while staying deterministic (same scene, same bytes). A :class:`RenderStyle`
varies how a scene graph looks without changing what it says: each object turned by an extra
angle, a gradient or textured background, a global lighting change. The default style draws
the default world.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from trimodal.world.scene import COLORS, Scene, SceneObject

_SUPERSAMPLE = 4
BACKGROUNDS: tuple[str, ...] = ("flat", "gradient", "texture")


@dataclass(frozen=True)
class RenderStyle:
    """How a scene is drawn, beyond its graph.

    Attributes:
        turn: ``(low, high)`` degrees: each object is turned by an extra angle of magnitude drawn
            uniformly in that range, either way (``(0, 0)``: as the graph says).
        backgrounds: the background kinds drawn from per scene (``flat``: the graph's colour;
            ``gradient``: a linear ramp around it; ``texture``: smooth blotches around it).
        lighting: the largest brightness change, as a fraction (0.2: each scene scaled by a
            factor drawn in [0.8, 1.2]).
    """

    turn: tuple[float, float] = (0.0, 0.0)
    backgrounds: tuple[str, ...] = ("flat",)
    lighting: float = 0.0

    def validate(self) -> None:
        """Raise ValueError naming the bad field."""
        low, high = self.turn
        if not 0.0 <= low <= high <= 180.0:
            raise ValueError(f"render turn must be 0 <= low <= high <= 180, got {self.turn}")
        unknown = [b for b in self.backgrounds if b not in BACKGROUNDS]
        if unknown or not self.backgrounds:
            raise ValueError(
                f"render backgrounds must be among {BACKGROUNDS}, got {self.backgrounds}"
            )
        if not 0.0 <= self.lighting < 1.0:
            raise ValueError(f"render lighting must be in [0, 1), got {self.lighting}")

    @property
    def is_default(self) -> bool:
        """True when the style draws scenes exactly as the default world does."""
        return self == RenderStyle()


def _regular_polygon(
    cx: float, cy: float, radius: float, sides: int, rotation_deg: float, start_deg: float
) -> list[tuple[float, float]]:
    points = []
    for k in range(sides):
        angle = math.radians(start_deg + rotation_deg + 360.0 * k / sides)
        points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    return points


def _star(cx: float, cy: float, radius: float, rotation_deg: float) -> list[tuple[float, float]]:
    points = []
    for k in range(10):
        r = radius if k % 2 == 0 else radius * 0.45
        angle = math.radians(-90.0 + rotation_deg + 36.0 * k)
        points.append((cx + r * math.cos(angle), cy + r * math.sin(angle)))
    return points


def _outline(obj: SceneObject, side: int) -> list[tuple[float, float]] | None:
    """Polygon of ``obj`` in pixel coordinates of a ``side``-pixel canvas; None for a circle."""
    cx, cy, r = obj.x * side, obj.y * side, obj.radius * side
    if obj.shape == "square":
        return _regular_polygon(cx, cy, r * 1.05, 4, obj.rotation, 45.0)
    if obj.shape == "diamond":
        # A diamond is a rhombus taller than wide, so it never reads as a rotated square.
        return [(cx, cy - r * 1.1), (cx + r * 0.7, cy), (cx, cy + r * 1.1), (cx - r * 0.7, cy)]
    if obj.shape == "triangle":
        return _regular_polygon(cx, cy + r * 0.12, r * 1.1, 3, obj.rotation, -90.0)
    if obj.shape == "hexagon":
        return _regular_polygon(cx, cy, r, 6, obj.rotation, 0.0)
    if obj.shape == "star":
        return _star(cx, cy, r * 1.15, obj.rotation)
    if obj.shape == "circle":
        return None
    raise ValueError(f"unknown shape {obj.shape!r}")


def _turned(
    points: list[tuple[float, float]], cx: float, cy: float, degrees: float
) -> list[tuple[float, float]]:
    """``points`` turned by ``degrees`` about ``(cx, cy)``."""
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    return [
        (cx + (x - cx) * cos - (y - cy) * sin, cy + (x - cx) * sin + (y - cy) * cos)
        for x, y in points
    ]


def _background(scene: Scene, side: int, kind: str, rng: np.random.Generator) -> Image.Image:
    """The canvas before any object: the graph's flat colour, or a gradient (within 35 of it) or
    a texture (blotches down to a few pixels, within 60 of it) around it; both stay greyish, so
    no object colour appears in the background."""
    if kind == "flat":
        return Image.new("RGB", (side, side), scene.background)
    base = np.asarray(scene.background, dtype=np.float64)
    if kind == "gradient":
        angle = float(rng.uniform(0.0, 2.0 * math.pi))
        ramp = np.linspace(-1.0, 1.0, side)
        field = math.cos(angle) * ramp[None, :] + math.sin(angle) * ramp[:, None]
        field = field / max(1e-6, float(np.abs(field).max()))
        amplitude = 35.0
    else:  # texture: octaves of smooth value noise, coarse blotches to fine grain
        field = np.zeros((side, side))
        for cells, weight in ((4, 1.0), (8, 0.8), (16, 0.6), (32, 0.45)):
            coarse = Image.fromarray(rng.uniform(0.0, 255.0, (cells, cells)).astype(np.uint8))
            smooth = coarse.resize((side, side), Image.Resampling.BICUBIC)
            field += weight * (np.asarray(smooth, dtype=np.float64) / 127.5 - 1.0)
        field = field / max(1e-6, float(np.abs(field).max()))
        amplitude = 60.0
    tint = rng.uniform(0.6, 1.0, size=3)
    pixels = base[None, None, :] + amplitude * field[..., None] * tint[None, None, :]
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def render_scene(scene: Scene, image_size: int, style: RenderStyle | None = None) -> Image.Image:
    """Draw ``scene`` as an ``image_size`` x ``image_size`` RGB image, in ``style`` (default:
    the default world's)."""
    style = style or RenderStyle()
    side = image_size * _SUPERSAMPLE
    # Style draws come from their own generator, so the default style's bytes never change.
    styled = np.random.default_rng([scene.index, 97])
    kind = style.backgrounds[int(styled.integers(len(style.backgrounds)))]
    canvas = _background(scene, side, kind, styled)
    draw = ImageDraw.Draw(canvas)
    # Per-object colour jitter is derived from the scene so rendering stays a pure function.
    rng = np.random.default_rng([scene.index, 99])
    for obj in scene.objects:
        jitter = rng.integers(-12, 13, size=3)
        fill = tuple(
            int(np.clip(c + j, 0, 255)) for c, j in zip(COLORS[obj.color], jitter, strict=True)
        )
        turn = float(styled.uniform(*style.turn)) * float(styled.choice([-1.0, 1.0]))
        polygon = _outline(obj, side)
        if polygon is None:
            r = obj.radius * side
            box = (obj.x * side - r, obj.y * side - r, obj.x * side + r, obj.y * side + r)
            draw.ellipse(box, fill=fill)
        else:
            if turn:
                polygon = _turned(polygon, obj.x * side, obj.y * side, turn)
            draw.polygon(polygon, fill=fill)
    image = canvas.resize((image_size, image_size), Image.Resampling.BOX)
    if style.lighting:
        factor = float(styled.uniform(1.0 - style.lighting, 1.0 + style.lighting))
        lit = np.asarray(image, dtype=np.float64) * factor
        image = Image.fromarray(np.clip(lit, 0, 255).round().astype(np.uint8), "RGB")
    return image
