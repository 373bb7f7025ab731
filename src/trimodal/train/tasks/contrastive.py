"""The contrastive task: InfoNCE (or cosine) over the recipe's modality pairs."""

from __future__ import annotations

from trimodal.losses.step import StepInputs
from trimodal.train.step import TrainStep
from trimodal.train.tasks.base import Task, TaskOutput


class Contrastive(Task):
    """``train.align``'s pairwise loss; its parts per pair are logged (``contrastive/a-b``)."""

    name = "contrastive"
    reads = ("image", "text", "audio")

    def output(self, runner: TrainStep, step: StepInputs) -> TaskOutput:
        total, per_pair = runner.contrastive(step)
        return TaskOutput({self.name: total}, {self.name: 1.0}, per_pair)
