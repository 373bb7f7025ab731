"""Audio-caption CSVs (AudioCaps and Clotho styles) into one manifest row per caption."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from trimodal.data.converters.common import (
    ConversionError,
    ConversionResult,
    RecordProblems,
    check_split,
    relative,
)
from trimodal.data.manifest import OnError
from trimodal.io import write_jsonl_atomic

_AUDIO_COLUMNS = ("file_name", "audio", "youtube_id", "audiocap_id")


def _columns(header: list[str], source: Path) -> tuple[str, list[str]]:
    """The audio column and the caption columns of a CSV header."""
    audio_column = next((c for c in _AUDIO_COLUMNS if c in header), None)
    caption_columns = [c for c in header if c == "caption" or c.startswith("caption_")]
    if audio_column is None or not caption_columns:
        raise ConversionError(
            f"{source}:1: header needs an audio column ({', '.join(_AUDIO_COLUMNS)}) and a "
            f"'caption' or 'caption_N' column; found {header}"
        )
    return audio_column, caption_columns


def audio_captions_csv_to_manifest(
    csv_path: str | os.PathLike[str],
    audio_dir: str | os.PathLike[str],
    out_manifest: str | os.PathLike[str],
    split: str = "train",
    audio_extension: str = ".wav",
    on_error: OnError = "raise",
) -> ConversionResult:
    """Convert an AudioCaps- or Clotho-style CSV into one row per (clip, caption).

    The audio column is the first present of ``file_name``, ``audio``, ``youtube_id``,
    ``audiocap_id``; a value without an extension gets ``audio_extension``. Caption columns are
    ``caption`` or ``caption_1``, ``caption_2``, ... A row is ``{"id":
    "<clip stem>-<line>-<column>", "split", "audio", "text"}``.

    Args:
        csv_path: the CSV file.
        audio_dir: folder of the clips.
        out_manifest: manifest to write (paths in it are relative to its folder).
        split: manifest split of every row.
        audio_extension: added to audio names that have none.
        on_error: ``"raise"`` stops at the first empty cell; ``"skip"`` leaves out a line with
            an empty audio cell, or a single empty caption cell.

    Returns:
        rows written and the skipped records (``FILE:LINE: column 'C': ...``).

    Raises:
        ConversionError: the file or its header is bad, or a cell is and ``on_error="raise"``.
    """
    check_split(split)
    problems = RecordProblems(on_error)
    source, out = Path(csv_path), Path(out_manifest)
    if not source.is_file():
        raise ConversionError(f"{source}: file not found")
    rows: list[dict[str, Any]] = []
    with open(source, encoding="utf-8", newline="") as stream:
        reader = csv.DictReader(stream, strict=True)
        try:
            _read_records(
                reader, source, Path(audio_dir), out, split, audio_extension, rows, problems
            )
        except csv.Error as error:
            hint = " (an unclosed quote?)" if "unexpected end of data" in str(error) else ""
            raise ConversionError(
                f"{source}:{reader.line_num}: not valid CSV{hint}: {error}; nothing was written"
            ) from None
        except UnicodeDecodeError as error:
            raise ConversionError(
                f"{source}:{reader.line_num + 1}: not UTF-8 text ({error.reason}); nothing was written"
            ) from None
    write_jsonl_atomic(out, rows)
    return problems.result(len(rows))


def _read_records(
    reader: csv.DictReader[str],
    source: Path,
    audio_dir: Path,
    out: Path,
    split: str,
    audio_extension: str,
    rows: list[dict[str, Any]],
    problems: RecordProblems,
) -> None:
    """Append a manifest row per caption cell of each record (bad cells to ``problems``)."""
    audio_column, caption_columns = _columns(list(reader.fieldnames or []), source)
    for record in reader:
        line_number = reader.line_num  # physical line: counts blank and multi-line rows
        clip = (record.get(audio_column) or "").strip()
        if not clip:
            problems.add(ConversionError(f"{source}:{line_number}: column '{audio_column}': empty"))
            continue
        if not Path(clip).suffix:
            clip += audio_extension
        for column in caption_columns:
            text = (record.get(column) or "").strip()
            if not text:
                problems.add(
                    ConversionError(f"{source}:{line_number}: column '{column}': empty caption")
                )
                continue
            rows.append(
                {
                    "id": f"{Path(clip).stem}-{line_number}-{column}",
                    "split": split,
                    "audio": relative(audio_dir / clip, out),
                    "text": text,
                }
            )
