"""Image-only tasks from scene graphs: scene attributes and per-token objects."""

from __future__ import annotations

from trimodal.losses.scene import attribute_loss, object_loss
from trimodal.losses.step import StepInputs
from trimodal.train.step import TrainStep
from trimodal.train.tasks.base import Task, TaskOutput


class Attributes(Task):
    """Multi-label scene attributes from the image tokens."""

    name = "attributes"
    reads = ("image",)

    def output(self, runner: TrainStep, step: StepInputs) -> TaskOutput:
        return self.single(attribute_loss(step))


class Objects(Task):
    """Each image token's object (colour, shape, size, or none) from the scene graph."""

    name = "objects"
    reads = ("image",)

    def output(self, runner: TrainStep, step: StepInputs) -> TaskOutput:
        return self.single(object_loss(step))
