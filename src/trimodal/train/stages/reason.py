"""Stage 2b: questions over frozen image and audio towers, with grounding (``train.reason``)."""

from __future__ import annotations

from trimodal.config import ReasonConfig
from trimodal.losses.multitask import LossDrivenTaskSampler
from trimodal.losses.step import StepInputs
from trimodal.modalities import stored_modalities
from trimodal.models.trimodal import TriModalModel
from trimodal.train.stages.base import Stage, StageLoss, train_all_but, weighted_sum
from trimodal.train.step import TrainStep, contrastive_pairs
from trimodal.train.tasks import (
    Contrastive,
    PooledAnswers,
    SpokenAnswers,
    Transcribe,
    task_table,
)


class ReasonStage(Stage):
    """``train.reason.tasks`` over fixed image and audio outputs, each at weight 1, and the
    grounding loss at ``grounding_weight``."""

    name = "reason"
    tasks = task_table(PooledAnswers, SpokenAnswers, Transcribe, Contrastive)

    @property
    def settings(self) -> ReasonConfig:
        return self.config.train.reason

    def validate(self) -> None:
        reason = self.settings
        self.check_listed_tasks(reason.tasks, "train.reason.tasks")
        if reason.epochs > 0 and not reason.tasks:
            raise ValueError("train.reason.tasks is empty but train.reason.epochs > 0")

    def active_tasks(self, sampler: LossDrivenTaskSampler | None) -> list[str]:
        return list(self.settings.tasks)

    def frozen_towers(self) -> set[str]:
        """Images and the stored modalities (video) always, spoken questions for the tasks
        that read them, spoken captions for a task that reads them when a contrastive pair has
        audio."""
        reads = self.reads(self.settings.tasks)
        towers = {"image", *(modality.name for modality in stored_modalities(self.config))}
        if "spoken" in reads:
            towers.add("spoken")
        pairs = contrastive_pairs(self.config.train.align.pairs)
        if "audio" in reads and any("audio" in pair for pair in pairs):
            towers.add("audio")
        return towers

    def set_trainable(self, model: TriModalModel) -> None:
        """Neither the decoder side nor the perception towers (every encoder but text's)
        train."""
        towers = [encoder for name, encoder in model.encoders.items() if name != "text"]
        train_all_but(model, model.projector, model.decoder, model.caption_grounding, *towers)

    def loss(self, runner: TrainStep, step: StepInputs, active: list[str]) -> StageLoss:
        if "image" not in runner.frozen or runner.reason_pool is None:
            raise RuntimeError("stage 'reason' needs its question pool and frozen image outputs")
        step.frozen = runner.frozen
        return weighted_sum(self.run_tasks(runner, step, self.in_table_order(active)))
