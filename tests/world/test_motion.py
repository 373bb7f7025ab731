"""Motion in the world's clips: paths stay inside, frames show them, questions tell the truth,
and a world with video writes clips its manifest names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from trimodal.data.manifest import load_manifest
from trimodal.modalities.video import read_frames
from trimodal.world.generate import WorldConfig, build_world
from trimodal.world.motion import (
    DIRECTIONS,
    STILL,
    TRAVEL,
    MotionBalancer,
    motion_clause,
    motion_questions,
    moved,
    render_clip,
    sample_motions,
)
from trimodal.world.render import render_scene
from trimodal.world.scene import COLORS, Scene, SceneObject, sample_scene


def _scene() -> Scene:
    return Scene(
        0,
        "train",
        (60, 60, 60),
        (
            SceneObject("circle", "red", "large", 0.3, 0.5, 0.15, 0.0),
            SceneObject("star", "blue", "small", 0.75, 0.25, 0.1, 0.0),
            SceneObject("square", "green", "small", 0.75, 0.75, 0.1, 0.0),
        ),
    )


def _centre(frame: np.ndarray, color: str) -> tuple[float, float]:
    """(x, y) centre of the pixels within 30 of ``color``, as fractions of the side."""
    near = np.abs(frame.astype(int) - np.array(COLORS[color])).max(-1) <= 30
    ys, xs = np.nonzero(near)
    return float(xs.mean()) / frame.shape[1], float(ys.mean()) / frame.shape[0]


def test_motions_keep_every_object_inside_the_image() -> None:
    seen = set()
    for index in range(300):
        scene = sample_scene(index, seed=0)
        motions = sample_motions(scene, seed=0)
        assert motions == sample_motions(scene, seed=0)
        seen.update(motions)
        for obj in moved(scene, motions, 1.0).objects:
            assert obj.radius <= obj.x <= 1 - obj.radius and obj.radius <= obj.y <= 1 - obj.radius
    assert seen == {*DIRECTIONS, STILL}


def test_frames_show_each_object_travelling_its_way() -> None:
    scene = _scene()
    motions = ("right", "down", STILL)
    frames = render_clip(scene, motions, 8, 64)
    assert frames.shape == (8, 64, 64, 3)
    assert np.array_equal(frames[0], np.asarray(render_scene(scene, 64)))
    for color, (dx, dy) in (("red", (TRAVEL, 0.0)), ("blue", (0.0, TRAVEL)), ("green", (0, 0))):
        (x0, y0), (x1, y1) = _centre(frames[0], color), _centre(frames[-1], color)
        assert abs((x1 - x0) - dx) < 0.03 and abs((y1 - y0) - dy) < 0.03


def test_motion_questions_and_clause_follow_the_motions() -> None:
    scene = _scene()
    motions = ("right", "up", STILL)
    questions = motion_questions(scene, motions)
    which = {q.question: q.answer for q in questions["motion"]}
    assert which == {
        "which way does the red circle move?": "right",
        "which way does the blue star move?": "up",
        "which way does the green square move?": STILL,
    }
    moves = {q.question: q.answer for q in questions["moves"]}
    assert moves["does the green square move?"] == "no"
    movers = {q.question: q.answer for q in questions["mover"]}
    assert movers == {
        "what color is the object that moves right?": "red",
        "what color is the object that moves up?": "blue",
    }
    assert motion_clause(scene, motions) == "the red circle moves right and the blue star moves up"
    assert motion_clause(scene, (STILL,) * 3) == "nothing moves"
    # two objects moving the same way: no "mover" question can name one of them
    assert "mover" not in motion_questions(scene, ("left", "left", STILL))


def test_objects_sharing_colour_and_shape_are_named_with_their_size() -> None:
    twin = SceneObject("circle", "red", "small", 0.75, 0.75, 0.1, 0.0)
    scene = Scene(0, "train", (60, 60, 60), (_scene().objects[0], twin))
    names = [q.question for q in motion_questions(scene, (STILL, "left"))["motion"]]
    assert names == [
        "which way does the large red circle move?",
        "which way does the small red circle move?",
    ]


def test_the_balancer_evens_out_answers() -> None:
    balancer = MotionBalancer(seed=0)
    for index in range(600):
        scene = sample_scene(index, seed=0)
        balancer.choose(scene, sample_motions(scene, seed=0))
    for family, counts in balancer.counts.items():
        assert min(counts.values()) / max(counts.values()) > 0.5, family


def test_a_world_with_video_writes_clips_its_manifest_names(tmp_path: Path) -> None:
    summary = build_world(tmp_path, WorldConfig(scenes=6, seed=1, video_frames=4), workers=1)
    assert {"motion", "mover", "moves"} <= set(summary.questions_per_family)
    manifest = load_manifest(tmp_path / "manifest.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    for sample, row in zip(manifest.samples, rows, strict=True):
        assert set(sample.media) == {"video"}
        frames = read_frames(sample.media["video"])
        assert len(frames) == 4 and frames[0].shape == (64, 64, 3)
        assert len(row["scene"]["motions"]) == len(row["scene"]["objects"])
        assert row["questions"][0]["family"] in {"motion", "mover", "moves"}
        assert "spoken_question" in row["questions"][0]
        assert "moves" in row["text"]
    recorded = json.loads((tmp_path / "world.json").read_text())
    assert recorded["video_frames"] == 4


def test_a_world_without_video_records_no_video_setting(tmp_path: Path) -> None:
    build_world(tmp_path, WorldConfig(scenes=2, seed=1), workers=1)
    assert "video_frames" not in json.loads((tmp_path / "world.json").read_text())
    assert not (tmp_path / "videos").exists()
