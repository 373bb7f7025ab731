"""A training stage is one object: its tasks and their weighting, which parameters train,
which towers it reads frozen, and its loss for a step.

The trainer runs the stages a recipe lists in ``train.stages``, in that order, and asks each
for what it needs; it compares no stage name. A new stage is a new :class:`Stage` in its own
file, registered in :mod:`trimodal.train.stages`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from trimodal.config import Config, StageConfig
from trimodal.data.tensors import SceneTensors
from trimodal.losses.multitask import LossDrivenTaskSampler
from trimodal.losses.step import StepInputs
from trimodal.models.trimodal import TriModalModel

if TYPE_CHECKING:
    from trimodal.train.step import TrainStep

StageLoss = tuple[torch.Tensor, dict[str, float], dict[str, float]]
"""(total loss, unweighted parts by name, weights by name)."""


class Stage(ABC):
    """One stage of a recipe; ``config`` is the whole recipe, :attr:`settings` its section."""

    name: ClassVar[str]

    def __init__(self, config: Config):
        self.config = config

    @property
    @abstractmethod
    def settings(self) -> StageConfig:
        """This stage's section of ``train`` (epochs, batch size, learning rate, ...)."""

    def validate(self) -> None:
        """Check the stage's options before any step runs; a bad one is a ``ValueError``."""
        return None

    def active_tasks(self, sampler: LossDrivenTaskSampler | None) -> list[str]:
        """The tasks of this step."""
        return []

    def weighting(self) -> nn.Module | None:
        """The module that weighs the tasks' losses (trained with the model), if any."""
        return None

    def sampler(self) -> LossDrivenTaskSampler | None:
        """What picks the tasks of each step, if not all of them run every step."""
        return None

    def frozen_towers(self) -> set[str]:
        """Encoder outputs read fixed, computed once at the stage's start (``image``,
        ``audio``, ``spoken``); none: encode every step."""
        return set()

    def set_trainable(self, model: TriModalModel) -> None:
        """Which parameters train in this stage (by module); all of them by default."""
        model.requires_grad_(True)

    def prepare(
        self, runner: TrainStep, model: TriModalModel, tensors: SceneTensors, rows: torch.Tensor
    ) -> None:
        """Anything computed once at the stage's start over the training ``rows``."""
        return None

    @abstractmethod
    def loss(self, runner: TrainStep, step: StepInputs, active: list[str]) -> StageLoss:
        """The step's loss over the ``active`` tasks."""


def freeze_all_but(model: TriModalModel, *trainable: nn.Module | None) -> None:
    """Only the given modules train."""
    model.requires_grad_(False)
    for module in trainable:
        if module is not None:
            module.requires_grad_(True)


def train_all_but(model: TriModalModel, *frozen: nn.Module | None) -> None:
    """Everything trains except the given modules."""
    model.requires_grad_(True)
    for module in frozen:
        if module is not None:
            module.requires_grad_(False)
