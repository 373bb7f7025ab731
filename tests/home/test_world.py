"""The room world on disk: the same settings give the same bytes, whatever the worker count."""

from __future__ import annotations

from pathlib import Path

from trimodal.home.commands import KINDS
from trimodal.home.world import HomeWorldConfig, build_home_world, load_home_world


def test_same_settings_same_bytes(tmp_path: Path) -> None:
    config = HomeWorldConfig(train=12, val=6, test=12, seed=4)
    one = build_home_world(tmp_path / "one", config, workers=1).parent
    two = build_home_world(tmp_path / "two", config, workers=2).parent
    assert (one / "home.jsonl").read_bytes() == (two / "home.jsonl").read_bytes()
    rows = load_home_world(one)
    for row in rows[:5] + rows[-3:]:
        for field in ("image", "audio"):
            assert (one / row[field]).read_bytes() == (two / row[field]).read_bytes()
    test_kinds = [row["kind"] for row in rows if row["split"] == "test"]
    assert sorted(test_kinds) == sorted(KINDS * 2)  # dealt evenly
