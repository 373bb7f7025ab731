"""Typed questions drawn from training scenes' graphs, with grounding targets.

A manifest stores a few questions per scene (four in the default world), so two-object
families (relation, compare) get about 3,000 training questions each. The scene graph of a
training scene supports many more: every valid question of :func:`candidate_questions`. A
:class:`QuestionPool` tokenizes them once and samples them per step, uniformly over the scene's
families, then over answers, then over questions, so that no family or answer dominates.

Each pooled question also carries *grounding* targets: the grid cell (column bin, row bin) of
the first two objects it names, in reading order (-100 where it names fewer). They supervise
where the question's objects are, which relation and compare answers are built from.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from trimodal.data.manifest import Manifest
from trimodal.data.tensors import row_index_table, tokenized
from trimodal.data.text_effects import drop_words, typos
from trimodal.data.tokenizer import TextTokenizer
from trimodal.world.language import Question, candidate_questions, named_objects, object_phrases
from trimodal.world.motion import motion_questions
from trimodal.world.phrasing import rephrase
from trimodal.world.scene import SceneObject
from trimodal.world.scene_graphs import manifest_scenes

IGNORE = -100
GROUNDED_OBJECTS = 2
"""How many named objects (in reading order) a question's grounding targets cover."""


@dataclass
class QuestionPool:
    """Tokenized questions for some rows of a :class:`~trimodal.data.tensors.SceneTensors`.

    Attributes:
        ids / mask: ``[P, L]`` question token ids and mask.
        answers: ``[P]`` answer index.
        grounding: ``[P, 2 * GROUNDED_OBJECTS]`` (column bin, row bin) of each named object,
            ``IGNORE`` where the question names fewer objects.
        choices: ``[N, K]`` pool indices of each row's questions (-1: padding; rows outside
            the pool have none).
        weights: ``[N, K]`` sampling weight of each choice (0 at padding).
    """

    ids: torch.Tensor
    mask: torch.Tensor
    answers: torch.Tensor
    grounding: torch.Tensor
    choices: torch.Tensor
    weights: torch.Tensor

    def sample(
        self, rows: torch.Tensor, per_row: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``per_row`` distinct questions for each of ``rows [B]`` that has any.

        Returns:
            (positions into ``rows`` ``[M]``, pool indices ``[M]``).
        """
        weights = self.weights[rows]  # (B, K)
        has = weights.sum(1) > 0
        positions = torch.nonzero(has).squeeze(1)
        if positions.numel() == 0:
            empty = torch.zeros(0, dtype=torch.long, device="cpu")
            return empty, empty
        available = int((weights[positions] > 0).sum(1).min())
        count = min(per_row, available)
        picked = torch.multinomial(weights[positions], count, generator=generator)  # (B', k)
        pool = self.choices[rows[positions]].gather(1, picked)
        return positions.repeat_interleave(count), pool.reshape(-1)


def cell_of(obj: SceneObject, bins: int) -> tuple[int, int]:
    """(column bin, row bin) of an object's centre on a ``bins x bins`` grid."""
    return min(bins - 1, int(obj.x * bins)), min(bins - 1, int(obj.y * bins))


def _balanced(
    questions: dict[str, list[Question]],
    cap: int,
    rng: np.random.Generator,
    family_weights: Mapping[str, float],
) -> list[tuple[Question, float]]:
    """At most ``cap`` questions per (family, answer), each with its sampling weight.

    Weights make a draw pick a family in proportion to ``family_weights`` (1 if absent), then
    one of its answers uniformly, then a question uniformly.
    """
    chosen = []
    total = sum(family_weights.get(family, 1.0) for family in questions)
    for family in sorted(questions):
        by_answer: dict[str, list[Question]] = defaultdict(list)
        for question in questions[family]:
            by_answer[question.answer].append(question)
        for answer in sorted(by_answer):
            group = by_answer[answer]
            if len(group) > cap:
                group = [group[i] for i in sorted(rng.choice(len(group), cap, replace=False))]
            weight = family_weights.get(family, 1.0) / (total * len(by_answer) * len(group))
            chosen += [(question, weight) for question in group]
    return chosen


def build_question_pool(
    manifest: Manifest,
    rows: Sequence[int],
    tokenizer: TextTokenizer,
    answers: Sequence[str],
    bins: int = 4,
    cap: int = 4,
    max_length: int = 48,
    seed: int = 0,
    family_weights: Mapping[str, float] | None = None,
    phrasing: str = "canonical",
    typo_rate: float = 0.0,
    typo_share: float = 0.5,
    word_dropout: float = 0.0,
) -> QuestionPool:
    """Every valid question (``cap`` per family and answer) of the scenes at ``rows``, with
    the motion questions of scenes whose graph records motions (worlds with video).

    Rows without a scene graph get no questions; answers outside ``answers`` are skipped.

    Args:
        manifest: the manifest the tensors were built from (row ``i`` is sample ``i``).
        rows: the rows to pool (the training rows).
        bins: grounding grid side.
        family_weights: relative draw weight of each question family (default 1 each).
        phrasing: ``canonical`` or ``varied`` (each pooled question said in the canonical form
            or a training form of :mod:`trimodal.world.phrasing`, drawn per question).
        typo_rate: a share ``typo_share`` of the pooled questions get character typos at a
            per-letter rate drawn in ``[0, typo_rate]`` (0: none); grounding cells come from
            the clean text.
        word_dropout: half the pooled questions (drawn apart from the typos) lose words at a
            per-word rate drawn in ``[0, word_dropout]`` (0: none).
    """
    if phrasing not in ("canonical", "varied"):
        raise ValueError(
            f"data.phrasing must be 'canonical' or 'varied' (held-out forms are never trained "
            f"on), got {phrasing!r}"
        )
    answer_index = {answer: i for i, answer in enumerate(answers)}
    texts: list[str] = []
    targets: list[tuple[int, list[int], float, int]] = []  # (answer, grounding, weight, row)
    for row, scene in manifest_scenes(manifest, rows):
        phrases = object_phrases(scene)
        rng = np.random.default_rng([seed, row])
        candidates = candidate_questions(scene)
        motions = (manifest.samples[row].scene or {}).get("motions")
        if motions:  # a scene with a clip: its motion questions too
            candidates |= motion_questions(scene, tuple(motions))
        wording = np.random.default_rng([seed, row, 5])
        for canonical, weight in _balanced(candidates, cap, rng, family_weights or {}):
            if canonical.answer not in answer_index:
                continue
            question = rephrase(canonical, phrasing, wording)
            cells = [
                value
                for index in named_objects(question.question, scene, phrases)[:GROUNDED_OBJECTS]
                for value in cell_of(scene.objects[index], bins)
            ]
            cells += [IGNORE] * (2 * GROUNDED_OBJECTS - len(cells))
            text = question.question
            if typo_rate > 0 and wording.random() < typo_share:
                text = typos(text, float(wording.uniform(0.0, typo_rate)), wording)
            if word_dropout > 0 and wording.random() < 0.5:
                text = drop_words(text, float(wording.uniform(0.0, word_dropout)), wording)
            texts.append(text)
            targets.append((answer_index[question.answer], cells, weight, row))
    ids, mask = tokenized(tokenizer, texts, max_length)
    per_row: dict[int, list[int]] = defaultdict(list)
    for index, (_, _, _, row) in enumerate(targets):
        per_row[row].append(index)
    choices = row_index_table(per_row, len(manifest.samples))
    weights = torch.zeros(choices.shape)
    for row, indices in per_row.items():
        weights[row, : len(indices)] = torch.tensor([targets[i][2] for i in indices])
    return QuestionPool(
        ids=ids,
        mask=mask,
        answers=torch.tensor([t[0] for t in targets], dtype=torch.long),
        grounding=torch.tensor([t[1] for t in targets], dtype=torch.long).reshape(
            -1, 2 * GROUNDED_OBJECTS
        ),
        choices=choices,
        weights=weights,
    )
