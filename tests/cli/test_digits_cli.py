"""``trimodal digits`` end to end on a few digits with the tiny recipe: table, JSON, reuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trimodal.cli.main import main

OVERRIDES = ["--set", "train.multitask.epochs=0", "--set", "train.threads=1"]


def digits(out: Path, *extra: str, limit: int = 20) -> int:
    """``trimodal digits`` with the tiny recipe on the first ``limit`` digits."""
    tiny = ["--config", "configs/tiny.yaml", "--limit", str(limit), "--workers", "2", "--quiet"]
    return main(["digits", "--out", str(out), *tiny, *OVERRIDES, *extra])


def test_digits_verb_prints_the_table_writes_metrics_and_reuses_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert digits(tmp_path) == 0
    printed = capsys.readouterr().out
    assert "method" in printed and "scikit-learn SVC, RBF, raw 8x8 pixels" in printed
    metrics = json.loads((tmp_path / "digits_metrics.json").read_text())
    assert metrics["run"] == "trained" and metrics["test_samples"] == 10
    for key in ("zero_shot_accuracy", "linear_probe_accuracy", "svm_accuracy"):
        assert 0.0 <= metrics[key] <= 1.0
    assert digits(tmp_path) == 0
    assert "(reused" in capsys.readouterr().out
    again = json.loads((tmp_path / "digits_metrics.json").read_text())
    assert again["run"] == "reused" and again["svm_accuracy"] == metrics["svm_accuracy"]


def test_digits_verb_refuses_a_run_trained_with_another_seed_or_world(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert digits(tmp_path) == 0
    assert digits(tmp_path, "--seed", "1") == 2
    assert "another recipe, seed or digits world" in capsys.readouterr().err
    assert digits(tmp_path, limit=16) == 2  # a rebuilt world under the same recipe
    assert "another recipe, seed or digits world" in capsys.readouterr().err
