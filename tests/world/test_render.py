"""Rendering draws each object in its colour at its place on the background."""

from __future__ import annotations

import numpy as np

from trimodal.world.render import render_scene
from trimodal.world.scene import COLORS, Scene, SceneObject, sample_scene


def test_object_centres_have_object_colours_and_corners_background() -> None:
    scene = Scene(
        0,
        "train",
        (50, 60, 70),
        (
            SceneObject("circle", "red", "large", 0.3, 0.3, 0.16, 0.0),
            SceneObject("star", "blue", "small", 0.75, 0.75, 0.1, 5.0),
        ),
    )
    pixels = np.asarray(render_scene(scene, 64)).astype(int)
    assert pixels.shape == (64, 64, 3)
    assert np.abs(pixels[1, 62] - np.array([50, 60, 70])).max() == 0
    for obj in scene.objects:
        centre = pixels[round(obj.y * 64), round(obj.x * 64)]
        assert np.abs(centre - np.array(COLORS[obj.color])).max() <= 14


def test_size_is_configurable_and_rendering_is_deterministic() -> None:
    scene = sample_scene(3, seed=0)
    a, b = render_scene(scene, 96), render_scene(scene, 96)
    assert a.size == (96, 96)
    assert np.array_equal(np.asarray(a), np.asarray(b))


def test_large_objects_cover_more_pixels_than_small() -> None:
    background = (40, 40, 40)

    def covered(size: str, radius: float) -> int:
        obj = SceneObject("square", "yellow", size, 0.5, 0.5, radius, 0.0)
        pixels = np.asarray(render_scene(Scene(0, "train", background, (obj,)), 64)).astype(int)
        return int((np.abs(pixels - np.array(background)).sum(axis=2) > 60).sum())

    assert covered("large", 0.165) > 2.5 * covered("small", 0.095)
