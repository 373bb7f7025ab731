"""Rendering scene graphs to RGB images with Pillow.

Shapes are drawn on a 4x supersampled canvas and box-filtered down, which gives anti-aliased
edges at 64 px while staying deterministic (same scene, same bytes).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from trimodal.world.scene import COLORS, Scene, SceneObject

_SUPERSAMPLE = 4


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


def render_scene(scene: Scene, image_size: int) -> Image.Image:
    """Draw ``scene`` as an ``image_size`` x ``image_size`` RGB image."""
    side = image_size * _SUPERSAMPLE
    canvas = Image.new("RGB", (side, side), scene.background)
    draw = ImageDraw.Draw(canvas)
    # Per-object colour jitter is derived from the scene so rendering stays a pure function.
    rng = np.random.default_rng([scene.index, 99])
    for obj in scene.objects:
        jitter = rng.integers(-12, 13, size=3)
        fill = tuple(
            int(np.clip(c + j, 0, 255)) for c, j in zip(COLORS[obj.color], jitter, strict=True)
        )
        polygon = _outline(obj, side)
        if polygon is None:
            r = obj.radius * side
            box = (obj.x * side - r, obj.y * side - r, obj.x * side + r, obj.y * side + r)
            draw.ellipse(box, fill=fill)
        else:
            draw.polygon(polygon, fill=fill)
    return canvas.resize((image_size, image_size), Image.Resampling.BOX)
