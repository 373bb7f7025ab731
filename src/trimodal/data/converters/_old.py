"""Converters from public dataset formats into trimodal manifests.

- COCO captions JSON (``images`` + ``annotations``): one row per (image, caption).
- VQA v2 questions JSON + annotations JSON: one row per image with all its questions.
- Audio-caption CSV in the AudioCaps style (``youtube_id``/``audiocap_id`` + ``caption``) or the
  Clotho style (``file_name`` + ``caption_1`` ... ``caption_5``): one row per (clip, caption).

Media paths are written relative to the output manifest's folder. A malformed input raises a
:class:`ConversionError` naming the file and the record (JSON path or CSV line and column).
"""

from __future__ import annotations

import csv
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from trimodal.data.manifest import SPLITS
from trimodal.io import write_jsonl_atomic


class ConversionError(ValueError):
    """An input file of a converter is malformed; the message says where."""


def _relative(target: Path, manifest: Path) -> str:
    return os.path.relpath(target.resolve(), manifest.resolve().parent)


def _load_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as stream:
            return json.load(stream)
    except FileNotFoundError:
        raise ConversionError(f"{path}: file not found") from None
    except json.JSONDecodeError as error:
        raise ConversionError(f"{path}:{error.lineno}: invalid JSON: {error.msg}") from None


def _require(record: Any, key: str, types: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(record, dict):
        raise ConversionError(f"{where}: expected an object, got {type(record).__name__}")
    if key not in record:
        raise ConversionError(f"{where}.{key}: missing required field")
    value = record[key]
    if not isinstance(value, types) or isinstance(value, bool):
        raise ConversionError(f"{where}.{key}: wrong type {type(value).__name__} ({value!r:.60})")
    return value


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} (expected one of {', '.join(SPLITS)})")


def coco_captions_to_manifest(
    captions_json: str | os.PathLike[str],
    image_dir: str | os.PathLike[str],
    out_manifest: str | os.PathLike[str],
    split: str = "train",
) -> int:
    """Convert a COCO captions file. Returns the number of rows written."""
    _check_split(split)
    source, out = Path(captions_json), Path(out_manifest)
    data = _load_json(source)
    images = _require(data, "images", list, str(source))
    annotations = _require(data, "annotations", list, str(source))
    file_names: dict[int, str] = {}
    for i, image in enumerate(images):
        where = f"{source}: images[{i}]"
        file_names[_require(image, "id", int, where)] = _require(image, "file_name", str, where)
    rows = []
    for i, annotation in enumerate(annotations):
        where = f"{source}: annotations[{i}]"
        image_id = _require(annotation, "image_id", int, where)
        text = _require(annotation, "caption", str, where).strip()
        if not text:
            raise ConversionError(f"{where}.caption: empty caption")
        if image_id not in file_names:
            raise ConversionError(f"{where}.image_id: no image with id {image_id} in 'images'")
        annotation_id = annotation.get("id", i)
        rows.append(
            {
                "id": f"coco-{annotation_id}",
                "split": split,
                "image": _relative(Path(image_dir) / file_names[image_id], out),
                "text": text,
                "meta": {"image_id": image_id},
            }
        )
    write_jsonl_atomic(out, rows)
    return len(rows)


def vqa_to_manifest(
    questions_json: str | os.PathLike[str],
    annotations_json: str | os.PathLike[str],
    image_dir: str | os.PathLike[str],
    out_manifest: str | os.PathLike[str],
    split: str = "train",
    image_pattern: str = "COCO_val2014_{image_id:012d}.jpg",
) -> int:
    """Convert VQA v2 questions + annotations. Returns the number of rows (images) written.

    Each question's answer is the annotators' ``multiple_choice_answer`` and its family the
    ``answer_type`` ("yes/no", "number", "other").
    """
    _check_split(split)
    q_path, a_path, out = Path(questions_json), Path(annotations_json), Path(out_manifest)
    questions = _require(_load_json(q_path), "questions", list, str(q_path))
    annotations = _require(_load_json(a_path), "annotations", list, str(a_path))
    answers: dict[int, tuple[str, str | None]] = {}
    for i, annotation in enumerate(annotations):
        where = f"{a_path}: annotations[{i}]"
        question_id = _require(annotation, "question_id", int, where)
        answer = _require(annotation, "multiple_choice_answer", str, where)
        answers[question_id] = (answer, annotation.get("answer_type"))
    by_image: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for i, question in enumerate(questions):
        where = f"{q_path}: questions[{i}]"
        question_id = _require(question, "question_id", int, where)
        image_id = _require(question, "image_id", int, where)
        text = _require(question, "question", str, where)
        if question_id not in answers:
            raise ConversionError(
                f"{where}.question_id: {question_id} has no annotation in {a_path}"
            )
        answer, family = answers[question_id]
        entry: dict[str, Any] = {"question": text, "answer": answer}
        if isinstance(family, str):
            entry["family"] = family
        by_image[image_id].append(entry)
    rows = [
        {
            "id": f"vqa-{image_id}",
            "split": split,
            "image": _relative(Path(image_dir) / image_pattern.format(image_id=image_id), out),
            "questions": entries,
        }
        for image_id, entries in sorted(by_image.items())
    ]
    write_jsonl_atomic(out, rows)
    return len(rows)


_AUDIO_COLUMNS = ("file_name", "audio", "youtube_id", "audiocap_id")


def audio_captions_csv_to_manifest(
    csv_path: str | os.PathLike[str],
    audio_dir: str | os.PathLike[str],
    out_manifest: str | os.PathLike[str],
    split: str = "train",
    audio_extension: str = ".wav",
) -> int:
    """Convert an AudioCaps- or Clotho-style CSV. Returns the number of rows written.

    The audio column is the first present of ``file_name``, ``audio``, ``youtube_id``,
    ``audiocap_id``; a value without an extension gets ``audio_extension``. Caption columns are
    ``caption`` or ``caption_1``, ``caption_2``, ...
    """
    _check_split(split)
    source, out = Path(csv_path), Path(out_manifest)
    if not source.is_file():
        raise ConversionError(f"{source}: file not found")
    with open(source, encoding="utf-8", newline="") as stream:
        reader = csv.DictReader(stream)
        header = reader.fieldnames or []
        audio_column = next((c for c in _AUDIO_COLUMNS if c in header), None)
        caption_columns = [c for c in header if c == "caption" or c.startswith("caption_")]
        if audio_column is None or not caption_columns:
            raise ConversionError(
                f"{source}:1: header needs an audio column ({', '.join(_AUDIO_COLUMNS)}) and a "
                f"'caption' or 'caption_N' column; found {header}"
            )
        rows = []
        for record in reader:
            line_number = reader.line_num  # physical line: counts blank and multi-line rows
            clip = (record.get(audio_column) or "").strip()
            if not clip:
                raise ConversionError(f"{source}:{line_number}: column '{audio_column}': empty")
            if not Path(clip).suffix:
                clip += audio_extension
            for column in caption_columns:
                text = (record.get(column) or "").strip()
                if not text:
                    raise ConversionError(
                        f"{source}:{line_number}: column '{column}': empty caption"
                    )
                rows.append(
                    {
                        "id": f"{Path(clip).stem}-{line_number}-{column}",
                        "split": split,
                        "audio": _relative(Path(audio_dir) / clip, out),
                        "text": text,
                    }
                )
    write_jsonl_atomic(out, rows)
    return len(rows)
