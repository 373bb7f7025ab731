"""Explanations: Shapley word values against exact enumeration, Grad-CAM maps."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch

from trimodal.classify.explain import _class_probabilities, explain, word_influence
from trimodal.classify.run import ClassifierRun
from trimodal.classify.table import TableSpec, read_table
from trimodal.classify.train import normalized_images


def exact_shapley(
    run: ClassifierRun, images: torch.Tensor, words: list[str], target: int
) -> list[float]:
    """Shapley values by enumerating every subset (the naive definition)."""
    n = len(words)
    subsets = [s for k in range(n + 1) for s in itertools.combinations(range(n), k)]
    texts = [" ".join(words[i] for i in s) for s in subsets]
    value = dict(
        zip(subsets, _class_probabilities(run, images, texts, target).tolist(), strict=True)
    )
    result = []
    for i in range(n):
        total = 0.0
        for s in subsets:
            if i in s:
                continue
            weight = math.factorial(len(s)) * math.factorial(n - len(s) - 1) / math.factorial(n)
            total += weight * (value[tuple(sorted((*s, i)))] - value[s])
        result.append(total)
    return result


def test_word_values_match_exact_shapley_and_add_up(scans_run: Path, scans_csv: Path) -> None:
    run = ClassifierRun.load(scans_run, torch.device("cpu"))
    table = read_table(scans_csv, run.spec, run.image_size)
    images = normalized_images(table.pixels[:1], run.device)
    words = ["No", "prior", "imaging", "available."]
    text = " ".join(words)
    sampled = dict(word_influence(run, images, text, target=0, permutations=300))
    exact = exact_shapley(run, images, words, target=0)
    for word, value in zip(words, exact, strict=True):
        assert sampled[word] == pytest.approx(value, abs=0.02)
    ends = _class_probabilities(run, images, [text, ""], 0)
    assert sum(sampled.values()) == pytest.approx(float(ends[0] - ends[1]), abs=1e-6)


def test_explanation_of_a_row(scans_run: Path, scans_csv: Path) -> None:
    run = ClassifierRun.load(scans_run, torch.device("cpu"))
    table = read_table(scans_csv, TableSpec("path", "report", "finding"), run.image_size)
    explanation = explain(run, table.pixels[3], table.rows[3].text)
    assert explanation.predicted in run.labels.classes
    assert explanation.heat.shape == (run.image_size, run.image_size)
    assert float(explanation.heat.min()) >= 0.0 and float(explanation.heat.max()) <= 1.0
    assert sorted(w for w, _ in explanation.words) == sorted(table.rows[3].text.split())
    values = [v for _, v in explanation.words]
    assert values == sorted(values, reverse=True)
