"""Dense video targets and the video_objects loss (trimodal.losses.video) against hand-computed
values and a naive loop, on a tiny world with clips."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from tests.conftest import TINY_VIDEO_TOWER
from trimodal.config import load_config
from trimodal.data.manifest import load_manifest
from trimodal.losses.step import StepInputs
from trimodal.losses.video import (
    moved_boxes,
    step_fractions,
    video_object_loss,
    video_object_targets,
)
from trimodal.models.trimodal import TriModalModel
from trimodal.train.loop import RunData, prepare_data
from trimodal.train.stages import build_stages
from trimodal.world.generate import WorldConfig, build_world
from trimodal.world.motion import DIRECTIONS, MOTION_CLASSES, TRAVEL

ROOT = Path(__file__).resolve().parents[2]
VIDEO = [*TINY_VIDEO_TOWER, "model.video.motion_classes=6"]
RIGHT = MOTION_CLASSES.index("right")
NO_OBJECT = [5, 5, 5, len(MOTION_CLASSES)]


def test_steps_sit_evenly_along_the_clip() -> None:
    assert step_fractions(4, 1).tolist() == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])
    assert step_fractions(4, 2).tolist() == pytest.approx([1 / 6, 5 / 6])  # tubelet means
    assert step_fractions(1, 1).tolist() == [0.0]


def test_boxes_travel_along_their_motion_and_unknown_motion_stays() -> None:
    boxes = torch.tensor([[[0.5, 0.5, 0.1], [0.4, 0.6, 0.2], [0.3, 0.3, 0.1]]])
    motions = torch.tensor([[MOTION_CLASSES.index("left"), MOTION_CLASSES.index("down"), -1]])
    moved = moved_boxes(boxes, motions, torch.tensor([0.0, 0.5, 1.0]))
    assert moved.shape == (1, 3, 3, 3)
    assert torch.allclose(moved[0, 0], boxes[0])
    assert moved[0, 2, 0].tolist() == pytest.approx([0.5 - TRAVEL, 0.5, 0.1])
    assert moved[0, 1, 1].tolist() == pytest.approx([0.4, 0.6 + TRAVEL / 2, 0.2])
    assert moved[0, 2, 2].tolist() == pytest.approx([0.3, 0.3, 0.1])


def test_an_object_moving_right_takes_its_labels_and_motion_across_the_grid() -> None:
    # A small red (0) circle (1), size 0, starting at x = 0.3 in row 1 of a 4 x 4 grid, moving
    # right by 0.3: it covers column 1 at the first step and column 2 at the last.
    boxes = torch.tensor([[[0.3, 0.375, 0.05]]])
    labels = torch.tensor([[[0, 1, 0]]])
    targets = video_object_targets(
        boxes, labels, torch.tensor([[RIGHT]]), torch.tensor([0.0, 1.0]), 4, NO_OBJECT
    )
    assert targets.shape == (1, 4, 32)
    first, last = 1 * 4 + 1, 16 + 1 * 4 + 2  # (row 1, col 1) at step 0, (row 1, col 2) at step 1
    for cell in (first, last):
        assert targets[0, :, cell].tolist() == [0, 1, 0, RIGHT]
    others = torch.ones(32, dtype=torch.bool)
    others[[first, last]] = False
    assert (targets[0, :, others] == torch.tensor(NO_OBJECT)[:, None]).all()


def naive_video_targets(
    boxes: torch.Tensor,
    labels: torch.Tensor,
    motions: torch.Tensor,
    fractions: list[float],
    grid: int,
    background: list[int],
) -> torch.Tensor:
    """Step by step, cell by cell, object by object, moving each object by hand."""
    batch, objects, _ = boxes.shape
    cells = grid * grid
    out = torch.empty(batch, 4, len(fractions) * cells, dtype=torch.long)
    for b in range(batch):
        for s, fraction in enumerate(fractions):
            for row in range(grid):
                for col in range(grid):
                    cx, cy = (col + 0.5) / grid, (row + 0.5) / grid
                    best, chosen = math.inf, None
                    for k in range(objects):
                        if (labels[b, k] < 0).all() and motions[b, k] < 0:
                            continue
                        x, y, radius = boxes[b, k].tolist()
                        motion = int(motions[b, k])
                        if motion >= 0 and MOTION_CLASSES[motion] in DIRECTIONS:
                            dx, dy = DIRECTIONS[MOTION_CLASSES[motion]]
                            x, y = x + dx * TRAVEL * fraction, y + dy * TRAVEL * fraction
                        distance = math.hypot(cx - x, cy - y)
                        if distance < max(radius, 0.5 / grid) and distance < best:
                            best, chosen = distance, k
                    values = (
                        [*labels[b, chosen].tolist(), int(motions[b, chosen])]
                        if chosen is not None
                        else background
                    )
                    out[b, :, s * cells + row * grid + col] = torch.tensor(
                        [v if (chosen is None or v >= 0) else -100 for v in values]
                    )
    return out


def test_targets_match_a_naive_loop_on_random_scenes() -> None:
    generator = torch.Generator().manual_seed(1)
    boxes = torch.rand(5, 3, 3, generator=generator) * 0.6 + 0.2
    boxes[..., 2] = boxes[..., 2] * 0.25
    labels = torch.randint(0, 5, (5, 3, 3), generator=generator)
    motions = torch.randint(0, len(MOTION_CLASSES), (5, 3), generator=generator)
    labels[0, 2], motions[0, 2] = -1, -1  # a padding object
    fractions = [0.0, 1 / 3, 2 / 3, 1.0]
    for grid in (4, 8):
        expected = naive_video_targets(boxes, labels, motions, fractions, grid, NO_OBJECT)
        found = video_object_targets(
            boxes, labels, motions, torch.tensor(fractions), grid, NO_OBJECT
        )
        assert torch.equal(found, expected)


@pytest.fixture(scope="module")
def video_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    world = tmp_path_factory.mktemp("video_loss_world")
    build_world(world, WorldConfig(scenes=24, seed=3, video_frames=4), workers=2)
    return world


@pytest.fixture(scope="module")
def video_data(video_world: Path) -> RunData:
    return prepare_data(load_config(ROOT / "configs" / "tiny.yaml", VIDEO), video_world)


def test_scene_tensors_record_each_objects_motion(video_world: Path, video_data: RunData) -> None:
    tensors = video_data.tensors
    manifest = load_manifest(video_world / "manifest.jsonl")
    for row, sample in enumerate(manifest.samples):
        scene = sample.scene or {}
        recorded = [MOTION_CLASSES[i] for i in tensors.object_motions[row].tolist() if i >= 0]
        assert recorded == scene["motions"]


def test_the_loss_reaches_the_video_tower_and_matches_a_hand_sum(video_data: RunData) -> None:
    config = load_config(ROOT / "configs" / "tiny.yaml", VIDEO)
    torch.manual_seed(0)
    model = TriModalModel(config, video_data.tokenizer.vocab_size, video_data.vocabulary)
    rows = video_data.train_rows[:6]
    step = StepInputs(model, video_data.tensors, rows, torch.Generator().manual_seed(0))
    loss = video_object_loss(step)
    loss.backward()
    encoder = model.encoders["video"]
    assert torch.isfinite(loss) and loss > 0
    assert next(encoder.tubelets.parameters()).grad.abs().sum() > 0
    assert encoder.motion_head.weight.grad.abs().sum() > 0
    with torch.no_grad():
        tokens = step.encoded("video").tokens
        classes = [*model.object_classes(), len(MOTION_CLASSES) + 1]
        logits = [*model.object_head(tokens).split(classes[:-1], -1), encoder.motion_head(tokens)]
        targets = video_object_targets(
            video_data.tensors.object_boxes[rows],
            video_data.tensors.object_labels[rows],
            video_data.tensors.object_motions[rows],
            step_fractions(4, 1),
            encoder.grid,
            [c - 1 for c in classes],
        )
        by_hand = sum(
            -torch.log_softmax(group, -1).gather(-1, targets[:, g].unsqueeze(-1)).mean()
            for g, group in enumerate(logits)
        )
    assert float(loss.detach()) == pytest.approx(float(by_hand), rel=1e-5)
    without_clips = video_data.tensors.subset(rows)
    without_clips.media["video"].present[:] = False
    blind = StepInputs(model, without_clips, torch.arange(6), torch.Generator().manual_seed(0))
    assert float(video_object_loss(blind)) == 0.0


def test_a_recipe_without_the_motion_head_is_told_which_field_to_set() -> None:
    config = load_config(
        ROOT / "configs" / "tiny.yaml",
        [*TINY_VIDEO_TOWER, "train.align.auxiliary=[video_objects]"],
    )
    with pytest.raises(ValueError, match=r"train.align.auxiliary: .*model.video.motion_classes: 6"):
        build_stages(config)
