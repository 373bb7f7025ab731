"""Video-only task from scene graphs: each video token's object and its motion."""

from __future__ import annotations

from trimodal.losses.step import StepInputs
from trimodal.losses.video import video_object_loss
from trimodal.train.step import TrainStep
from trimodal.train.tasks.base import Task, TaskOutput
from trimodal.world.motion import MOTION_CLASSES


class VideoObjects(Task):
    """Each video token's object (colour, shape, size, or none) and which way it moves, from
    the scene graph and its recorded motions."""

    name = "video_objects"
    reads = ("video",)

    def validate(self, field_name: str) -> None:
        video = self.config.model.video
        wanted = len(MOTION_CLASSES) + 1
        if video.depth <= 0:
            raise ValueError(
                f"{field_name}: video_objects needs a video encoder (model.video.depth > 0)"
            )
        if video.motion_classes != wanted:
            raise ValueError(
                f"{field_name}: video_objects needs model.video.motion_classes: {wanted} "
                f"({len(MOTION_CLASSES)} motions and 'no object'), got {video.motion_classes}"
            )

    def output(self, runner: TrainStep, step: StepInputs) -> TaskOutput:
        return self.single(video_object_loss(step))
