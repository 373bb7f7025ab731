"""``trimodal demo`` end to end on a tiny world and recipe, then again reusing everything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trimodal.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def test_demo_end_to_end_and_reuse(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--scenes", "48", "--seed", "3"]
    args += ["--config", str(ROOT / "configs" / "tiny.yaml"), "--robustness-scenes", "4"]
    args += ["--shift-scenes", "3"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    for expected in ("[4/4] results", "VQA typed", "example 1, typed", "example 2, spoken"):
        assert expected in printed
    assert "example 3, text->image retrieval over" in printed
    assert f"report: {out / 'report' / 'report.md'}" in printed
    assert "peak RSS" in printed
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    assert set(metrics["splits"]) == {"test", "holdout"}
    assert "robustness suite: 3 test scenes" in printed and "telephone" in printed
    assert metrics["shifts"]["scenes"] == 3 and "rotation" in metrics["shifts"]["shifts"]
    steps = json.loads((out / "run" / "checkpoint" / "trainer_state.json").read_text())
    # A second demo reuses the world and the finished run (no more steps).
    assert main(args) == 0
    assert "(resumed or reused)" in capsys.readouterr().out
    again = json.loads((out / "run" / "checkpoint" / "trainer_state.json").read_text())
    assert again == steps
    # A different recipe never silently reuses the run.
    other = ["--config", str(ROOT / "configs" / "digits.yaml")]
    assert main([*args, *other]) == 2
    assert "holds a run of a different recipe" in capsys.readouterr().err
