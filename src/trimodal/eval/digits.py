"""The digits benchmark: zero-shot and linear-probe accuracy against an RBF SVM on raw pixels.

On the ``test`` half of a digits directory (see :mod:`trimodal.world.digits`):

- **zero-shot (prompts)**: each class is the ensembled text embedding of its prompts ("seven",
  "the digit seven", "a handwritten seven", ...); an image gets the most similar class. No
  classifier is trained on image labels.
- **spoken zero-shot**: the same, from the spoken caption's audio embedding.
- **linear probe**: logistic regression on frozen image embeddings of the ``train`` half.
- **SVM baseline**: ``sklearn.svm.SVC`` (RBF kernel, ``C=1``, ``gamma="scale"``, scikit-learn's
  defaults) on the raw 8x8 pixels (ink 0-16, 64 features) of the same ``train`` half.
- **pixel logistic regression**: the linear probe's classifier on raw pixels, for scale.

Every figure is the accuracy on the same test rows.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from trimodal.data.manifest import Sample, load_manifest
from trimodal.eval.zero_shot import class_embeddings, zero_shot_predict
from trimodal.world.digits import CAPTION_TEMPLATES, class_prompts, load_source

EMBED_BATCH = 256
SVM_SETTINGS: dict[str, Any] = {"kernel": "rbf", "C": 1.0, "gamma": "scale"}
PROBE_SETTINGS: dict[str, Any] = {"C": 1.0, "max_iter": 5000, "standardize": True}

METHOD_ROWS: tuple[tuple[str, str], ...] = (
    ("zero_shot_accuracy", "trimodal zero-shot (text prompts, image)"),
    ("spoken_zero_shot_accuracy", "trimodal zero-shot (spoken caption -> prompts)"),
    ("linear_probe_accuracy", "trimodal linear probe (frozen image embeddings)"),
    ("svm_accuracy", "scikit-learn SVC, RBF, raw 8x8 pixels"),
    ("pixel_logistic_accuracy", "logistic regression, raw 8x8 pixels"),
    ("chance_accuracy", "chance (most frequent test class)"),
)
"""Keys of :func:`evaluate_digits`'s accuracies and their row names in :func:`format_table`."""


class Embedder(Protocol):
    """What the benchmark needs from a model (``trimodal.inference.Model`` fits)."""

    def embed_images(self, paths: Sequence[str | os.PathLike[str]]) -> torch.Tensor:
        """``[N, E]`` image embeddings."""
        ...

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """``[N, E]`` text embeddings."""
        ...

    def embed_audio(self, paths: Sequence[str | os.PathLike[str]]) -> torch.Tensor:
        """``[N, E]`` audio embeddings."""
        ...


def accuracy(predicted: Sequence[int] | np.ndarray | torch.Tensor, labels: Any) -> float:
    """Fraction of ``predicted`` ``[N]`` equal to ``labels`` ``[N]``."""
    predicted_array = np.asarray(predicted).reshape(-1)
    label_array = np.asarray(labels).reshape(-1)
    if predicted_array.shape != label_array.shape:
        raise ValueError(
            f"accuracy: {predicted_array.shape[0]} predictions for {label_array.shape[0]} labels"
        )
    if predicted_array.size == 0:
        raise ValueError("accuracy: no samples to score")
    return float(np.mean(predicted_array == label_array))


def zero_shot_accuracy(
    embeddings: torch.Tensor, classes: torch.Tensor, labels: Sequence[int] | np.ndarray
) -> float:
    """Accuracy of nearest-class prediction.

    Args:
        embeddings: ``[N, E]`` query embeddings (images or audio; normalized or not).
        classes: ``[C, E]`` normalized class embeddings; row ``c`` is class ``c``.
        labels: ``[N]`` true classes in ``[0, C)``.
    """
    if embeddings.ndim != 2 or classes.ndim != 2 or embeddings.shape[1] != classes.shape[1]:
        raise ValueError(
            f"zero_shot_accuracy: embeddings {tuple(embeddings.shape)} and classes "
            f"{tuple(classes.shape)} must be [N, E] and [C, E] with the same E"
        )
    return accuracy(zero_shot_predict(embeddings, classes).numpy(), labels)


