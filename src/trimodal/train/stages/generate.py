"""Stage 3: the decoder learns captions, transcripts, answers and dialogues (``train.generate``)."""

from __future__ import annotations

import torch

from trimodal.config import GenerateConfig
from trimodal.losses.multitask import LossDrivenTaskSampler
from trimodal.losses.step import StepInputs
from trimodal.models.trimodal import TriModalModel
from trimodal.train.stages.base import Stage, StageLoss, freeze_all_but
from trimodal.train.step import TrainStep
from trimodal.train.tasks import (
    Caption,
    Dialogue,
    SpokenAnswer,
    SpokenCaption,
    TypedAnswer,
    check_tasks,
    task_table,
)

FROZEN_OUTPUTS = ("image", "audio", "spoken")
"""The encoder outputs a frozen stage 3 computes once (typed questions are the decoder's)."""


class GenerateStage(Stage):
    """The ``task_weights``-weighted mean of the generative tasks' next-token losses, over
    frozen encoder outputs with ``freeze_encoders``."""

    name = "generate"
    tasks = task_table(Caption, SpokenCaption, TypedAnswer, SpokenAnswer, Dialogue)

    @property
    def settings(self) -> GenerateConfig:
        return self.config.train.generate

    def validate(self) -> None:
        generate = self.settings
        self.check_listed_tasks(generate.tasks, "train.generate.tasks")
        given = generate.task_weights
        check_tasks(list(given), generate.tasks, "train.generate.task_weights")
        total = sum(given.get(task, 1.0) for task in generate.tasks)
        if any(weight < 0 for weight in given.values()) or (generate.tasks and total <= 0):
            raise ValueError(
                f"train.generate.task_weights: weights must be >= 0 with a positive sum, got {given}"
            )
        self._check_caption_grounding()

    def _check_caption_grounding(self) -> None:
        """``grounding_weight`` needs the decoder's grounding head and the caption variants
        that carry its targets."""
        weight = self.settings.grounding_weight
        if weight < 0:
            raise ValueError(f"train.generate.grounding_weight must be >= 0, got {weight}")
        if weight > 0 and not (
            self.settings.caption_variants and self.config.model.decoder.grounding_bins > 0
        ):
            raise ValueError(
                "train.generate.grounding_weight > 0 needs train.generate.caption_variants: true "
                "and model.decoder.grounding_bins > 0"
            )

    def active_tasks(self, sampler: LossDrivenTaskSampler | None) -> list[str]:
        return list(self.settings.tasks)

    def frozen_towers(self) -> set[str]:
        """With ``freeze_encoders``: images for the tasks that look at the scene, spoken
        captions for ``transcribe``, spoken questions for ``vqa_spoken``; the decoder then
        trains on the eval-mode outputs it reads at inference."""
        if not self.settings.freeze_encoders:
            return set()
        return self.reads(self.settings.tasks) & set(FROZEN_OUTPUTS)

    def set_trainable(self, model: TriModalModel) -> None:
        """With ``freeze_encoders`` only the projector and the decoder (with its grounding
        head) train."""
        if self.settings.freeze_encoders:
            freeze_all_but(model, model.projector, model.decoder, model.caption_grounding)
        else:
            model.requires_grad_(True)

    def loss(self, runner: TrainStep, step: StepInputs, active: list[str]) -> StageLoss:
        step.frozen = runner.frozen
        step.captions = runner.caption_pool
        losses = self.run_tasks(runner, step, active).losses
        given = self.settings.task_weights
        raw = {task: given.get(task, 1.0) for task in losses}
        weights = {task: weight / sum(raw.values()) for task, weight in raw.items()}
        total = torch.stack([weights[task] * loss for task, loss in losses.items()]).sum()
        parts = {task: float(loss.detach()) for task, loss in losses.items()}
        return total, parts, weights
