"""The question prior against a naive computation over the manifest's question strings."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import pytest

from trimodal import Model
from trimodal.data.manifest import load_manifest
from trimodal.eval.baselines import QuestionPrior
from trimodal.eval.harness import load_inputs
from trimodal.world.generate import WorldSummary


def test_question_prior_matches_naive_majority(
    tiny_run: Path, tiny_world: tuple[Path, WorldSummary]
) -> None:
    model = Model.from_pretrained(tiny_run)
    inputs = load_inputs(model, tiny_world[0] / "manifest.jsonl")
    prior = QuestionPrior(inputs.tensors, inputs.tensors.rows_in("train"))
    samples = load_manifest(tiny_world[0] / "manifest.jsonl", check_files="none").samples
    by_question: dict[str, Counter[str]] = defaultdict(Counter)
    by_family: dict[str, Counter[str]] = defaultdict(Counter)
    overall: Counter[str] = Counter()
    answers = model.network.vocabulary.answers
    first_seen = {a: i for i, a in enumerate(answers)}
    for sample in samples:
        if sample.split != "train":
            continue
        for q in sample.questions:
            by_question[q.question][q.answer] += 1
            by_family[q.family or ""][q.answer] += 1
            overall[q.answer] += 1

    def majority(counter: Counter[str]) -> str:
        # Counter.most_common keeps insertion order among ties; QuestionPrior counts answer
        # indices in the same scene order, so ties break the same way.
        return counter.most_common(1)[0][0]

    hits = total = 0
    for sample in samples:
        if sample.split != "test":
            continue
        for q in sample.questions:
            if q.question in by_question:
                guess = majority(by_question[q.question])
            else:
                guess = majority(by_family.get(q.family or "", overall))
            hits += guess == q.answer
            total += 1
    assert first_seen  # the vocabulary is not empty
    result = prior.accuracy(inputs.tensors, inputs.tensors.rows_in("test"), answers)
    assert result["typed"]["count"] == total
    assert result["typed"]["accuracy"] == pytest.approx(hits / total)


def test_prior_needs_answered_training_questions(
    tiny_run: Path, tiny_world: tuple[Path, WorldSummary]
) -> None:
    inputs = load_inputs(Model.from_pretrained(tiny_run), tiny_world[0] / "manifest.jsonl")
    import torch

    with pytest.raises(ValueError, match="no answered questions"):
        QuestionPrior(inputs.tensors, torch.tensor([], dtype=torch.long))
