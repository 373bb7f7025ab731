"""The CSV reader: usable rows, one-line errors naming FILE:LINE and column, the split."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trimodal.classify.table import (
    TableError,
    TableSpec,
    read_table,
    split_rows,
    stratified_split,
)

SPEC = TableSpec("path", "report", "finding")


def _image(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((10, 12, 3), value, dtype=np.uint8)).save(path)


def _table(folder: Path, lines: list[str]) -> Path:
    for name, value in (("a.png", 10), ("b.png", 200)):
        _image(folder / "images" / name, value)
    csv_path = folder / "data.csv"
    csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return csv_path


def test_rows_pixels_and_labels(tmp_path: Path) -> None:
    csv_path = _table(
        tmp_path,
        ["path,report,finding", "images/a.png,dark one,x", 'images/b.png,"bright, quoted",y'],
    )
    table = read_table(csv_path, SPEC, image_size=16)
    assert [row.line for row in table.rows] == [2, 3]
    assert table.texts == ["dark one", "bright, quoted"]
    assert [row.labels for row in table.rows] == [("x",), ("y",)]
    assert table.pixels.shape == (2, 3, 16, 16) and table.pixels.dtype.is_floating_point is False
    assert int(table.pixels[0].float().mean().round()) == 10
    assert int(table.pixels[1].float().mean().round()) == 200


def test_multi_label_cells(tmp_path: Path) -> None:
    csv_path = _table(tmp_path, ["path,report,finding", "images/a.png,t,b; a", "images/b.png,t,"])
    table = read_table(csv_path, TableSpec("path", "report", "finding", label_sep=";"), 8)
    assert [row.labels for row in table.rows] == [("a", "b"), ()]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("images/missing.png,t,x", "data.csv:3: column 'path': image file not found"),
        ("images/empty.png,t,x", "data.csv:3: column 'path': cannot decode image file"),
        ("images/a.png,,x", "data.csv:3: column 'report': empty text"),
        ("images/a.png,t,", "data.csv:3: column 'finding': empty label"),
        (",t,x", "data.csv:3: column 'path': empty image path"),
        ("images/a.png,t", "data.csv:3: column 'finding': missing (a short row)"),
    ],
)
def test_bad_rows_name_line_and_column(tmp_path: Path, line: str, expected: str) -> None:
    csv_path = _table(tmp_path, ["path,report,finding", "images/a.png,fine,x", line])
    (tmp_path / "images" / "empty.png").write_bytes(b"")
    with pytest.raises(TableError, match=re.escape(expected)):
        read_table(csv_path, SPEC, 8)
    skipped = read_table(csv_path, SPEC, 8, on_error="skip")
    assert [row.line for row in skipped.rows] == [2]
    assert len(skipped.skipped) == 1 and expected in skipped.skipped[0]


def test_file_level_errors(tmp_path: Path) -> None:
    csv_path = _table(tmp_path, ["path,text,finding", "images/a.png,t,x"])
    with pytest.raises(TableError, match=r"data.csv:1: no column 'report' in the header; it has"):
        read_table(csv_path, SPEC, 8)
    csv_path.write_text('path,report,finding\nimages/a.png,"never closed,x\n', encoding="utf-8")
    with pytest.raises(TableError, match=r"data.csv:\d+: not valid CSV \(an unclosed quote\?\)"):
        read_table(csv_path, SPEC, 8)
    csv_path.write_bytes(b"path,report,finding\nimages/a.png,caf\xe9,x\n")
    with pytest.raises(TableError, match=r"data.csv:\d+: not UTF-8 text"):
        read_table(csv_path, SPEC, 8)
    csv_path.write_text("path,report,finding\nimages/a.png,t,x\n", encoding="utf-8")
    with pytest.raises(TableError, match="column 'split'"):
        read_table(csv_path, TableSpec("path", "report", "finding", split_col="split"), 8)
    with pytest.raises(TableError, match="CSV file not found"):
        read_table(tmp_path / "nope.csv", SPEC, 8)


def test_split_column_values_are_checked(tmp_path: Path) -> None:
    csv_path = _table(
        tmp_path, ["path,report,finding,split", "images/a.png,t,x,train", "images/b.png,t,y,dev"]
    )
    spec = TableSpec("path", "report", "finding", split_col="split")
    with pytest.raises(TableError, match=r"data\.csv:3: column 'split': 'dev' is not one of"):
        read_table(csv_path, spec, 8)
    table = read_table(csv_path, spec, 8, on_error="skip")
    with pytest.raises(TableError, match="no 'val' rows in column 'split'"):
        split_rows(table, seed=0)


def test_stratified_split_shares_per_class() -> None:
    labels = [("a",)] * 100 + [("b",)] * 20 + [("c",)] * 3
    names = stratified_split(labels, seed=4)
    per_class = {
        label: Counter(n for n, row in zip(names, labels, strict=True) if row == (label,))
        for label in "abc"
    }
    # Hand-computed: test round(n * 0.15), val round((n - test) * 0.15 / 0.85), at least one each.
    assert per_class["a"] == Counter(train=70, val=15, test=15)
    assert per_class["b"] == Counter(train=14, val=3, test=3)
    assert per_class["c"] == Counter(train=1, val=1, test=1)
    assert stratified_split(labels, seed=4) == names
    assert stratified_split(labels, seed=5) != names


def test_stratified_split_multi_label_uses_the_rarest_label() -> None:
    labels = [("common",)] * 40 + [("common", "rare")] * 20 + [()] * 20
    names = stratified_split(labels, seed=0)
    rare_test = sum(
        1 for n, row in zip(names, labels, strict=True) if "rare" in row and n == "test"
    )
    assert rare_test == 3  # the 20 rows with 'rare' are one stratum: round(20 * 0.15)
    with pytest.raises(TableError, match="fractions"):
        stratified_split(labels, seed=0, val_fraction=0.5, test_fraction=0.5)
