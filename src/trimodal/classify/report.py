"""The evaluation report of a run on a table: metrics per model, a reliability plot and
explained examples (Grad-CAM + words), as ``report.md`` with its pictures beside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trimodal.classify.explain import Explanation, explain
from trimodal.classify.metrics import (
    calibration,
    confidence_and_outcome,
    reliability_plot,
)
from trimodal.classify.run import ClassifierRun
from trimodal.classify.table import Table
from trimodal.eval.attention import draw_overlay, pyplot, save_figure
from trimodal.io import atomic_write_text

EXPLAINED_ROWS = 6
NOT_MEDICAL = (
    "This classifier is a research tool, not a medical device: its outputs are not diagnoses "
    "and must not be used for clinical decisions."
)


def evaluate_table(run: ClassifierRun, table: Table, out: Path | None) -> dict[str, Any]:
    """Score every model of ``run`` on ``table`` (rows with labels); with ``out``, also write
    ``report.md``, ``metrics.json``, ``reliability.png`` and ``explanations.png`` there.

    Returns:
        ``{variant: scores}`` as :func:`classification_metrics` gives them.
    """
    rows = run.encode(table)
    probabilities = run.all_probabilities(rows)
    metrics = run.score(probabilities, rows.targets)
    targets, multi = rows.targets.numpy(), run.labels.multi_label
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        curves = {
            variant: calibration(*confidence_and_outcome(p, targets, multi))
            for variant, p in probabilities.items()
        }
        reliability_plot(curves, out / "reliability.png")
        explained = [
            (i, explain(run, table.pixels[i], table.rows[i].text))
            for i in range(min(EXPLAINED_ROWS, len(table.rows)))
        ]
        _explanation_figure(table, explained, out / "explanations.png")
        atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
        atomic_write_text(out / "report.md", format_report(run, table, metrics, explained))
    return metrics


def _explanation_figure(table: Table, explained: list[tuple[int, Explanation]], path: Path) -> None:
    figure = pyplot().figure(figsize=(2.3 * max(1, len(explained)), 2.8), dpi=100)
    for column, (index, explanation) in enumerate(explained, start=1):
        pixels = table.pixels[index].permute(1, 2, 0).numpy()
        truth = ";".join(table.rows[index].labels) or "-"
        top = ", ".join(word for word, _ in explanation.words[:3])
        title = f"{explanation.predicted} ({explanation.probability:.2f}); truth {truth}\n{top}"
        draw_overlay(figure.add_subplot(1, len(explained), column), pixels, explanation.heat, title)
    save_figure(figure, path)


def _score(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def format_metrics_table(metrics: dict[str, dict[str, Any]]) -> str:
    """One Markdown row per model: accuracy, macro-F1, macro AUROC, macro AP, ECE."""
    lines = [
        "| model | accuracy | macro-F1 | macro AUROC | macro AP | ECE |",
        "|---|---|---|---|---|---|",
    ]
    for variant, scores in metrics.items():
        lines.append(
            f"| {variant} | {scores['accuracy']:.3f} | {scores['macro_f1']:.3f} | "
            f"{_score(scores['macro_auroc'])} | {_score(scores['macro_average_precision'])} | "
            f"{scores['ece']:.3f} |"
        )
    return "\n".join(lines)


def format_report(
    run: ClassifierRun,
    table: Table,
    metrics: dict[str, dict[str, Any]],
    explained: list[tuple[int, Explanation]],
) -> str:
    """``report.md``: the models' scores, per-class scores of the fused model, the examples."""
    lines = [
        "# trimodal classify: evaluation",
        "",
        f"Table: `{table.source}` ({len(table.rows)} rows); "
        f"{'multi-label' if run.labels.multi_label else 'multi-class'} over "
        f"{len(run.labels.classes)} classes. Probabilities are temperature-scaled on the "
        "validation rows; ECE over 15 equal-width bins.",
        "",
        f"> {NOT_MEDICAL}",
        "",
        "## Models",
        "",
        "`fused` reads image and text; `image` and `text` are the same architecture trained on "
        "one input (the baselines).",
        "",
        format_metrics_table(metrics),
        "",
        "## Per class (fused)",
        "",
        "| class | support | AUROC | AP | F1 |",
        "|---|---|---|---|---|",
    ]
    for name, scores in metrics["fused"]["per_class"].items():
        lines.append(
            f"| {name} | {scores['support']} | {_score(scores['auroc'])} | "
            f"{_score(scores['average_precision'])} | {scores['f1']:.3f} |"
        )
    lines += ["", "![reliability](reliability.png)", "", "## Explained examples", ""]
    for index, explanation in explained:
        row = table.rows[index]
        words = ", ".join(f"{w} ({v:+.3f})" for w, v in explanation.words[:5])
        lines.append(
            f"- line {row.line}: predicted **{explanation.predicted}** "
            f"(p={explanation.probability:.2f}), truth {';'.join(row.labels) or '-'}; "
            f"words that moved it most: {words}"
        )
    lines += ["", "![explanations](explanations.png)", ""]
    return "\n".join(lines)


def summary_lines(metrics: dict[str, dict[str, Any]]) -> list[str]:
    """A plain-text table of the models' scores for the terminal."""
    lines = [f"{'model':<8}{'accuracy':>10}{'macro-F1':>10}{'AUROC':>8}{'AP':>8}{'ECE':>8}"]
    for variant, scores in metrics.items():
        lines.append(
            f"{variant:<8}{scores['accuracy']:>10.3f}{scores['macro_f1']:>10.3f}"
            f"{_score(scores['macro_auroc']):>8}{_score(scores['macro_average_precision']):>8}"
            f"{scores['ece']:>8.3f}"
        )
    return lines
