"""Stage 2: tasks under a joint, learned or dynamic weighting (``train.multitask``)."""

from __future__ import annotations

from typing import Any

from torch import nn

from trimodal.config import MultiTaskConfig
from trimodal.losses.multitask import LossDrivenTaskSampler, build_weighting
from trimodal.losses.step import StepInputs
from trimodal.train.stages.base import Stage, StageLoss
from trimodal.train.step import TrainStep
from trimodal.train.tasks import (
    Attributes,
    Contrastive,
    Objects,
    SpokenAnswers,
    TypedAnswers,
    VideoObjects,
    task_table,
)


class MultiTaskStage(Stage):
    """Contrastive, typed and spoken VQA and image tasks, weighted by ``train.multitask.weighting``
    and optionally sampled by recent loss (``scheduler: loss_driven``)."""

    name = "multitask"
    tasks = task_table(Contrastive, TypedAnswers, SpokenAnswers, Attributes, Objects, VideoObjects)

    @property
    def settings(self) -> MultiTaskConfig:
        return self.config.train.multitask

    def validate(self) -> None:
        self.check_listed_tasks(self.settings.tasks, "train.multitask.tasks")

    def weighting(self) -> nn.Module:
        multitask = self.settings
        options: dict[str, Any] = (
            {"weights": multitask.static_weights} if multitask.weighting == "static" else {}
        )
        return build_weighting(multitask.weighting, multitask.tasks, **options)

    def sampler(self) -> LossDrivenTaskSampler | None:
        multitask = self.settings
        if multitask.scheduler == "all":
            return None
        if multitask.scheduler != "loss_driven":
            raise ValueError(
                f"train.multitask.scheduler must be 'all' or 'loss_driven', got {multitask.scheduler!r}"
            )
        return LossDrivenTaskSampler(multitask.tasks, seed=self.config.train.seed)

    def active_tasks(self, sampler: LossDrivenTaskSampler | None) -> list[str]:
        multitask = self.settings
        if sampler is None:
            return list(multitask.tasks)
        return sampler.sample(min(multitask.tasks_per_step, len(multitask.tasks)))

    def loss(self, runner: TrainStep, step: StepInputs, active: list[str]) -> StageLoss:
        tasks = self.run_tasks(runner, step, self.in_table_order(active))
        assert runner.weighting is not None
        output = runner.weighting(tasks.losses)
        parts = tasks.logged | {k: float(v.detach()) for k, v in output.parts.items()}
        return output.total, parts, dict(output.weights)
