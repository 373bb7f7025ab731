"""Training tasks as objects (:class:`~trimodal.train.tasks.base.Task`), and the check that a
recipe names only the tasks a stage accepts. Each stage lists its tasks (``Stage.tasks``)."""

from __future__ import annotations

from collections.abc import Iterable

from trimodal.train.tasks.answers import PooledAnswers, SpokenAnswers, TypedAnswers
from trimodal.train.tasks.base import Task, TaskOutput
from trimodal.train.tasks.contrastive import Contrastive
from trimodal.train.tasks.generative import (
    Caption,
    Dialogue,
    SpokenAnswer,
    SpokenCaption,
    TypedAnswer,
)
from trimodal.train.tasks.scene import Attributes, Objects
from trimodal.train.tasks.transcribe import Transcribe
from trimodal.train.tasks.video import VideoObjects


def task_table(*tasks: type[Task]) -> dict[str, type[Task]]:
    """``{name: task}`` in the given order (the order a stage sums their losses in)."""
    return {task.name: task for task in tasks}


def check_tasks(names: Iterable[str], allowed: Iterable[str], field_name: str) -> None:
    """Raise a clear error naming the config field when a task name is unknown."""
    known = list(allowed)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"{field_name}: unknown task(s) {unknown}; choose from {known}")


__all__ = [
    "Attributes",
    "Caption",
    "Contrastive",
    "Dialogue",
    "Objects",
    "PooledAnswers",
    "SpokenAnswer",
    "SpokenAnswers",
    "SpokenCaption",
    "Task",
    "TaskOutput",
    "Transcribe",
    "TypedAnswer",
    "TypedAnswers",
    "VideoObjects",
    "check_tasks",
    "task_table",
]
