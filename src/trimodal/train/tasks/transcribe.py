"""The transcriber's task: CTC of the spoken questions' words."""

from __future__ import annotations

from trimodal.losses.step import StepInputs
from trimodal.losses.transcribe import transcribe_loss
from trimodal.train.step import TrainStep
from trimodal.train.tasks.base import Task, TaskOutput


class Transcribe(Task):
    """CTC loss of ``model.transcriber`` on the spoken questions."""

    name = "transcribe"
    reads = ("spoken",)

    def validate(self, field_name: str) -> None:
        if self.config.model.transcriber_depth < 1:
            raise ValueError(f"{field_name} has 'transcribe' but model.transcriber_depth is 0")

    def output(self, runner: TrainStep, step: StepInputs) -> TaskOutput:
        return self.single(transcribe_loss(step))
