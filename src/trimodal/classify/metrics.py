"""Scores of a classifier's probabilities: AUROC and average precision per class, macro-F1,
accuracy, expected calibration error and a reliability plot.

AUROC and AP come from scikit-learn (one class against the rest); a class whose test rows are
all positive or all negative has no AUROC and is reported as ``None``, never as a number that
means nothing. A model that answers the same for every row scores AUROC 0.5 and a macro-F1 that
counts the classes it never predicts as 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trimodal.eval.attention import pyplot, save_figure

CALIBRATION_BINS = 15


@dataclass(frozen=True)
class Calibration:
    """Equal-width confidence bins: rows per bin, mean confidence and accuracy per bin.

    Attributes:
        ece: ``sum_b n_b / N * |accuracy_b - confidence_b|``.
        edges: ``[bins + 1]`` bin edges in [0, 1].
        counts, confidence, accuracy: ``[bins]`` (empty bins: count 0, the others 0).
    """

    ece: float
    edges: np.ndarray
    counts: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray


def calibration(
    confidence: np.ndarray, correct: np.ndarray, bins: int = CALIBRATION_BINS
) -> Calibration:
    """Bin ``confidence [N]`` (in [0, 1]) with the 0/1 outcomes ``correct [N]``.

    Bin ``b`` holds ``edges[b] < p <= edges[b+1]`` (the first also holds 0).
    """
    confidence = np.asarray(confidence, dtype=np.float64).reshape(-1)
    correct = np.asarray(correct, dtype=np.float64).reshape(-1)
    if confidence.size == 0 or confidence.shape != correct.shape:
        raise ValueError(f"calibration: {confidence.size} confidences for {correct.size} outcomes")
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    counts = np.bincount(which, minlength=bins).astype(np.int64)
    safe = np.maximum(counts, 1)
    mean_confidence = np.bincount(which, weights=confidence, minlength=bins) / safe
    mean_accuracy = np.bincount(which, weights=correct, minlength=bins) / safe
    ece = float(np.sum(counts / confidence.size * np.abs(mean_accuracy - mean_confidence)))
    return Calibration(ece, edges, counts, mean_confidence, mean_accuracy)


def confidence_and_outcome(
    probabilities: np.ndarray, targets: np.ndarray, multi_label: bool
) -> tuple[np.ndarray, np.ndarray]:
    """What calibration bins: multi-class, the top probability and whether its class is right
    (``[N]``); multi-label, every class's probability and whether it applies (``[N * C]``)."""
    if multi_label:
        return probabilities.reshape(-1), targets.reshape(-1)
    return probabilities.max(axis=1), (probabilities.argmax(axis=1) == targets).astype(np.float64)


def one_hot(targets: np.ndarray, classes: int) -> np.ndarray:
    """Indices ``[N]`` -> 0/1 ``[N, C]``."""
    encoded = np.zeros((targets.shape[0], classes))
    encoded[np.arange(targets.shape[0]), targets] = 1.0
    return encoded


def classification_metrics(
    probabilities: np.ndarray,
    targets: np.ndarray,
    classes: list[str],
    multi_label: bool,
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Every score of one model on one split.

    Args:
        probabilities: ``[N, C]`` softmax (multi-class) or per-class sigmoid (multi-label).
        targets: ``[N]`` class indices, or ``[N, C]`` 0/1 for multi-label.
        threshold: multi-label decision threshold.

    Returns:
        ``accuracy`` (multi-label: every label of the row right), ``macro_f1``, ``macro_auroc``
        and ``macro_average_precision`` (means over classes that have them), ``ece``, ``rows``
        and ``per_class``: ``{class: {auroc, average_precision, f1, support}}``.
    """
    from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

    probabilities = np.asarray(probabilities, dtype=np.float64)
    targets = np.asarray(targets)
    count = len(classes)
    truth = targets.astype(np.float64) if multi_label else one_hot(targets, count)
    if multi_label:
        predicted = (probabilities >= threshold).astype(np.float64)
        accuracy = float(np.mean(np.all(predicted == truth, axis=1)))
    else:
        predicted = one_hot(probabilities.argmax(axis=1), count)
        accuracy = float(np.mean(probabilities.argmax(axis=1) == targets))
    f1 = f1_score(truth, predicted, average=None, zero_division=0.0)
    per_class: dict[str, dict[str, Any]] = {}
    for c, name in enumerate(classes):
        column = truth[:, c]
        scorable = 0 < column.sum() < column.size
        per_class[name] = {
            "auroc": float(roc_auc_score(column, probabilities[:, c])) if scorable else None,
            "average_precision": (
                float(average_precision_score(column, probabilities[:, c])) if scorable else None
            ),
            "f1": float(f1[c]),
            "support": int(column.sum()),
        }
    confidence, outcome = confidence_and_outcome(probabilities, targets, multi_label)
    return {
        "rows": int(probabilities.shape[0]),
        "accuracy": accuracy,
        "macro_f1": float(np.mean(f1)),
        "macro_auroc": _mean_of(per_class, "auroc"),
        "macro_average_precision": _mean_of(per_class, "average_precision"),
        "ece": calibration(confidence, outcome).ece,
        "per_class": per_class,
    }


def _mean_of(per_class: dict[str, dict[str, Any]], key: str) -> float | None:
    values = [scores[key] for scores in per_class.values() if scores[key] is not None]
    return float(np.mean(values)) if values else None


def reliability_plot(curves: dict[str, Calibration], path: Path) -> Path:
    """Accuracy against confidence per bin for each named model, with the diagonal; a PNG."""
    figure = pyplot().figure(figsize=(4.2, 4.0), dpi=110)
    axis = figure.add_subplot()
    axis.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="calibrated")
    for name, curve in curves.items():
        used = curve.counts > 0
        axis.plot(
            curve.confidence[used],
            curve.accuracy[used],
            marker="o",
            markersize=3,
            label=f"{name} (ECE {curve.ece:.3f})",
        )
    axis.set_xlabel("confidence")
    axis.set_ylabel("accuracy")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.legend(fontsize=7, loc="upper left")
    save_figure(figure, path)
    return path