def linear_probe_accuracy(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    c: float = PROBE_SETTINGS["C"],
    standardize: bool = PROBE_SETTINGS["standardize"],
) -> float:
    """Test accuracy of a multinomial logistic regression fitted on the train features.

    Args:
        train_features: ``[N_train, F]``; test_features: ``[N_test, F]``.
        train_labels: ``[N_train]``; test_labels: ``[N_test]``.
        c: inverse L2 regularization strength.
        standardize: scale each feature to zero mean, unit variance (fitted on train) first;
            embeddings are unit vectors whose components are small, so unscaled they would be
            regularized much harder than pixels.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classifier = LogisticRegression(C=c, max_iter=PROBE_SETTINGS["max_iter"])
    model = make_pipeline(StandardScaler(), classifier) if standardize else classifier
    model.fit(train_features, train_labels)
    return accuracy(model.predict(test_features), test_labels)


def svm_accuracy(
    train_pixels: np.ndarray,
    train_labels: np.ndarray,
    test_pixels: np.ndarray,
    test_labels: np.ndarray,
) -> float:
    """Test accuracy of ``SVC(**SVM_SETTINGS)`` fitted on raw pixels ``[N, 64]`` (ink 0-16)."""
    from sklearn.svm import SVC

    model = SVC(**SVM_SETTINGS)
    model.fit(train_pixels, train_labels)
    return accuracy(model.predict(test_pixels), test_labels)


def chance_accuracy(test_labels: Sequence[int] | np.ndarray) -> float:
    """Accuracy of always answering the most frequent test class."""
    counts = np.bincount(np.asarray(test_labels, dtype=np.int64))
    return float(counts.max() / counts.sum())


def _label(sample: Sample) -> int:
    if not isinstance(sample.label, int) or not 0 <= sample.label <= 9:
        raise ValueError(
            f"line {sample.line}: field 'label': expected a digit 0-9, got {sample.label!r}; "
            "is this a digits manifest (trimodal digits)?"
        )
    return sample.label


def _source_index(sample: Sample) -> int:
    index = sample.meta.get("source_index")
    if not isinstance(index, int):
        raise ValueError(
            f"line {sample.line}: field 'meta.source_index': missing; the SVM baseline reads "
            "raw pixels from load_digits() by this index (build with trimodal digits)"
        )
    return index


def _batched(embed: Any, items: Sequence[Any]) -> torch.Tensor:
    return torch.cat([embed(items[i : i + EMBED_BATCH]) for i in range(0, len(items), EMBED_BATCH)])


def _split(samples: Sequence[Sample], name: str, manifest: Path) -> list[Sample]:
    chosen = [s for s in samples if s.split == name]
    if not chosen:
        raise ValueError(f"{manifest} has no '{name}' samples (expected a train/test digits split)")
    missing = [s.id for s in chosen if s.image is None]
    if missing:
        raise ValueError(
            f"{manifest}: {len(missing)} {name} samples have no image, e.g. {missing[0]}"
        )
    return chosen


def evaluate_digits(
    model: Embedder, world_dir: str | os.PathLike[str], templates: Sequence[str] = CAPTION_TEMPLATES
) -> dict[str, Any]:
    """Every accuracy of the digits benchmark on the ``test`` half of ``world_dir``.

    Args:
        model: anything with ``embed_images``, ``embed_texts`` and ``embed_audio``.
        world_dir: a directory written by :func:`trimodal.world.digits.build_digits` (or its
            ``manifest.jsonl``).
        templates: prompt templates (``{name}`` is the digit's name), ensembled per class.

    Returns:
        ``{"zero_shot_accuracy", "spoken_zero_shot_accuracy", "linear_probe_accuracy",
        "svm_accuracy", "pixel_logistic_accuracy", "chance_accuracy"}`` (floats in [0, 1]),
        ``"train_samples"``, ``"test_samples"``, ``"spoken_test_samples"`` (ints), and the
        settings: ``"prompt_templates"``, ``"svm"``, ``"linear_probe"``.
    """
    path = Path(world_dir)
    manifest_path = path / "manifest.jsonl" if path.is_dir() else path
    manifest = load_manifest(manifest_path, check_files="exists")
    train = _split(manifest.samples, "train", manifest_path)
    test = _split(manifest.samples, "test", manifest_path)
    train_labels = np.array([_label(s) for s in train])
    test_labels = np.array([_label(s) for s in test])
    with torch.no_grad():
        classes = class_embeddings(lambda texts: model.embed_texts(texts), class_prompts(templates))
        train_images = _batched(model.embed_images, [s.image for s in train])  # (N_train, E)
        test_images = _batched(model.embed_images, [s.image for s in test])  # (N_test, E)
        spoken = [s for s in test if s.audio is not None]
        spoken_embeddings = _batched(model.embed_audio, [s.audio for s in spoken])
    source_pixels = load_source()[0].reshape(-1, 64).astype(np.float64)  # (1797, 64)
    train_pixels = source_pixels[[_source_index(s) for s in train]]
    test_pixels = source_pixels[[_source_index(s) for s in test]]
    return {
        "zero_shot_accuracy": zero_shot_accuracy(test_images, classes, test_labels),
        "spoken_zero_shot_accuracy": (
            zero_shot_accuracy(spoken_embeddings, classes, [_label(s) for s in spoken])
            if spoken
            else float("nan")
        ),
        "linear_probe_accuracy": linear_probe_accuracy(
            train_images.numpy(), train_labels, test_images.numpy(), test_labels
        ),
        "svm_accuracy": svm_accuracy(train_pixels, train_labels, test_pixels, test_labels),
        "pixel_logistic_accuracy": linear_probe_accuracy(
            train_pixels, train_labels, test_pixels, test_labels
        ),
        "chance_accuracy": chance_accuracy(test_labels),
        "train_samples": len(train),
        "test_samples": len(test),
        "spoken_test_samples": len(spoken),
        "prompt_templates": list(templates),
        "svm": dict(SVM_SETTINGS),
        "linear_probe": dict(PROBE_SETTINGS),
    }


def format_table(metrics: dict[str, Any]) -> str:
    """The accuracies of :func:`evaluate_digits` side by side: ``method | test accuracy``."""
    rows = [(name, metrics[key]) for key, name in METHOD_ROWS if key in metrics]
    width = max(len("method"), *(len(name) for name, _ in rows))
    title = f"digits, test half ({metrics.get('test_samples', '?')} images)"
    lines = [title, f"{'method':<{width}} | test accuracy", f"{'-' * width}-+--------------"]
    lines += [f"{name:<{width}} | {value:.4f}" for name, value in rows]
    return "\n".join(lines)
