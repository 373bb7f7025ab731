"""``trimodal classify`` end to end: example -> train -> eval -> predict, figures checked by hand."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from trimodal.cli.main import main


def test_eval_report_and_its_accuracy_recomputed_from_predictions(
    scans_run: Path, scans_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report"
    assert (
        main(
            [
                "classify",
                "eval",
                "--checkpoint",
                str(scans_run),
                "--csv",
                str(scans_csv),
                "--split",
                "test",
                "--out",
                str(report),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    for name in ("report.md", "metrics.json", "reliability.png", "explanations.png"):
        assert (report / name).is_file()
    assert "not a medical device" in (report / "report.md").read_text()
    scores = json.loads((report / "metrics.json").read_text())
    trained = json.loads((scans_run / "metrics.json").read_text())["test"]
    assert scores["fused"]["accuracy"] == pytest.approx(trained["fused"]["accuracy"])

    # The test rows again, by hand: predictions from `predict --csv` against the CSV's labels.
    predictions = tmp_path / "predictions.csv"
    assert (
        main(
            [
                "classify",
                "predict",
                "--checkpoint",
                str(scans_run),
                "--csv",
                str(scans_csv),
                "--out",
                str(predictions),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    with open(scans_csv, encoding="utf-8", newline="") as stream:
        truth = {i + 2: row["finding"] for i, row in enumerate(csv.DictReader(stream))}
    with open(predictions, encoding="utf-8", newline="") as stream:
        predicted = {int(row["line"]): row["prediction"] for row in csv.DictReader(stream)}
    assert len(predicted) == len(truth)
    from trimodal.classify.run import ClassifierRun
    from trimodal.classify.table import read_table, split_rows

    run = ClassifierRun.load(scans_run, __import__("torch").device("cpu"))
    table = read_table(scans_csv, run.spec, run.image_size)
    test_lines = [table.rows[i].line for i in split_rows(table, 0)["test"]]
    accuracy = np.mean([predicted[line] == truth[line] for line in test_lines])
    assert scores["fused"]["accuracy"] == pytest.approx(float(accuracy))


def test_predict_one_row(
    scans_run: Path, scans_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = scans_csv.parent / "images" / "scan_00000.png"
    assert (
        main(
            [
                "classify",
                "predict",
                "--checkpoint",
                str(scans_run),
                "--image",
                str(image),
                "--text",
                "No prior imaging is available.",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    answer = json.loads(capsys.readouterr().out)
    assert len(answer["labels"]) == 1
    assert sum(answer["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
    assert (
        main(
            [
                "classify",
                "predict",
                "--checkpoint",
                str(scans_run),
                "--image",
                str(scans_csv.parent / "nope.png"),
                "--text",
                "t",
            ]
        )
        == 2
    )
    assert "column '--image': image file not found" in capsys.readouterr().err


def test_user_errors_are_one_line(
    scans_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = ["--image-col", "path", "--text-col", "nope", "--label-col", "finding"]
    assert (
        main(["classify", "train", "--csv", str(scans_csv), *bad, "--out", str(tmp_path / "r")])
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no column 'nope' in the header" in err
    assert main(["classify", "eval", "--checkpoint", str(tmp_path), "--csv", str(scans_csv)]) == 2
    assert "not a classification run" in capsys.readouterr().err


def test_multi_label_and_digits_tables_train(tmp_path: Path, scans_csv: Path) -> None:
    multi = [
        "--image-col",
        "path",
        "--text-col",
        "report",
        "--label-col",
        "findings",
        "--label-sep",
        ";",
    ]
    tiny = ["--epochs", "2", "--image-size", "16", "--dim", "32", "--quiet", "--no-baselines"]
    out = tmp_path / "multi"
    assert (
        main(["classify", "train", "--csv", str(scans_csv), *multi, "--out", str(out), *tiny]) == 0
    )
    record = json.loads((out / "classify.json").read_text())
    assert record["multi_label"] and record["classes"] == ["lesion", "prior"]
    assert (
        main(
            [
                "classify",
                "example",
                "--kind",
                "digits",
                "--limit",
                "120",
                "--out",
                str(tmp_path / "digits"),
            ]
        )
        == 0
    )
    digits = ["--image-col", "path", "--text-col", "note", "--label-col", "digit"]
    assert (
        main(
            [
                "classify",
                "train",
                "--csv",
                str(tmp_path / "digits" / "data.csv"),
                *digits,
                "--out",
                str(tmp_path / "digits_run"),
                *tiny,
            ]
        )
        == 0
    )
