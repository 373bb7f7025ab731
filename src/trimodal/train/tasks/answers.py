"""Answering questions with the classifier head: typed (stored or pooled) and spoken."""

from __future__ import annotations

from trimodal.losses.step import StepInputs
from trimodal.losses.vqa import pooled_vqa_losses, spoken_vqa_loss, typed_vqa_loss
from trimodal.train.step import TrainStep
from trimodal.train.tasks.base import Task, TaskOutput


class TypedAnswers(Task):
    """Typed questions, ``train.multitask.questions_per_scene`` per scene: the stored ones, or
    the question pool's with its grounding loss folded in at ``grounding_weight``."""

    name = "vqa_typed"
    reads = ("image", "question")

    def output(self, runner: TrainStep, step: StepInputs) -> TaskOutput:
        multitask = self.config.train.multitask
        return self.single(
            typed_vqa_loss(
                step, multitask.questions_per_scene, runner.pool, multitask.grounding_weight
            )
        )


class PooledAnswers(Task):
    """Questions from the reason stage's pool, with the grounding loss as its own part at
    ``train.reason.grounding_weight``."""

    name = "vqa_typed"
    reads = ("image", "question")

    def output(self, runner: TrainStep, step: StepInputs) -> TaskOutput:
        reason = self.config.train.reason
        assert runner.reason_pool is not None
        answer, grounding = pooled_vqa_losses(step, reason.questions_per_scene, runner.reason_pool)
        if grounding is None:
            return self.single(answer)
        return TaskOutput(
            {self.name: answer, "grounding": grounding},
            {self.name: 1.0, "grounding": reason.grounding_weight},
        )


class SpokenAnswers(Task):
    """The stored spoken questions, answered from their audio tokens."""

    name = "vqa_spoken"
    reads = ("image", "spoken")

    def output(self, runner: TrainStep, step: StepInputs) -> TaskOutput:
        return self.single(spoken_vqa_loss(step))
