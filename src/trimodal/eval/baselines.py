"""Closed-form blind VQA baselines: answer priors estimated on the training split.

The question prior answers each question with the answer most often given to the identical
question in training (falling back to the family's, then the overall, most common answer): the
best any question-only model can do on questions it has seen, and a floor that tells whether a
model looks at the image at all. Trained blind models (``model.vqa_inputs``) are the other half.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch

from trimodal.data.tensors import SceneTensors
from trimodal.eval.vqa import AnswerScores, VqaRules

QuestionKey = tuple[int, ...]


class _Question(NamedTuple):
    key: QuestionKey
    family: str
    answer: int
    human_answers: list[str]


def _questions(tensors: SceneTensors, rows: torch.Tensor) -> list[_Question]:
    """Token ids, family, answer index and human answers of every question of ``rows``."""
    out = []
    for row in rows.tolist():
        for q in range(tensors.question_ids.shape[1]):
            mask = tensors.question_mask[row, q]
            if not bool(mask.any()):
                continue
            key = tuple(tensors.question_ids[row, q][mask].tolist())
            family, humans = tensors.families[row][q], tensors.human_answers[row][q]
            out.append(_Question(key, family, int(tensors.answers[row, q]), humans))
    return out


class QuestionPrior:
    """Most common training answer per question, per family, overall."""

    def __init__(self, tensors: SceneTensors, train_rows: torch.Tensor):
        by_question: dict[QuestionKey, Counter[int]] = defaultdict(Counter)
        by_family: dict[str, Counter[int]] = defaultdict(Counter)
        overall: Counter[int] = Counter()
        for key, family, answer, _ in _questions(tensors, train_rows):
            if answer < 0:
                continue
            by_question[key][answer] += 1
            by_family[family][answer] += 1
            overall[answer] += 1
        if not overall:
            raise ValueError("the training split has no answered questions to estimate a prior")
        self.by_question = {k: c.most_common(1)[0][0] for k, c in by_question.items()}
        self.by_family = {k: c.most_common(1)[0][0] for k, c in by_family.items()}
        self.overall = overall.most_common(1)[0][0]

    def predict(self, key: QuestionKey, family: str) -> int:
        """The prior's answer index for one question."""
        if key in self.by_question:
            return self.by_question[key]
        return self.by_family.get(family, self.overall)

    def accuracy(
        self,
        tensors: SceneTensors,
        rows: torch.Tensor,
        answers: Sequence[str],
        rules: VqaRules = "official",
    ) -> dict[str, Any]:
        """Typed-question accuracy of the prior on ``rows`` (overall and per family).

        Args:
            answers: the answer vocabulary the indices refer to (for the official VQA
                accuracy of questions with human answers).
            rules: which release of the official VQA script scores them.
        """
        scores = AnswerScores(rules=rules)
        for question in _questions(tensors, rows):
            guess = self.predict(question.key, question.family)
            names = ("typed", f"typed/{question.family}")
            scores.add(names, guess == question.answer, answers[guess], question.human_answers)
        return scores.table()
