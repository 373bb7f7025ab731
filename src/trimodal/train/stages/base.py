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
from trimodal.train.tasks import Task, TaskOutput, check_tasks

if TYPE_CHECKING:
    from trimodal.train.step import TrainStep

StageLoss = tuple[torch.Tensor, dict[str, float], dict[str, float]]
"""(total loss, unweighted parts by name, weights by name)."""


class Stage(ABC):
    """One stage of a recipe; ``config`` is the whole recipe, :attr:`settings` its section."""

    name: ClassVar[str]
    tasks: ClassVar[dict[str, type[Task]]] = {}
    """The tasks this stage accepts, in the order it sums their losses."""

    def __init__(self, config: Config):
        self.config = config
        self.task_objects = {name: task(config) for name, task in self.tasks.items()}

    def run_tasks(self, runner: TrainStep, step: StepInputs, names: list[str]) -> TaskOutput:
        """The named tasks' outputs, merged in the order of ``names``."""
        merged = TaskOutput({}, {})
        for name in names:
            output = self.task_objects[name].output(runner, step)
            merged.losses |= output.losses
            merged.weights |= output.weights
            merged.logged |= output.logged
        return merged

    def check_listed_tasks(self, names: list[str], field_name: str) -> None:
        """``names`` are tasks of this stage, and each can run with this recipe."""
        check_tasks(names, self.tasks, field_name)
        for name in names:
            self.task_objects[name].validate(field_name)

    def reads(self, names: list[str]) -> set[str]:
        """The encoder outputs the named tasks read."""
        return {output for name in names for output in self.tasks[name].reads}

    def in_table_order(self, active: list[str]) -> list[str]:
        """``active`` in the order of :attr:`tasks`."""
        return [name for name in self.tasks if name in active]

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


def weighted_sum(output: TaskOutput) -> StageLoss:
    """Each loss times its fixed weight, summed; parts are the unweighted losses (after the
    logged figures)."""
    total = torch.stack([output.weights[name] * loss for name, loss in output.losses.items()]).sum()
    parts = output.logged | {name: float(loss.detach()) for name, loss in output.losses.items()}
    return total, parts, dict(output.weights)


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
