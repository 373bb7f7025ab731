"""Scores against naive references written here, and degenerate models."""

from __future__ import annotations

import numpy as np
import pytest

from trimodal.classify.metrics import calibration, classification_metrics


def naive_auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """P(score of a random positive > a random negative), ties half."""
    pos, neg = scores[positive == 1], scores[positive == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return float(wins / (len(pos) * len(neg)))


def naive_ece(confidence: np.ndarray, correct: np.ndarray, bins: int) -> float:
    total = 0.0
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        inside = [i for i, p in enumerate(confidence) if (low < p <= high) or (b == 0 and p == 0.0)]
        if inside:
            gap = abs(np.mean(correct[inside]) - np.mean(confidence[inside]))
            total += len(inside) / len(confidence) * gap
    return total


def test_ece_matches_a_naive_loop() -> None:
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0, 1, 500)
    confidence[:5] = [0.0, 1.0, 0.2, 0.4, 1 / 15]
    correct = (rng.uniform(0, 1, 500) < confidence**2).astype(float)
    for bins in (1, 10, 15):
        assert calibration(confidence, correct, bins).ece == pytest.approx(
            naive_ece(confidence, correct, bins), abs=1e-12
        )
    assert calibration(np.full(8, 0.75), np.array([1, 1, 1, 0] * 2)).ece == pytest.approx(0.0)


def test_multi_class_scores_against_hand_computed_values() -> None:
    probabilities = np.array(
        [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.6, 0.3, 0.1], [0.2, 0.5, 0.3]]
    )
    targets = np.array([0, 1, 2, 1, 2])
    scores = classification_metrics(probabilities, targets, ["a", "b", "c"], multi_label=False)
    assert scores["accuracy"] == pytest.approx(3 / 5)
    # Predictions a, b, c, a, b. F1: a 2/3 (tp 1, fp 1), b 1/2 (tp 1, fp 1, fn 1), c 2/3.
    assert scores["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 3)
    for c, name in enumerate("abc"):
        column = (targets == c).astype(int)
        assert scores["per_class"][name]["auroc"] == pytest.approx(
            naive_auroc(probabilities[:, c], column)
        )
        assert scores["per_class"][name]["support"] == int(column.sum())


def test_a_constant_model_scores_chance() -> None:
    rng = np.random.default_rng(1)
    targets = rng.integers(0, 4, 400)
    constant = np.tile([0.1, 0.6, 0.2, 0.1], (400, 1))
    scores = classification_metrics(constant, targets, list("abcd"), multi_label=False)
    assert scores["macro_auroc"] == pytest.approx(0.5)
    share = float(np.mean(targets == 1))
    assert scores["macro_f1"] == pytest.approx(2 * share / (1 + share) / 4)
    assert scores["macro_average_precision"] == pytest.approx(0.25, abs=0.03)


def test_a_class_absent_from_the_split_has_no_auroc() -> None:
    probabilities = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0]])
    scores = classification_metrics(probabilities, np.array([0, 1]), list("abc"), False)
    assert scores["per_class"]["c"]["auroc"] is None
    assert scores["per_class"]["c"]["average_precision"] is None
    assert scores["macro_auroc"] == pytest.approx(1.0)


def test_multi_label_exact_match_and_outcome_calibration() -> None:
    probabilities = np.array([[0.9, 0.2], [0.6, 0.7], [0.1, 0.4]])
    targets = np.array([[1, 0], [1, 0], [0, 0]])
    scores = classification_metrics(probabilities, targets, ["x", "y"], multi_label=True)
    assert scores["accuracy"] == pytest.approx(2 / 3)
    flat_p, flat_y = probabilities.reshape(-1), targets.reshape(-1).astype(float)
    assert scores["ece"] == pytest.approx(naive_ece(flat_p, flat_y, 15))
    assert scores["per_class"]["y"]["auroc"] is None  # no positive 'y'
