"""A user's CSV of image + free text + label(s), read and checked once, with its split.

Every problem names the CSV file, its line and the column (``data.csv:7: column 'path': image
file not found: ...``). With ``on_error="skip"`` a bad row is left out and listed; nothing is
dropped silently. Images are decoded here, once, to uint8 pixels at the model's size.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from trimodal.data.manifest import MAX_TEXT_CHARS  # the longest text cell used, as in manifests
from trimodal.data.tensors import uint8_image
from trimodal.data.transforms import ImageTransform

OnError = Literal["raise", "skip"]
SPLITS = ("train", "val", "test")
MAX_FIELD_CHARS = 131_072
"""Longest CSV cell read (the csv module's own limit); a longer one is that row's problem."""


class TableError(ValueError):
    """A CSV, a row or a cell cannot be used; the message says where and why."""


@dataclass(frozen=True)
class TableSpec:
    """Which columns hold what.

    Attributes:
        image_col: image paths, relative to the CSV's folder (or absolute).
        text_col: the free text (a report, a note).
        label_col: the label; ``None`` reads rows without labels (prediction).
        split_col: ``train`` / ``val`` / ``test`` per row; ``None``: a stratified split is made.
        label_sep: set for multi-label tables: the separator between a row's labels
            (``"finding_a;finding_b"``); an empty cell then means no label applies.
    """

    image_col: str
    text_col: str
    label_col: str | None = None
    split_col: str | None = None
    label_sep: str | None = None

    @property
    def multi_label(self) -> bool:
        """Whether a row may carry several labels (or none)."""
        return self.label_sep is not None


@dataclass(frozen=True)
class TableRow:
    """One usable CSV record: its physical line, image path, text, labels and split."""

    line: int
    image: Path
    text: str
    labels: tuple[str, ...]
    split: str | None


@dataclass
class Table:
    """The usable rows of a CSV, their decoded pixels and the rows left out.

    Attributes:
        pixels: uint8 ``[N, 3, S, S]``, row ``i`` is ``rows[i]``'s image.
        skipped: ``FILE:LINE: column 'C': why`` per record left out (``on_error="skip"``).
    """

    source: Path
    spec: TableSpec
    rows: list[TableRow]
    pixels: torch.Tensor
    skipped: list[str] = field(default_factory=list)

    @property
    def texts(self) -> list[str]:
        """Every row's text, in order."""
        return [row.text for row in self.rows]

    def subset(self, indices: list[int]) -> Table:
        """The rows at ``indices`` (pixels alike); ``skipped`` is kept."""
        chosen = torch.as_tensor(indices, dtype=torch.long)
        return Table(
            self.source,
            self.spec,
            [self.rows[i] for i in indices],
            self.pixels[chosen],
            self.skipped,
        )


def read_table(
    csv_path: str | os.PathLike[str],
    spec: TableSpec,
    image_size: int,
    on_error: OnError = "raise",
) -> Table:
    """Read and check every record of ``csv_path`` and decode its images to ``image_size``.

    Raises:
        TableError: the file, its header or (with ``on_error="raise"``) a record is bad; or no
            usable row is left.
    """
    if on_error not in ("raise", "skip"):
        raise TableError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    source = Path(csv_path)
    if not source.is_file():
        raise TableError(f"{source}: CSV file not found")
    return table_from_records(source, _records(source, spec), spec, image_size, on_error)


def table_from_records(
    source: Path,
    records: list[tuple[int, dict[str, str]]],
    spec: TableSpec,
    image_size: int,
    on_error: OnError = "raise",
) -> Table:
    """Check ``(line, {column: cell})`` records as CSV rows of ``source`` (relative image paths
    are taken from its folder) and decode their images: :func:`read_table` without the file."""
    transform = ImageTransform(size=image_size)
    rows: list[TableRow] = []
    images: list[np.ndarray] = []
    skipped: list[str] = []
    for line, record in records:
        try:
            row = _parse_row(source, line, record, spec)
            images.append(_pixels(transform, source, line, spec.image_col, row.image))
        except TableError as error:
            if on_error == "raise":
                raise
            skipped.append(str(error))
            continue
        rows.append(row)
    if not rows:
        reason = f" ({len(skipped)} rows left out)" if skipped else ""
        raise TableError(f"{source}: no usable rows{reason}")
    pixels = torch.from_numpy(np.stack(images))
    return Table(source, spec, rows, pixels, skipped)


def _records(source: Path, spec: TableSpec) -> list[tuple[int, dict[str, str]]]:
    """``(physical line, record)`` per CSV record, after checking the header names the columns."""
    csv.field_size_limit(MAX_FIELD_CHARS)
    records: list[tuple[int, dict[str, str]]] = []
    with open(source, encoding="utf-8", newline="") as stream:
        reader = csv.DictReader(stream, strict=True)
        try:
            _check_header(source, list(reader.fieldnames or []), spec)
            for record in reader:
                records.append((reader.line_num, record))
        except csv.Error as error:
            hint = " (an unclosed quote?)" if "unexpected end of data" in str(error) else ""
            raise TableError(f"{source}:{reader.line_num}: not valid CSV{hint}: {error}") from None
        except UnicodeDecodeError as error:
            raise TableError(
                f"{source}:{reader.line_num + 1}: not UTF-8 text ({error.reason})"
            ) from None
    return records


def _check_header(source: Path, header: list[str], spec: TableSpec) -> None:
    if not header:
        raise TableError(f"{source}:1: empty file; expected a header row naming the columns")
    wanted = [spec.image_col, spec.text_col, spec.label_col, spec.split_col]
    missing = [name for name in wanted if name is not None and name not in header]
    if missing:
        raise TableError(
            f"{source}:1: no column {', '.join(repr(m) for m in missing)} in the header; "
            f"it has {', '.join(repr(h) for h in header)}"
        )


def _cell(source: Path, line: int, record: dict[str, str], column: str) -> str:
    value = record.get(column)
    if value is None:
        raise TableError(f"{source}:{line}: column '{column}': missing (a short row)")
    return value.strip()


def _parse_row(source: Path, line: int, record: dict[str, str], spec: TableSpec) -> TableRow:
    where = f"{source}:{line}"
    image_cell = _cell(source, line, record, spec.image_col)
    if not image_cell:
        raise TableError(f"{where}: column '{spec.image_col}': empty image path")
    image = Path(image_cell)
    image = image if image.is_absolute() else source.parent / image
    text = _cell(source, line, record, spec.text_col)
    if not text:
        raise TableError(f"{where}: column '{spec.text_col}': empty text")
    if len(text) > MAX_TEXT_CHARS:
        raise TableError(
            f"{where}: column '{spec.text_col}': {len(text)} characters, over the limit of "
            f"{MAX_TEXT_CHARS}"
        )
    labels = _labels(source, line, record, spec)
    split = None
    if spec.split_col is not None:
        split = _cell(source, line, record, spec.split_col).lower()
        if split not in SPLITS:
            raise TableError(
                f"{where}: column '{spec.split_col}': {split!r} is not one of {', '.join(SPLITS)}"
            )
    return TableRow(line, image, text, labels, split)


def _labels(source: Path, line: int, record: dict[str, str], spec: TableSpec) -> tuple[str, ...]:
    if spec.label_col is None:
        return ()
    cell = _cell(source, line, record, spec.label_col)
    if spec.label_sep is None:
        if not cell:
            raise TableError(f"{source}:{line}: column '{spec.label_col}': empty label")
        return (cell,)
    return tuple(sorted({part.strip() for part in cell.split(spec.label_sep) if part.strip()}))


def _pixels(
    transform: ImageTransform, source: Path, line: int, column: str, image: Path
) -> np.ndarray:
    """uint8 ``[3, S, S]`` of one row's image; a failure names the row and column."""
    try:
        return uint8_image(image, transform).numpy()
    except (ValueError, FileNotFoundError, OSError) as error:
        raise TableError(f"{source}:{line}: column '{column}': {error}") from None


def stratified_split(
    labels: list[tuple[str, ...]],
    seed: int,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
) -> list[str]:
    """A ``train`` / ``val`` / ``test`` name per row, each class in about the same share.

    Rows are grouped by their stratum (the label; for a multi-label row its rarest label, or
    none), shuffled with ``seed`` and dealt to the splits by rounded cumulative share, so a
    class of ``n`` rows puts ``round(n * test_fraction)`` in test (every split of a class with
    at least 3 rows gets one when the fractions allow). Deterministic for a seed.
    """
    if not 0 < val_fraction < 1 or not 0 < test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise TableError(
            f"split fractions val {val_fraction} and test {test_fraction} must be in (0, 1) "
            "and sum below 1"
        )
    counts = Counter(label for row in labels for label in row)
    strata: dict[str, list[int]] = {}
    for index, row in enumerate(labels):
        key = min(row, key=lambda label: (counts[label], label)) if row else ""
        strata.setdefault(key, []).append(index)
    rng = np.random.default_rng(seed)
    names = ["train"] * len(labels)
    for key in sorted(strata):
        members = strata[key]
        order = [members[i] for i in rng.permutation(len(members))]
        test_count = _share(len(order), test_fraction)
        val_count = _share(len(order) - test_count, val_fraction / (1 - test_fraction))
        if len(order) >= 3:
            val_count = min(max(val_count, 1), len(order) - test_count - 1)
        for position, index in enumerate(order):
            if position < test_count:
                names[index] = "test"
            elif position < test_count + val_count:
                names[index] = "val"
    return names


def _share(count: int, fraction: float) -> int:
    """``round(count * fraction)``, at least 1 when ``count >= 3`` (and never all of them)."""
    share = round(count * fraction)
    if count >= 3:
        share = max(share, 1)
    return min(share, max(count - 1, 0))


def split_rows(table: Table, seed: int) -> dict[str, list[int]]:
    """Row indices per split: the table's split column, or :func:`stratified_split`.

    Raises:
        TableError: the split column leaves ``train`` empty, or ``val``/``test`` empty when the
            table is too small to score.
    """
    if table.spec.split_col is not None:
        names = [row.split or "train" for row in table.rows]
    else:
        names = stratified_split([row.labels for row in table.rows], seed)
    chosen = {split: [i for i, name in enumerate(names) if name == split] for split in SPLITS}
    for split in SPLITS:
        if not chosen[split]:
            raise TableError(
                f"{table.source}: no '{split}' rows "
                + (
                    f"in column '{table.spec.split_col}'"
                    if table.spec.split_col
                    else f"after a stratified split of {len(table.rows)} rows (too few)"
                )
            )
    return chosen
