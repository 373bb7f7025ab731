"""MSR-VTT's annotation JSON (``train_val_videodatainfo.json``, ``test_videodatainfo.json``)
into one manifest row per (video, caption)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from trimodal.data.converters.common import (
    ConversionError,
    ConversionResult,
    RecordProblems,
    caption_text,
    load_json,
    relative,
    require,
)
from trimodal.data.manifest import OnError
from trimodal.io import write_jsonl_atomic

#: MSR-VTT split -> manifest split.
MSRVTT_SPLITS: dict[str, str] = {"train": "train", "validate": "val", "test": "test"}


def _video_splits(videos: list[Any], source: Path, problems: RecordProblems) -> dict[str, str]:
    """``video_id -> manifest split`` of every well-formed entry of ``videos``."""
    splits: dict[str, str] = {}
    for index, video in enumerate(videos):
        where = f"{source}: videos[{index}]"
        try:
            video_id = require(video, "video_id", str, where)
            split = require(video, "split", str, where)
            if split not in MSRVTT_SPLITS:
                raise ConversionError(
                    f"{where}.split: unknown split {split!r} (expected one of "
                    f"{', '.join(MSRVTT_SPLITS)})"
                )
            if video_id in splits:
                raise ConversionError(f"{where}.video_id: duplicate video id {video_id!r}")
        except ConversionError as error:
            problems.add(error)
            continue
        splits[video_id] = MSRVTT_SPLITS[split]
    return splits


def msrvtt_to_manifest(
    annotations: str | os.PathLike[str],
    videos_dir: str | os.PathLike[str],
    out_manifest: str | os.PathLike[str],
    video_extension: str = ".mp4",
    on_error: OnError = "raise",
) -> ConversionResult:
    """Convert MSR-VTT annotations into rows ``{"id": "<video_id>-<sen_id>", "split",
    "video", "text"}`` (splits: train, validate -> val, test).

    Args:
        annotations: the annotation JSON (``videos`` with ``video_id`` and ``split``;
            ``sentences`` with ``video_id``, ``sen_id`` and ``caption``).
        videos_dir: folder of the clips, named ``<video_id><video_extension>``.
        out_manifest: manifest to write (paths in it are relative to its folder).
        on_error: ``"raise"`` stops at the first bad record; ``"skip"`` leaves it out.

    Returns:
        rows written and the skipped records (``FILE: json.path: ...``).
    """
    problems = RecordProblems(on_error)
    source, out = Path(annotations), Path(out_manifest)
    data = load_json(source)
    videos = require(data, "videos", list, str(source))
    sentences = require(data, "sentences", list, str(source))
    splits = _video_splits(videos, source, problems)
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, sentence in enumerate(sentences):
        where = f"{source}: sentences[{index}]"
        try:
            video_id = require(sentence, "video_id", str, where)
            sen_id = require(sentence, "sen_id", int, where)
            text = caption_text(require(sentence, "caption", str, where), f"{where}.caption")
            if video_id not in splits:
                raise ConversionError(f"{where}.video_id: no video {video_id!r} in 'videos'")
            row_id = f"{video_id}-{sen_id}"
            if row_id in seen:
                raise ConversionError(f"{where}.sen_id: duplicate sentence id {sen_id}")
        except ConversionError as error:
            problems.add(error)
            continue
        seen.add(row_id)
        clip = Path(videos_dir) / f"{video_id}{video_extension}"
        rows.append(
            {"id": row_id, "split": splits[video_id], "video": relative(clip, out), "text": text}
        )
    write_jsonl_atomic(out, rows)
    return problems.result(len(rows))
