"""The MSR-VTT converter: rows per (video, caption), split mapping, errors naming the record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trimodal.data.converters import ConversionError, msrvtt_to_manifest
from trimodal.data.manifest import load_manifest
from trimodal.modalities.video import write_clip


def _annotations(tmp_path: Path, **changes: Any) -> Path:
    data: dict[str, Any] = {
        "videos": [
            {"video_id": "video0", "split": "train", "category": 9},
            {"video_id": "video1", "split": "validate"},
            {"video_id": "video2", "split": "test"},
        ],
        "sentences": [
            {"video_id": "video0", "sen_id": 0, "caption": "a man is cooking"},
            {"video_id": "video0", "sen_id": 1, "caption": " someone cooks food "},
            {"video_id": "video1", "sen_id": 2, "caption": "a dog runs"},
            {"video_id": "video2", "sen_id": 3, "caption": "a car drives"},
        ],
    }
    data.update(changes)
    path = tmp_path / "msrvtt.json"
    path.write_text(json.dumps(data))
    return path


def test_one_row_per_caption_with_mapped_splits(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    frames = np.full((4, 16, 16, 3), 100, dtype=np.uint8)
    for name in ("video0", "video1", "video2"):
        write_clip(videos / f"{name}.mp4", frames)
    out = tmp_path / "out" / "msrvtt.jsonl"
    out.parent.mkdir()
    result = msrvtt_to_manifest(_annotations(tmp_path), videos, out)
    assert result.rows == 4 and not result.skipped
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[1] == {
        "id": "video0-1",
        "split": "train",
        "video": "../videos/video0.mp4",
        "text": "someone cooks food",
    }
    assert [row["split"] for row in rows] == ["train", "train", "val", "test"]
    manifest = load_manifest(out)  # the rows validate, video files decoded
    assert [sorted(sample.media) for sample in manifest.samples] == [["video"]] * 4


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"videos": [{"video_id": "video0", "split": "dev"}]}, "videos[0].split: unknown split"),
        ({"videos": [{"split": "train"}]}, "videos[0].video_id: missing required field"),
        (
            {"sentences": [{"video_id": "video9", "sen_id": 0, "caption": "x"}]},
            "sentences[0].video_id: no video 'video9'",
        ),
        (
            {"sentences": [{"video_id": "video0", "sen_id": 0, "caption": "  "}]},
            "sentences[0].caption: empty caption",
        ),
        (
            {
                "sentences": [
                    {"video_id": "video0", "sen_id": 0, "caption": "a"},
                    {"video_id": "video0", "sen_id": 0, "caption": "b"},
                ]
            },
            "sentences[1].sen_id: duplicate sentence id 0",
        ),
        ({"sentences": {"a": 1}}, "sentences: wrong type dict"),
    ],
)
def test_errors_name_the_record(tmp_path: Path, changes: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConversionError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        msrvtt_to_manifest(_annotations(tmp_path, **changes), tmp_path, tmp_path / "m.jsonl")


def test_skip_leaves_bad_records_out_and_lists_them(tmp_path: Path) -> None:
    sentences = [
        {"video_id": "video0", "sen_id": 0, "caption": "fine"},
        {"video_id": "video0", "sen_id": 1},
    ]
    result = msrvtt_to_manifest(
        _annotations(tmp_path, sentences=sentences), tmp_path, tmp_path / "m.jsonl", on_error="skip"
    )
    assert result.rows == 1 and len(result.skipped) == 1
    assert "sentences[1].caption: missing required field" in result.report()
