"""Stage 1: contrastive alignment over modality pairs (``train.align``)."""

from __future__ import annotations

from trimodal.config import AlignConfig
from trimodal.losses.multitask import LossDrivenTaskSampler
from trimodal.losses.step import StepInputs
from trimodal.train.stages.base import Stage, StageLoss, weighted_sum
from trimodal.train.step import TrainStep, contrastive_anchors
from trimodal.train.tasks import (
    Attributes,
    Contrastive,
    Objects,
    VideoObjects,
    check_tasks,
    task_table,
)


class AlignStage(Stage):
    """The contrastive loss plus any ``align.auxiliary`` scene-graph tasks (weight 1)."""

    name = "align"
    tasks = task_table(Contrastive, Attributes, Objects, VideoObjects)

    @property
    def settings(self) -> AlignConfig:
        return self.config.train.align

    def validate(self) -> None:
        scene_tasks = [name for name in self.tasks if name != Contrastive.name]
        check_tasks(self.settings.auxiliary, scene_tasks, "train.align.auxiliary")
        for name in self.settings.auxiliary:
            self.task_objects[name].validate("train.align.auxiliary")
        contrastive_anchors(self.settings)  # malformed pairs and anchors are errors

    def active_tasks(self, sampler: LossDrivenTaskSampler | None) -> list[str]:
        return ["contrastive"]

    def loss(self, runner: TrainStep, step: StepInputs, active: list[str]) -> StageLoss:
        aligned = self.run_tasks(runner, step, [Contrastive.name])
        contrastive = aligned.losses[Contrastive.name]
        parts = aligned.logged | {Contrastive.name: float(contrastive.detach())}
        auxiliary = list(self.settings.auxiliary)
        if not auxiliary:
            return contrastive, parts, dict(aligned.weights)
        extra, extra_parts, extra_weights = weighted_sum(self.run_tasks(runner, step, auxiliary))
        return contrastive + extra, parts | extra_parts, aligned.weights | extra_weights
