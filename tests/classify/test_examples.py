"""The example tables: deterministic, and their labels follow from what image and text show."""

from __future__ import annotations

import csv
from pathlib import Path

from trimodal.classify.examples import (
    DIGIT_NAMES,
    NO_PRIOR_SENTENCES,
    PRIOR_SENTENCES,
    write_digits,
    write_scans,
)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream))


def test_scans_are_deterministic_and_their_findings_need_both_inputs(tmp_path: Path) -> None:
    first, second = write_scans(tmp_path / "a", 60, seed=2), write_scans(tmp_path / "b", 60, seed=2)
    assert first.read_bytes() == second.read_bytes()
    assert (tmp_path / "a/images/scan_00007.png").read_bytes() == (
        tmp_path / "b/images/scan_00007.png"
    ).read_bytes()
    expected = {
        ("lesion",): "new",
        ("lesion", "prior"): "stable",
        ("prior",): "resolved",
        (): "normal",
    }
    for row in _rows(first):
        findings = tuple(f for f in row["findings"].split(";") if f)
        assert row["finding"] == expected[findings]
        says_prior = any(s in row["report"] for s in PRIOR_SENTENCES)
        says_none = any(s in row["report"] for s in NO_PRIOR_SENTENCES)
        assert says_prior != says_none and says_prior == ("prior" in findings)


def test_digit_notes_name_the_true_digit(tmp_path: Path) -> None:
    rows = _rows(write_digits(tmp_path, seed=0, limit=40))
    assert len(rows) == 40
    for row in rows:
        named = [
            name for name in DIGIT_NAMES if name in row["note"].split() or f"{name}," in row["note"]
        ]
        assert row["digit"] in named and len(named) == 2
