"""Stage 0: the image tower alone on image-only tasks (``train.vision``)."""

from __future__ import annotations

from trimodal.config import VisionConfig
from trimodal.losses.multitask import LossDrivenTaskSampler
from trimodal.losses.step import StepInputs
from trimodal.train.stages.base import Stage, StageLoss, weighted_sum
from trimodal.train.step import TrainStep
from trimodal.train.tasks import Attributes, Objects, task_table


class VisionStage(Stage):
    """The sum of ``train.vision.tasks`` (``attributes``, ``objects``), each at weight 1."""

    name = "vision"
    tasks = task_table(Attributes, Objects)

    @property
    def settings(self) -> VisionConfig:
        return self.config.train.vision

    def validate(self) -> None:
        self.check_listed_tasks(self.settings.tasks, "train.vision.tasks")

    def active_tasks(self, sampler: LossDrivenTaskSampler | None) -> list[str]:
        return list(self.settings.tasks)

    def loss(self, runner: TrainStep, step: StepInputs, active: list[str]) -> StageLoss:
        return weighted_sum(self.run_tasks(runner, step, active))
