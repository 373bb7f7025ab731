"""Stage 2c: re-fit one modality's projection head into another's fixed space (``train.bind``)."""

from __future__ import annotations

import torch
from torch import nn

from trimodal.config import BindConfig
from trimodal.data.tensors import SceneTensors
from trimodal.losses.bind import bind_loss, bind_targets
from trimodal.losses.multitask import LossDrivenTaskSampler
from trimodal.losses.step import StepInputs
from trimodal.modalities import registered_modalities
from trimodal.models.trimodal import TriModalModel
from trimodal.train.stages.base import Stage, StageLoss, freeze_all_but
from trimodal.train.step import TrainStep


class BindStage(Stage):
    """InfoNCE from each row's ``modality`` features, through its trainable projection, to every
    training row's fixed ``anchor`` embedding."""

    name = "bind"

    @property
    def settings(self) -> BindConfig:
        return self.config.train.bind

    def validate(self) -> None:
        bind = self.settings
        names = {modality.name for modality in registered_modalities()}
        if bind.modality not in names or bind.anchor not in names or bind.modality == bind.anchor:
            raise ValueError(
                f"train.bind: modality and anchor must be two different ones of "
                f"{tuple(sorted(names))}, got {bind.modality!r} and {bind.anchor!r}"
            )

    def active_tasks(self, sampler: LossDrivenTaskSampler | None) -> list[str]:
        return ["bind"]

    def set_trainable(self, model: TriModalModel) -> None:
        """Only the modality's projection head trains."""
        projection = model.encoders[self.settings.modality].projection
        assert isinstance(projection, nn.Module)
        freeze_all_but(model, projection)

    def prepare(
        self, runner: TrainStep, model: TriModalModel, tensors: SceneTensors, rows: torch.Tensor
    ) -> None:
        bind = self.settings
        runner.bind_targets = bind_targets(model, tensors, rows, bind.modality, bind.anchor)

    def loss(self, runner: TrainStep, step: StepInputs, active: list[str]) -> StageLoss:
        if runner.bind_targets is None:
            raise RuntimeError("stage 'bind' needs the targets computed at its start")
        loss = bind_loss(step, runner.bind_targets)
        return loss, {"bind": float(loss.detach())}, {"bind": 1.0}
