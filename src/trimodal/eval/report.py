"""Turn harness metrics into files: metrics.json, report.md, robustness.png, examples.png.

Every file is written atomically (temp file + rename), so a crash mid-report never leaves half
a metrics.json next to an old report.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from trimodal.eval.attention import draw_overlay, pyplot, save_figure
from trimodal.io import atomic_write_text

RETRIEVAL_COLUMNS = ("R@1", "R@5", "R@10", "median_rank")


def write_report(metrics: dict[str, Any], out: Path, title: str = "trimodal evaluation") -> Path:
    """Write every output into ``out``; returns the path of report.md.

    ``metrics["examples"]`` may carry ``pixels``/``heat`` arrays: they become overlay PNGs
    (``examples/*.png`` and one ``examples.png`` grid) and are dropped from metrics.json.
    """
    out.mkdir(parents=True, exist_ok=True)
    examples = metrics.get("examples", [])
    if examples:
        _example_grid(examples, out / "examples.png")
        metrics = {**metrics, "examples": [_json_example(e) for e in examples]}
    if metrics.get("robustness"):
        robustness_plot(metrics["robustness"], out / "robustness.png")
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2, default=_number))
    report = out / "report.md"
    atomic_write_text(report, markdown_report(metrics, title))
    return report


def _number(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON-serializable: {type(value).__name__}")


def _json_example(example: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in example.items() if k not in ("pixels", "heat")}


def fmt(value: Any) -> str:
    """A table cell: floats to 3 decimals, NaN as a dash."""
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def table(header: list[str], rows: list[list[Any]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown_report(metrics: dict[str, Any], title: str) -> str:
    """The human-readable report (tables only; numbers straight from ``metrics``)."""
    parts = [f"# {title}", "", f"Manifest: `{metrics.get('manifest', '?')}`", ""]
    for split, result in metrics.get("splits", {}).items():
        parts += _split_section(split, result, metrics.get("baselines", {}))
    if metrics.get("robustness"):
        parts += _robustness_section(metrics["robustness"])
    if metrics.get("shifts"):
        parts += _shift_section(metrics["shifts"])
    if metrics.get("examples"):
        parts += ["## Examples (Grad-CAM)", "", "![examples](examples.png)", ""]
        parts.append(
            table(
                ["scene", "kind", "question", "answer", "model"],
                [
                    [e["id"], e["kind"], e["question"], e["answer"], e["predicted"]]
                    for e in metrics["examples"]
                ],
            )
        )
        parts.append("")
    if "seconds" in metrics:
        parts += [f"Evaluation took {metrics['seconds']} s.", ""]
    return "\n".join(parts)


def _image_caption_section(standard: dict[str, Any]) -> list[str]:
    """The standard protocol's table: R@1/5/10 and median rank each way, then RSUM."""
    columns = ["R@1", "R@5", "R@10", "median_rank"]
    directions = ("text->image", "image->text")
    return [
        "### Retrieval, image-caption protocol",
        "",
        f"Gallery: {standard['images']} unique images and their {standard['captions']} captions; "
        "text->image hits the caption's own image, image->text any of the image's captions; "
        "ties count against the query.",
        "",
        table(
            ["direction", *columns], [[d, *(standard[d][c] for c in columns)] for d in directions]
        ),
        "",
        f"RSUM {standard['rsum']:.1f} (of 600); mean recall {standard['mean_recall']:.4f}.",
        "",
    ]


def _split_section(split: str, result: dict[str, Any], baselines: dict[str, Any]) -> list[str]:
    lines = [f"## Split `{split}` ({result['scenes']} scenes)", ""]
    lines += _per_row_retrieval_section(result["retrieval"])
    if "retrieval_image_caption" in result:
        lines += _image_caption_section(result["retrieval_image_caption"])
    if "vqa" in result:
        lines += ["### VQA accuracy", "", *_vqa_metric_note(result["vqa"])]
        lines += [_vqa_table(split, result, baselines), ""]
    if result.get("missing_modality"):
        lines += ["### Missing modality (VQA)", ""]
        rows = [
            [removed.replace("_", " "), kind, scores["accuracy"], scores["drop"]]
            for removed, by_kind in result["missing_modality"].items()
            for kind, scores in by_kind.items()
        ]
        lines += [table(["input removed", "question", "accuracy", "drop"], rows), ""]
    if result.get("zero_shot"):
        lines += ["### Zero-shot classification by prompts", ""]
        rows = [
            [
                task,
                z["classes"],
                z["accuracy"],
                z["single_object_accuracy"],
                z["chance_single_object"],
            ]
            for task, z in result["zero_shot"].items()
        ]
        lines += [
            table(["task", "classes", "any object", "single-object scenes", "chance"], rows),
            "",
        ]
    return lines


def _per_row_retrieval_section(retrieval: dict[str, Any]) -> list[str]:
    """The per-row protocol's table; nothing when no direction could be scored."""
    directions = [k for k in retrieval if "->" in k]
    if not directions:
        return []
    rows = [[d, *(retrieval[d][c] for c in RETRIEVAL_COLUMNS)] for d in directions]
    return [
        "### Retrieval",
        "",
        f"Gallery: {retrieval['gallery_size']} items of the split; a hit is any item with the "
        "same content; ties count against the query.",
        "",
        table(["direction", *RETRIEVAL_COLUMNS], rows),
        "",
    ]


def _vqa_metric_note(vqa: dict[str, Any]) -> list[str]:
    """Which score the VQA table shows: the official VQA accuracy or exact match."""
    official = [k for k in ("typed", "spoken") if vqa.get(k, {}).get("metric") == "vqa"]
    if not official:
        return ["Exact match against each question's answer.", ""]
    exact = ", ".join(f"{k} {vqa[k]['exact_match']:.3f}" for k in official)
    return [
        "Official VQA v2 accuracy (min(#matching humans / 3, 1) over the leave-one-out subsets "
        f"of the human answers, the official script's normalization); exact match: {exact}.",
        "",
    ]


def _vqa_table(split: str, result: dict[str, Any], baselines: dict[str, Any]) -> str:
    vqa = result["vqa"]
    prior = result.get("question_prior", {})
    trained = {name: b["splits"].get(split, {}) for name, b in baselines.items() if "splits" in b}
    families = sorted({k.split("/", 1)[1] for k in vqa if "/" in k})
    header = ["family", "typed", "spoken", "question prior", *trained]
    rows = []
    for family in ["", *families]:
        suffix = f"/{family}" if family else ""
        row: list[Any] = [family or "all"]
        row += [vqa.get(f"typed{suffix}", {}).get("accuracy", float("nan"))]
        row += [vqa.get(f"spoken{suffix}", {}).get("accuracy", float("nan"))]
        row += [prior.get(f"typed{suffix}", {}).get("accuracy", float("nan"))]
        row += [t.get(f"typed{suffix}", {}).get("accuracy", float("nan")) for t in trained.values()]
        rows.append(row)
    return table(header, rows)


def _robustness_section(robustness: dict[str, Any]) -> list[str]:
    lines = [
        f"## Robustness ({robustness['scenes']} scenes of the evaluation split)",
        "",
        "![robustness](robustness.png)",
        "",
    ]
    clean = robustness["clean"]
    for name, curve in robustness["curves"].items():
        metrics = [k for k in curve if k not in ("x_label", "levels")]
        rows = [["clean", *(clean.get(m, float("nan")) for m in metrics)]]
        rows += [
            [f"{level:.4g}", *(curve[m][i] for m in metrics)]
            for i, level in enumerate(curve["levels"])
        ]
        lines += [f"### {name}: {curve['x_label']}", "", table(["level", *metrics], rows), ""]
    return lines


def robustness_plot(robustness: dict[str, Any], path: Path) -> Path:
    """One panel per corruption; each metric's curve with its clean value dashed."""
    plt = pyplot()
    curves = robustness["curves"]
    columns = 3
    rows = max(1, math.ceil(len(curves) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
    for axis, (name, curve) in zip(axes.flat, curves.items(), strict=False):
        for index, metric in enumerate(k for k in curve if k not in ("x_label", "levels")):
            color = f"C{index}"
            axis.plot(curve["levels"], curve[metric], marker="o", color=color, label=metric)
            if metric in robustness["clean"]:
                axis.axhline(robustness["clean"][metric], color=color, linestyle="--", lw=0.8)
        axis.set_title(name, fontsize=9)
        axis.set_xlabel(curve["x_label"], fontsize=8)
        axis.set_ylim(0, 1)
        if "SNR" in curve["x_label"]:
            axis.invert_xaxis()
        axis.legend(fontsize=6)
    for axis in list(axes.flat)[len(curves) :]:
        axis.set_axis_off()
    figure.tight_layout()
    save_figure(figure, path)
    return path


def _example_grid(examples: list[dict[str, Any]], path: Path) -> Path:
    plt = pyplot()
    columns = min(4, len(examples))
    rows = math.ceil(len(examples) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.9 * rows), squeeze=False)
    for axis, example in zip(axes.flat, examples, strict=False):
        mark = "ok" if example["correct"] else "WRONG"
        title = (
            f"[{example['kind']}] {example['question']}\n"
            f"model: {example['predicted']} ({mark}); truth: {example['answer']}"
        )
        draw_overlay(axis, example["pixels"], example["heat"], title)
    for axis in list(axes.flat)[len(examples) :]:
        axis.set_axis_off()
    figure.tight_layout()
    save_figure(figure, path)
    return path


def _shift_section(suite: dict[str, Any]) -> list[str]:
    """The robustness suite: each shift's metrics with its relative drop against the control."""
    from trimodal.eval.shifts import METRICS, shift_rows

    return [
        "## Robustness suite (shifts)",
        "",
        f"{suite['scenes']} test scenes of world seed {suite['seed']}, re-rendered one change at "
        "a time; each cell is the value and its relative change against the control "
        "(* the metrics the shift targets).",
        "",
        table(["shift", *METRICS], shift_rows(suite)),
        "",
    ]
