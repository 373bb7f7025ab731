"""The digits benchmark's metrics, checked against hand-computed values and direct sklearn."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from trimodal.data.manifest import load_manifest
from trimodal.eval.digits import (
    METHOD_ROWS,
    accuracy,
    chance_accuracy,
    evaluate_digits,
    format_table,
    linear_probe_accuracy,
    svm_accuracy,
    zero_shot_accuracy,
)
from trimodal.eval.zero_shot import class_embeddings
from trimodal.world.digits import DIGIT_NAMES, build_digits, load_source, stratified_halves


def test_accuracy_by_hand() -> None:
    assert accuracy([1, 2, 3, 4], [1, 2, 0, 4]) == 0.75
    assert accuracy(torch.tensor([0, 0]), np.array([1, 1])) == 0.0
    with pytest.raises(ValueError, match="3 predictions for 2 labels"):
        accuracy([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="no samples"):
        accuracy([], [])


def test_zero_shot_accuracy_by_hand() -> None:
    classes = torch.eye(3)
    embeddings = torch.tensor(
        [
            [2.0, 0.1, 0.0],  # -> 0, right
            [0.0, 1.0, 0.5],  # -> 1, right
            [0.2, 0.0, -1.0],  # -> 0, wrong (label 2)
            [0.0, 0.0, 3.0],  # -> 2, right
        ]
    )
    assert zero_shot_accuracy(embeddings, classes, [0, 1, 2, 2]) == 0.75
    with pytest.raises(ValueError, match="same E"):
        zero_shot_accuracy(embeddings, torch.eye(4), [0, 1, 2, 2])


def test_prompt_ensembles_pick_the_class_whose_mean_prompt_is_nearest() -> None:
    table = {
        "a": [1.0, 0.0],
        "b": [0.6, 0.8],  # class 0 = normalize(a + b) = normalize([1.6, 0.8])
        "c": [0.0, 1.0],  # class 1 = [0, 1]
    }
    classes = class_embeddings(
        lambda texts: torch.tensor([table[t] for t in texts]), [["a", "b"], ["c"]]
    )
    # [0.5, 1.0] is nearer to class 1 (cos 0.894) than to class 0 (cos 0.8); [1, 0.2] to class 0.
    images = torch.tensor([[0.5, 1.0], [1.0, 0.2]])
    assert zero_shot_accuracy(images, classes, [1, 0]) == 1.0
    assert zero_shot_accuracy(images, classes, [0, 0]) == 0.5


def test_chance_is_the_most_frequent_class_share() -> None:
    assert chance_accuracy([0, 0, 1, 2]) == 0.5


def _digits_halves(limit: int) -> tuple[np.ndarray, ...]:
    images, labels = load_source(limit)
    pixels = images.reshape(len(images), 64).astype(np.float64)
    splits = np.array(stratified_halves(labels, seed=0))
    train, test = splits == "train", splits == "test"
    return pixels[train], labels[train], pixels[test], labels[test]


def test_svm_baseline_equals_a_direct_sklearn_computation() -> None:
    train_x, train_y, test_x, test_y = _digits_halves(400)
    expected = SVC(kernel="rbf", C=1.0, gamma="scale").fit(train_x, train_y).score(test_x, test_y)
    assert svm_accuracy(train_x, train_y, test_x, test_y) == pytest.approx(expected, abs=0)
    assert expected > 0.9  # the well-known strength of this baseline on digits


def test_linear_probe_equals_a_direct_sklearn_computation() -> None:
    train_x, train_y, test_x, test_y = _digits_halves(300)
    direct = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
    expected = direct.fit(train_x, train_y).score(test_x, test_y)
    assert linear_probe_accuracy(train_x, train_y, test_x, test_y) == pytest.approx(expected, abs=0)
    separable = np.array([[0.0, 1.0], [0.1, 0.9], [1.0, 0.0], [0.9, 0.1]])
    assert linear_probe_accuracy(separable, np.array([0, 0, 1, 1]), separable, [0, 0, 1, 1]) == 1.0


class OracleEmbedder:
    """Embeds images and audio as the one-hot of their manifest label, texts by the digit named."""

    def __init__(self, labels: dict[str, int]):
        self.labels = labels

    def _one_hot(self, indices: list[int]) -> torch.Tensor:
        return torch.nn.functional.one_hot(torch.tensor(indices), 10).float()

    def embed_images(self, paths: Sequence[str | os.PathLike[str]]) -> torch.Tensor:
        return self._one_hot([self.labels[str(p)] for p in paths])

    def embed_audio(self, paths: Sequence[str | os.PathLike[str]]) -> torch.Tensor:
        return self._one_hot([self.labels[str(p)] for p in paths])

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        named = [next(i for i, n in enumerate(DIGIT_NAMES) if n in t.split()) for t in texts]
        return self._one_hot(named)


def test_evaluate_digits_end_to_end_with_an_oracle(tmp_path: Path) -> None:
    build_digits(tmp_path, seed=2, workers=2, limit=30)
    manifest = load_manifest(tmp_path / "manifest.jsonl")
    labels = {str(s.image): int(s.label or 0) for s in manifest.samples}
    labels |= {str(s.audio): int(s.label or 0) for s in manifest.samples}
    metrics = evaluate_digits(OracleEmbedder(labels), tmp_path)
    assert metrics["zero_shot_accuracy"] == 1.0
    assert metrics["spoken_zero_shot_accuracy"] == 1.0
    assert metrics["linear_probe_accuracy"] == 1.0
    assert (metrics["train_samples"], metrics["test_samples"]) == (15, 15)
    train = [s for s in manifest.samples if s.split == "train"]
    test = [s for s in manifest.samples if s.split == "test"]
    pixels = load_source()[0].reshape(-1, 64).astype(np.float64)
    direct = SVC(kernel="rbf", C=1.0, gamma="scale").fit(
        pixels[[s.meta["source_index"] for s in train]], [s.label for s in train]
    )
    expected = direct.score(pixels[[s.meta["source_index"] for s in test]], [s.label for s in test])
    assert metrics["svm_accuracy"] == expected
    table = format_table(metrics)
    for key, name in METHOD_ROWS:
        assert name in table and f"{metrics[key]:.4f}" in table


def test_evaluate_digits_rejects_a_row_without_a_digit_label(tmp_path: Path) -> None:
    build_digits(tmp_path, seed=0, workers=1, limit=4)
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text(manifest.read_text().replace('"label":0,', '"label":"zero",', 1))
    with pytest.raises(ValueError, match="'label': expected a digit 0-9, got 'zero'"):
        evaluate_digits(OracleEmbedder({}), tmp_path)
