"""Stage 1: contrastive alignment over modality pairs (``train.align``)."""

from __future__ import annotations

from trimodal.config import AlignConfig
from trimodal.losses.multitask import LossDrivenTaskSampler
from trimodal.losses.step import StepInputs
from trimodal.train.stages.base import Stage, StageLoss
from trimodal.train.step import TrainStep, contrastive_anchors
from trimodal.train.tasks import IMAGE_TASKS, check_tasks


class AlignStage(Stage):
    """The contrastive loss plus any ``align.auxiliary`` image tasks (weight 1)."""

    name = "align"

    @property
    def settings(self) -> AlignConfig:
        return self.config.train.align

    def validate(self) -> None:
        check_tasks(self.settings.auxiliary, IMAGE_TASKS, "train.align.auxiliary")
        contrastive_anchors(self.settings)  # malformed pairs and anchors are errors

    def active_tasks(self, sampler: LossDrivenTaskSampler | None) -> list[str]:
        return ["contrastive"]

    def loss(self, runner: TrainStep, step: StepInputs, active: list[str]) -> StageLoss:
        contrastive, parts = runner.contrastive(step)
        parts["contrastive"] = float(contrastive.detach())
        auxiliary = list(self.settings.auxiliary)
        if not auxiliary:
            return contrastive, parts, {"contrastive": 1.0}
        extra, extra_parts, extra_weights = runner.image_tasks(step, auxiliary)
        return contrastive + extra, parts | extra_parts, {"contrastive": 1.0} | extra_weights
