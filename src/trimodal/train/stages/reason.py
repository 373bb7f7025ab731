"""Stage 2b: questions over frozen image and audio towers, with grounding (``train.reason``)."""

from __future__ import annotations

import torch

from trimodal.config import ReasonConfig
from trimodal.losses.multitask import LossDrivenTaskSampler
from trimodal.losses.step import StepInputs
from trimodal.losses.transcribe import transcribe_loss
from trimodal.losses.vqa import pooled_vqa_losses, spoken_vqa_loss
from trimodal.models.trimodal import TriModalModel
from trimodal.train.stages.base import Stage, StageLoss, train_all_but
from trimodal.train.step import TrainStep, contrastive_pairs
from trimodal.train.tasks import REASON_TASKS, check_tasks


class ReasonStage(Stage):
    """``train.reason.tasks`` over fixed image and audio outputs, each at weight 1, and the
    grounding loss at ``grounding_weight``."""

    name = "reason"

    @property
    def settings(self) -> ReasonConfig:
        return self.config.train.reason

    def validate(self) -> None:
        reason = self.settings
        check_tasks(reason.tasks, REASON_TASKS, "train.reason.tasks")
        if reason.epochs > 0 and not reason.tasks:
            raise ValueError("train.reason.tasks is empty but train.reason.epochs > 0")
        if "transcribe" in reason.tasks and self.config.model.transcriber_depth < 1:
            raise ValueError("train.reason.tasks has 'transcribe' but model.transcriber_depth is 0")

    def active_tasks(self, sampler: LossDrivenTaskSampler | None) -> list[str]:
        return list(self.settings.tasks)

    def frozen_towers(self) -> set[str]:
        """Images always, spoken questions for ``vqa_spoken`` or ``transcribe``, spoken
        captions for a contrastive pair with audio."""
        tasks = self.settings.tasks
        towers = {"image"}
        if "vqa_spoken" in tasks or "transcribe" in tasks:
            towers.add("spoken")
        pairs = contrastive_pairs(self.config.train.align.pairs)
        if "contrastive" in tasks and any("audio" in pair for pair in pairs):
            towers.add("audio")
        return towers

    def set_trainable(self, model: TriModalModel) -> None:
        """Neither the decoder side nor the image and audio towers train."""
        train_all_but(
            model,
            model.projector,
            model.decoder,
            model.caption_grounding,
            model.encoders["image"],
            model.encoders["audio"],
        )

    def loss(self, runner: TrainStep, step: StepInputs, active: list[str]) -> StageLoss:
        if "image" not in runner.frozen or runner.reason_pool is None:
            raise RuntimeError("stage 'reason' needs its question pool and frozen image outputs")
        reason = self.settings
        step.frozen = runner.frozen
        losses: dict[str, torch.Tensor] = {}
        weights: dict[str, float] = {}
        if "vqa_typed" in active:
            answer, grounding = pooled_vqa_losses(
                step, reason.questions_per_scene, runner.reason_pool
            )
            losses["vqa_typed"], weights["vqa_typed"] = answer, 1.0
            if grounding is not None:
                losses["grounding"], weights["grounding"] = grounding, reason.grounding_weight
        if "vqa_spoken" in active:
            losses["vqa_spoken"], weights["vqa_spoken"] = spoken_vqa_loss(step), 1.0
        if "transcribe" in active:
            losses["transcribe"], weights["transcribe"] = transcribe_loss(step), 1.0
        parts: dict[str, float] = {}
        if "contrastive" in active:
            losses["contrastive"], parts = runner.contrastive(step)
            weights["contrastive"] = 1.0
        total = torch.stack([weights[name] * loss for name, loss in losses.items()]).sum()
        parts |= {name: float(loss.detach()) for name, loss in losses.items()}
        return total, parts, weights
