"""Stage 0: the image tower alone on image-only tasks (``train.vision``)."""

from __future__ import annotations

from trimodal.config import VisionConfig
from trimodal.losses.multitask import LossDrivenTaskSampler
from trimodal.losses.step import StepInputs
from trimodal.train.stages.base import Stage, StageLoss
from trimodal.train.step import TrainStep
from trimodal.train.tasks import IMAGE_TASKS, check_tasks


class VisionStage(Stage):
    """The sum of ``train.vision.tasks`` (``attributes``, ``objects``), each at weight 1."""

    name = "vision"

    @property
    def settings(self) -> VisionConfig:
        return self.config.train.vision

    def validate(self) -> None:
        check_tasks(self.settings.tasks, IMAGE_TASKS, "train.vision.tasks")

    def active_tasks(self, sampler: LossDrivenTaskSampler | None) -> list[str]:
        return list(self.settings.tasks)

    def loss(self, runner: TrainStep, step: StepInputs, active: list[str]) -> StageLoss:
        return runner.image_tasks(step, active)
