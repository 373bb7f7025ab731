"""Stage 2: tasks under a joint, learned or dynamic weighting (``train.multitask``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trimodal.config import MultiTaskConfig
from trimodal.losses.multitask import LossDrivenTaskSampler, build_weighting
from trimodal.losses.scene import IMAGE_TASK_LOSSES
from trimodal.losses.step import StepInputs
from trimodal.losses.vqa import spoken_vqa_loss, typed_vqa_loss
from trimodal.train.stages.base import Stage, StageLoss
from trimodal.train.step import TrainStep
from trimodal.train.tasks import IMAGE_TASKS, TASKS, check_tasks


class MultiTaskStage(Stage):
    """Contrastive, typed and spoken VQA and image tasks, weighted by ``train.multitask.weighting``
    and optionally sampled by recent loss (``scheduler: loss_driven``)."""

    name = "multitask"

    @property
    def settings(self) -> MultiTaskConfig:
        return self.config.train.multitask

    def validate(self) -> None:
        check_tasks(self.settings.tasks, TASKS, "train.multitask.tasks")

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
        losses: dict[str, torch.Tensor] = {}
        parts: dict[str, float] = {}
        if "contrastive" in active:
            losses["contrastive"], parts = runner.contrastive(step)
        multitask = self.settings
        if "vqa_typed" in active:
            losses["vqa_typed"] = typed_vqa_loss(
                step, multitask.questions_per_scene, runner.pool, multitask.grounding_weight
            )
        if "vqa_spoken" in active:
            losses["vqa_spoken"] = spoken_vqa_loss(step)
        for name in IMAGE_TASKS:
            if name in active:
                losses[name] = IMAGE_TASK_LOSSES[name](step)
        assert runner.weighting is not None
        output = runner.weighting(losses)
        parts |= {k: float(v.detach()) for k, v in output.parts.items()}
        return output.total, parts, dict(output.weights)
