"""A task is one object: its name, the encoder outputs it reads, and its loss over a step.

A stage lists the tasks it accepts (``Stage.tasks``, name -> task class, in the order their
losses are summed) and asks each active one for its :class:`TaskOutput`; nothing else names a
task. A new task is a new :class:`Task` in its own file, listed by the stages that run it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import torch

from trimodal.config import Config
from trimodal.losses.step import StepInputs

if TYPE_CHECKING:
    from trimodal.train.step import TrainStep


@dataclass
class TaskOutput:
    """A task's losses for one step.

    Attributes:
        losses: named losses, in order (most tasks give one, under their own name).
        weights: each loss's fixed weight, for stages that do not learn the weights.
        logged: extra figures to log beside the losses (the contrastive loss per pair).
    """

    losses: dict[str, torch.Tensor]
    weights: dict[str, float]
    logged: dict[str, float] = field(default_factory=dict)


class Task(ABC):
    """One training task; ``config`` is the whole recipe."""

    name: ClassVar[str]
    reads: ClassVar[tuple[str, ...]]
    """The step's encoder outputs it reads: ``image``, ``text`` (captions), ``audio`` (spoken
    captions), ``question`` (typed questions), ``spoken`` (spoken questions), or a stored
    modality's name (``video``)."""

    def __init__(self, config: Config):
        self.config = config

    def validate(self, field_name: str) -> None:
        """Check that the recipe can run this task (``field_name``: where the recipe lists
        it); a problem is a ``ValueError``."""
        return None

    @abstractmethod
    def output(self, runner: TrainStep, step: StepInputs) -> TaskOutput:
        """The task's losses over the step's rows."""

    def single(self, loss: torch.Tensor) -> TaskOutput:
        """A task's one loss under its own name, at weight 1."""
        return TaskOutput({self.name: loss}, {self.name: 1.0})
