"""The robustness suite: drops computed by hand, shifts that change only what they say, and a
run over the tiny checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from trimodal import Model
from trimodal.data.manifest import load_manifest
from trimodal.eval.shifts import (
    METRICS,
    SHIFTS,
    format_shift_table,
    relative_drops,
    run_shift_suite,
)


def test_relative_drops_by_hand() -> None:
    control = {"vqa_typed": 0.8, "audio->text R@1": 0.5, "vqa_spoken": 0.0}
    shifted = {"vqa_typed": 0.6, "audio->text R@1": 0.55, "vqa_spoken": 0.1}
    drops = relative_drops(control, shifted)
    assert drops["vqa_typed"] == pytest.approx(0.25)
    assert drops["audio->text R@1"] == pytest.approx(-0.1)
    assert "vqa_spoken" not in drops  # a control of 0 has no relative drop


def test_every_shift_changes_one_thing_and_targets_known_metrics() -> None:
    names = [shift.name for shift in SHIFTS]
    assert len(names) == len(set(names))
    for shift in SHIFTS:
        assert len(shift.change) == 1 and set(shift.targets) <= set(METRICS)


def test_the_suite_runs_on_a_checkpoint_and_reuses_its_worlds(
    tiny_run: Path, tmp_path: Path
) -> None:
    model = Model.from_pretrained(tiny_run)
    suite = run_shift_suite(model, tmp_path, seed=3, scenes=6, names=["phrasing", "telephone"])
    assert set(suite["shifts"]) == {"phrasing", "telephone"}
    assert set(suite["control"]) == set(METRICS)
    control = load_manifest(tmp_path / "control" / "manifest.jsonl").samples
    phrased = load_manifest(tmp_path / "phrasing" / "manifest.jsonl").samples
    assert [s.scene for s in control] == [s.scene for s in phrased]
    assert [q.answer for s in control for q in s.questions] == [
        q.answer for s in phrased for q in s.questions
    ]
    assert [s.text for s in control] != [s.text for s in phrased]
    for result in suite["shifts"].values():
        assert set(result["metrics"]) == set(METRICS)
        for metric, drop in result["drop"].items():
            expected = 1 - result["metrics"][metric] / suite["control"][metric]
            assert drop == pytest.approx(expected)
    table = format_shift_table(suite)
    assert "telephone" in table and "control" in table
    stamp = (tmp_path / "control" / "manifest.jsonl").stat().st_mtime_ns
    run_shift_suite(model, tmp_path, seed=3, scenes=6, names=["telephone"])
    assert (tmp_path / "control" / "manifest.jsonl").stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="unknown shift"):
        run_shift_suite(model, tmp_path, seed=3, scenes=6, names=["fog"])
