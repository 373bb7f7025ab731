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


def _covered(pixels: np.ndarray, background: tuple[int, int, int]) -> np.ndarray:
    return np.abs(pixels.astype(int) - np.array(background)).sum(axis=2) > 60


def test_the_default_style_is_the_default_rendering() -> None:
    from trimodal.world.render import RenderStyle

    scene = sample_scene(5, seed=0)
    plain = np.asarray(render_scene(scene, 64))
    assert np.array_equal(plain, np.asarray(render_scene(scene, 64, RenderStyle())))


def test_a_turn_rotates_the_outline_and_keeps_its_area() -> None:
    from trimodal.world.render import RenderStyle

    background = (40, 40, 40)
    obj = SceneObject("square", "yellow", "large", 0.5, 0.5, 0.2, 0.0)
    scene = Scene(0, "train", background, (obj,))
    still = _covered(np.asarray(render_scene(scene, 64)), background)
    turned = _covered(
        np.asarray(render_scene(scene, 64, RenderStyle(turn=(45.0, 45.0)))), background
    )
    assert abs(int(turned.sum()) - int(still.sum())) < 0.05 * still.sum()
    # A square turned 45 degrees reaches further along the axes through its centre.
    assert turned[32, :].sum() > still[32, :].sum() + 4
    assert not np.array_equal(still, turned)


def test_textured_and_gradient_backgrounds_vary_but_stay_near_the_scene_colour() -> None:
    from trimodal.world.render import RenderStyle

    obj = SceneObject("circle", "red", "large", 0.5, 0.5, 0.16, 0.0)
    scene = Scene(7, "train", (60, 70, 80), (obj,))
    for kind in ("texture", "gradient"):
        pixels = np.asarray(render_scene(scene, 64, RenderStyle(backgrounds=(kind,)))).astype(int)
        corners = pixels[[1, 1, 62, 62], [1, 62, 1, 62]]
        assert np.abs(corners - np.array([60, 70, 80])).max() <= 61
        assert pixels[:8, :8].std() > 1.0  # not flat
        centre = pixels[32, 32]
        assert np.abs(centre - np.array(COLORS["red"])).max() <= 14


def test_lighting_scales_brightness_and_bad_styles_are_named() -> None:
    import pytest

    from trimodal.world.render import RenderStyle

    scene = sample_scene(2, seed=0)
    plain = np.asarray(render_scene(scene, 64)).astype(float)
    lit = np.asarray(render_scene(scene, 64, RenderStyle(lighting=0.3))).astype(float)
    ratio = lit.mean() / plain.mean()
    assert 0.69 <= ratio <= 1.31 and abs(ratio - 1.0) > 1e-3
    with pytest.raises(ValueError, match="render turn"):
        RenderStyle(turn=(40.0, 10.0)).validate()
    with pytest.raises(ValueError, match="render backgrounds"):
        RenderStyle(backgrounds=("marble",)).validate()
