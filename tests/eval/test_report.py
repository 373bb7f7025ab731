"""Report files and tables from hand-written metrics."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from trimodal.eval.report import fmt, markdown_report, table, write_report
from trimodal.eval.summary import summary_rows, summary_table


def metrics() -> dict:
    direction = {"R@1": 0.5, "R@5": 0.75, "R@10": 1.0, "median_rank": 2.0}
    split = {
        "scenes": 4,
        "retrieval": {"gallery_size": 4, "text->image": direction},
        "vqa": {
            "typed": {"accuracy": 0.625, "count": 8},
            "typed/color": {"accuracy": 1.0, "count": 4},
            "typed/shape": {"accuracy": 0.25, "count": 4},
            "spoken": {"accuracy": 0.5, "count": 4},
        },
        "question_prior": {"typed": {"accuracy": 0.125, "count": 8}},
        "missing_modality": {"image_removed": {"typed": {"accuracy": 0.25, "drop": 0.375}}},
    }
    return {
        "manifest": "m.jsonl",
        "splits": {"test": split},
        "baselines": {"q_only": {"splits": {"test": {"typed": {"accuracy": 0.375, "count": 8}}}}},
        "robustness": {
            "scenes": 4,
            "clean": {"vqa_typed": 0.625},
            "curves": {
                "image_noise": {"x_label": "sigma", "levels": [0.1, 0.4], "vqa_typed": [0.5, 0.25]}
            },
        },
        "examples": [
            {
                "id": "s1",
                "kind": "typed",
                "question": "what color is it?",
                "answer": "red",
                "predicted": "red",
                "correct": True,
                "pixels": np.zeros((8, 8, 3), dtype=np.uint8),
                "heat": torch.zeros(8, 8),
            }
        ],
    }


def test_table_and_cells() -> None:
    assert fmt(0.12345) == "0.123" and fmt(float("nan")) == "-" and fmt(3) == "3"
    assert table(["a", "b"], [[1, 0.5]]) == "| a | b |\n|---|---|\n| 1 | 0.500 |"


def test_markdown_report_contains_the_numbers() -> None:
    text = markdown_report({k: v for k, v in metrics().items() if k != "examples"}, "T")
    assert "| text->image | 0.500 | 0.750 | 1.000 | 2.000 |" in text
    assert "| family | typed | spoken | question prior | q_only |" in text
    assert "| all | 0.625 | 0.500 | 0.125 | 0.375 |" in text
    assert "| shape | 0.250 | - | - | - |" in text
    assert "| image removed | typed | 0.250 | 0.375 |" in text
    assert "| clean | 0.625 |" in text and "| 0.4 | 0.250 |" in text


def test_write_report_files(tmp_path: Path) -> None:
    report = write_report(metrics(), tmp_path / "out")
    written = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert written["examples"][0] == {
        "id": "s1",
        "kind": "typed",
        "question": "what color is it?",
        "answer": "red",
        "predicted": "red",
        "correct": True,
    }
    assert report.read_text().startswith("# trimodal evaluation")
    for name in ("robustness.png", "examples.png"):
        assert (tmp_path / "out" / name).read_bytes()[:4] == b"\x89PNG"
    assert not list((tmp_path / "out").glob(".*tmp"))


def test_summary_rows_and_table() -> None:
    rows = dict(summary_rows(metrics()))
    assert rows["VQA typed"] == [0.625]
    assert rows["VQA typed, image removed"] == [0.25]
    assert "R@1 audio->text" not in rows  # absent everywhere: dropped, not printed as NaN
    assert all(not math.isnan(v[0]) for v in rows.values())
    text = summary_table(metrics())
    assert "gallery (scenes)" in text and "image_noise" in text and "0.625 -> 0.250 at 0.4" in text


def test_summary_rows_include_generation_metrics() -> None:
    results = metrics()
    results["splits"]["test"]["generation"] = {
        "caption": {"bleu4": 0.25, "cider_d": 2.5, "attributes": {"overall": 0.5}},
        "transcribe": {"wer": 0.375},
        "vqa_typed": {"exact_match": 0.75},
    }
    rows = dict(summary_rows(results))
    assert rows["caption BLEU-4"] == [0.25] and rows["caption CIDEr-D"] == [2.5]
    assert rows["caption attribute accuracy"] == [0.5] and rows["transcription WER"] == [0.375]
    assert rows["generative VQA typed (exact)"] == [0.75]
    assert "generative VQA spoken (exact)" not in rows


def coco_vqa_metrics() -> dict:
    """A COCO / VQA style split: no per-row retrieval direction, the standard protocol, and
    VQA scored with the official accuracy."""
    direction = {"R@1": 0.25, "R@5": 0.5, "R@10": 0.75, "median_rank": 6.5}
    vqa = {"accuracy": 0.6, "exact_match": 0.5, "count": 4, "metric": "vqa"}
    vqa |= {"vqa_accuracy": 0.6, "vqa_count": 4}
    split = {
        "scenes": 4,
        "retrieval": {"gallery_size": 4},
        "retrieval_image_caption": {
            "protocol": "image-caption",
            "images": 4,
            "captions": 20,
            "text->image": direction,
            "image->text": direction,
            "rsum": 300.0,
            "mean_recall": 0.5,
        },
        "vqa": {"typed": vqa, "typed/number": vqa},
    }
    return {"manifest": "coco.jsonl", "splits": {"test": split}}


def test_report_names_the_protocol_and_the_vqa_metric() -> None:
    report = markdown_report(coco_vqa_metrics(), "T")
    assert "### Retrieval\n" not in report  # no per-row direction: no empty table
    assert "### Retrieval, image-caption protocol" in report
    assert "4 unique images and their 20 captions" in report
    assert "| text->image | 0.250 | 0.500 | 0.750 | 6.500 |" in report
    assert "RSUM 300.0 (of 600)" in report
    assert "Official VQA v2 accuracy" in report and "exact match: typed 0.500" in report
    assert "| all | 0.600 |" in report
    world = {k: v for k, v in metrics().items() if k != "examples"}
    assert "Exact match against each question's answer." in markdown_report(world, "T")


def test_summary_has_the_standard_protocol_rows() -> None:
    rows = dict(summary_rows(coco_vqa_metrics()))
    assert rows["R@1 text->image, standard"] == [0.25]
    assert rows["R@10 image->text, standard"] == [0.75]
    assert rows["RSUM, standard (0-600)"] == [300.0]
    assert "R@1 text->image, standard" not in dict(summary_rows(metrics()))
