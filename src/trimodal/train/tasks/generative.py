"""The decoder's tasks: next-token losses of captions, transcripts, answers and dialogues."""

from __future__ import annotations

from trimodal.losses.generative import generation_loss
from trimodal.losses.step import StepInputs
from trimodal.train.step import TrainStep
from trimodal.train.tasks.base import Task, TaskOutput


class GenerativeTask(Task):
    """The decoder's next-token loss on the task named :attr:`name`
    (:func:`~trimodal.losses.generative.generation_loss`)."""

    def output(self, runner: TrainStep, step: StepInputs) -> TaskOutput:
        return self.single(generation_loss(step, self.name))


class Caption(GenerativeTask):
    """Image -> caption."""

    name = "caption"
    reads = ("image",)


class SpokenCaption(GenerativeTask):
    """Spoken caption -> its text."""

    name = "transcribe"
    reads = ("audio",)


class TypedAnswer(GenerativeTask):
    """Image + typed question -> the answer, written."""

    name = "vqa_typed"
    reads = ("image", "question")


class SpokenAnswer(GenerativeTask):
    """Image + spoken question -> the answer, written."""

    name = "vqa_spoken"
    reads = ("image", "spoken")


class Dialogue(GenerativeTask):
    """Image -> a caption turn, then two question / answer turns."""

    name = "dialogue"
    reads = ("image", "question")
