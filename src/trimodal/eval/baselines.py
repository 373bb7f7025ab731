"""Closed-form blind VQA baselines: answer priors estimated on the training split.

The question prior answers each question with the answer most often given to the identical
question in training (falling back to the family's, then the overall, most common answer): the
best any question-only model can do on questions it has seen, and a floor that tells whether a
model looks at the image at all. Trained blind models (``model.vqa_inputs``) are the other half.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import torch

from trimodal.data.tensors import SceneTensors
from trimodal.eval.basic import accuracy_table

QuestionKey = tuple[int, ...]


def _questions(tensors: SceneTensors, rows: torch.Tensor) -> list[tuple[QuestionKey, str, int]]:
    """(token ids, family, answer index) of every question of ``rows``."""
    out = []
    for row in rows.tolist():
        for q in range(tensors.question_ids.shape[1]):
            mask = tensors.question_mask[row, q]
            if not bool(mask.any()):
                continue
            key = tuple(tensors.question_ids[row, q][mask].tolist())
            out.append((key, tensors.families[row][q], int(tensors.answers[row, q])))
    return out


class QuestionPrior:
    """Most common training answer per question, per family, overall."""

    def __init__(self, tensors: SceneTensors, train_rows: torch.Tensor):
        by_question: dict[QuestionKey, Counter[int]] = defaultdict(Counter)
        by_family: dict[str, Counter[int]] = defaultdict(Counter)
        overall: Counter[int] = Counter()
        for key, family, answer in _questions(tensors, train_rows):
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

    def accuracy(self, tensors: SceneTensors, rows: torch.Tensor) -> dict[str, Any]:
        """Typed-question accuracy of the prior on ``rows`` (overall and per family)."""
        hits: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for key, family, answer in _questions(tensors, rows):
            correct = int(self.predict(key, family) == answer)
            for name in ("typed", f"typed/{family}"):
                hits[name][0] += correct
                hits[name][1] += 1
        return accuracy_table(hits)
