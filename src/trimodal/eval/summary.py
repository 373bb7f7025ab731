"""A compact plain-text results table of harness metrics (one column per split)."""

from __future__ import annotations

import math
from typing import Any


def _get(result: dict[str, Any], *path: str) -> float:
    value: Any = result
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return float("nan")
        value = value[key]
    return float(value)


def summary_rows(metrics: dict[str, Any]) -> list[tuple[str, list[float]]]:
    """``(label, [value per split])`` rows for the headline metrics."""
    splits = list(metrics.get("splits", {}).values())
    rows: list[tuple[str, tuple[str, ...]]] = [
        ("VQA typed", ("vqa", "typed", "accuracy")),
        ("VQA spoken", ("vqa", "spoken", "accuracy")),
        ("VQA typed, question prior", ("question_prior", "typed", "accuracy")),
        ("VQA typed, image removed", ("missing_modality", "image_removed", "typed", "accuracy")),
        (
            "VQA typed, question removed",
            ("missing_modality", "question_removed", "typed", "accuracy"),
        ),
    ]
    for direction in ("text->image", "image->text", "text->audio", "audio->text"):
        rows.append((f"R@1 {direction}", ("retrieval", direction, "R@1")))
    for direction in ("text->image", "image->text"):
        for k in (1, 5, 10):
            path = ("retrieval_image_caption", direction, f"R@{k}")
            rows.append((f"R@{k} {direction}, standard", path))
    rows.append(("RSUM, standard (0-600)", ("retrieval_image_caption", "rsum")))
    rows += [
        ("R@1 image->audio (emergent)", ("retrieval", "image->audio", "R@1")),
        ("R@1 audio->image (emergent)", ("retrieval", "audio->image", "R@1")),
        ("zero-shot color (1 object)", ("zero_shot", "color", "single_object_accuracy")),
        ("zero-shot shape (1 object)", ("zero_shot", "shape", "single_object_accuracy")),
        ("zero-shot color+shape (1 obj)", ("zero_shot", "color_shape", "single_object_accuracy")),
        ("object head color (per object)", ("object_head", "color")),
        ("object head shape (per object)", ("object_head", "shape")),
        ("object head size (per object)", ("object_head", "size")),
        ("caption BLEU-4", ("generation", "caption", "bleu4")),
        ("caption CIDEr-D", ("generation", "caption", "cider_d")),
        ("caption attribute accuracy", ("generation", "caption", "attributes", "overall")),
        ("transcription WER", ("generation", "transcribe", "wer")),
        ("generative VQA typed (exact)", ("generation", "vqa_typed", "exact_match")),
        ("generative VQA spoken (exact)", ("generation", "vqa_spoken", "exact_match")),
    ]
    out = [(label, [_get(split, *path) for split in splits]) for label, path in rows]
    return [(label, values) for label, values in out if not all(math.isnan(v) for v in values)]


def summary_table(metrics: dict[str, Any]) -> str:
    """The headline metrics, splits side by side, plus gallery sizes and the worst robustness."""
    names = list(metrics.get("splits", {}))
    sizes = [metrics["splits"][n]["retrieval"]["gallery_size"] for n in names]
    width = 31
    header = f"{'metric':<{width}}" + "".join(f"{n:>12}" for n in names)
    lines = [header, f"{'gallery (scenes)':<{width}}" + "".join(f"{s:>12}" for s in sizes)]
    for label, values in summary_rows(metrics):
        cells = "".join(f"{'-' if math.isnan(v) else f'{v:.3f}':>12}" for v in values)
        lines.append(f"{label:<{width}}{cells}")
    robustness = metrics.get("robustness")
    if robustness:
        lines.append(f"robustness ({robustness['scenes']} scenes), strongest level vs clean:")
        for name, curve in robustness["curves"].items():
            for metric in [k for k in curve if k not in ("x_label", "levels")][:1]:
                clean = robustness["clean"].get(metric, float("nan"))
                lines.append(
                    f"  {name:<20} {metric:<18} {clean:.3f} -> {curve[metric][-1]:.3f}"
                    f" at {curve['levels'][-1]:g}"
                )
    return "\n".join(lines)
