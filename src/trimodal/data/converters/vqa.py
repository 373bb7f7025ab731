"""VQA v2 questions + annotations into one manifest row per image."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from trimodal.data.converters.common import (
    ConversionError,
    ConversionResult,
    RecordProblems,
    check_split,
    load_json,
    optional,
    relative,
    require,
)
from trimodal.data.manifest import OnError
from trimodal.io import write_jsonl_atomic

COCO_IMAGE_PATTERN = "COCO_{data_subtype}_{image_id:012d}.jpg"
_DATASET_FIELDS = ("data_type", "data_subtype")


def _dataset_info(
    questions: dict[str, Any], q_path: Path, annotations: dict[str, Any], a_path: Path
) -> dict[str, str]:
    """``data_type`` / ``data_subtype`` from either file; the two files must agree."""
    info: dict[str, str] = {}
    for key in _DATASET_FIELDS:
        from_questions = optional(questions, key, str, str(q_path))
        from_annotations = optional(annotations, key, str, str(a_path))
        if None not in (from_questions, from_annotations) and from_questions != from_annotations:
            raise ConversionError(
                f"{q_path}: {key} {from_questions!r} but {a_path}: {key} "
                f"{from_annotations!r}; the questions and annotations must be of one data set"
            )
        value = from_questions if from_questions is not None else from_annotations
        if value is not None:
            info[key] = value
    return info


def _image_pattern(pattern: str | None, info: dict[str, str], q_path: Path, a_path: Path) -> str:
    """The explicit pattern, else COCO's official names for the files' ``data_subtype``."""
    if pattern is None:
        if "data_subtype" not in info:
            raise ConversionError(
                f"{q_path}, {a_path}: neither file has a 'data_subtype', so the image file "
                "names are unknown; pass them with --image-pattern (image_pattern=), e.g. "
                "'COCO_val2014_{image_id:012d}.jpg'"
            )
        data_type = info.get("data_type", "mscoco")
        if data_type != "mscoco":
            raise ConversionError(
                f"{q_path}: data_type {data_type!r} is not 'mscoco' and its images are not "
                "named like COCO's; pass their file names with --image-pattern (image_pattern=)"
            )
        pattern = COCO_IMAGE_PATTERN
    try:
        pattern.format(image_id=0, **info)
    except (KeyError, IndexError, ValueError, AttributeError) as error:
        fields = ", ".join(["image_id", *info])
        raise ValueError(
            f"image_pattern {pattern!r}: cannot be filled in ({type(error).__name__}: {error}); "
            f"its fields may be: {fields}"
        ) from None
    return pattern


def _human_answer(entry: Any, where: str) -> dict[str, Any]:
    """One VQA v2 answer object, keeping ``answer``, ``answer_confidence``, ``answer_id``."""
    kept = {"answer": require(entry, "answer", str, where)}
    for key, types in (("answer_confidence", str), ("answer_id", int)):
        value = optional(entry, key, types, where)
        if value is not None:
            kept[key] = value
    return kept


def _annotation_entry(annotation: dict[str, Any], where: str) -> dict[str, Any]:
    """The manifest question fields an annotation gives (all but ``question``)."""
    entry: dict[str, Any] = {
        "answer": require(annotation, "multiple_choice_answer", str, where),
    }
    answers = optional(annotation, "answers", list, where)
    if answers is not None:
        entry["answers"] = [
            _human_answer(item, f"{where}.answers[{k}]") for k, item in enumerate(answers)
        ]
    entry["question_id"] = annotation["question_id"]
    question_type = optional(annotation, "question_type", str, where)
    if question_type is not None:
        entry["question_type"] = question_type
    answer_type = optional(annotation, "answer_type", str, where)
    if answer_type is not None:
        entry["family"] = answer_type
    return entry


def _parse_annotations(
    annotations: list[Any], a_path: Path, problems: RecordProblems
) -> tuple[dict[int, dict[str, Any]], set[int]]:
    """Question fields by question id, and the ids whose annotation was bad (and skipped)."""
    by_question: dict[int, dict[str, Any]] = {}
    first_index: dict[int, int] = {}
    rejected: set[int] = set()
    for i, annotation in enumerate(annotations):
        where = f"{a_path}: annotations[{i}]"
        question_id = None
        try:
            question_id = require(annotation, "question_id", int, where)
            if question_id in first_index:
                duplicate = question_id
                question_id = None  # the first annotation stands
                raise ConversionError(
                    f"{where}.question_id: duplicate question_id {duplicate} "
                    f"(also annotations[{first_index[duplicate]}]); this one is left out"
                )
            first_index[question_id] = i
            by_question[question_id] = _annotation_entry(annotation, where)
        except ConversionError as error:
            problems.add(error)
            if question_id is not None:
                rejected.add(question_id)
    return by_question, rejected


def _group_questions(
    questions: list[Any],
    q_path: Path,
    a_path: Path,
    answers: dict[int, dict[str, Any]],
    rejected: set[int],
    problems: RecordProblems,
) -> dict[int, list[dict[str, Any]]]:
    """Manifest question entries by image id, in question-file order."""
    by_image: dict[int, list[dict[str, Any]]] = defaultdict(list)
    first_index: dict[int, int] = {}
    for i, question in enumerate(questions):
        where = f"{q_path}: questions[{i}]"
        try:
            question_id = require(question, "question_id", int, where)
            image_id = require(question, "image_id", int, where)
            text = require(question, "question", str, where)
            if question_id in first_index:
                raise ConversionError(
                    f"{where}.question_id: duplicate question_id {question_id} "
                    f"(also questions[{first_index[question_id]}]); this one is left out"
                )
            first_index[question_id] = i
            if question_id in rejected:
                continue  # its annotation was already reported
            if question_id not in answers:
                raise ConversionError(
                    f"{where}.question_id: {question_id} has no annotation in {a_path}"
                )
        except ConversionError as error:
            problems.add(error)
            continue
        by_image[image_id].append({"question": text, **answers[question_id]})
    return by_image


def _row(
    image_id: int,
    questions: list[dict[str, Any]],
    split: str,
    info: dict[str, str],
    image: Path,
    out: Path,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"image_id": image_id, **info}
    return {
        "id": f"vqa-{image_id}",
        "split": split,
        "image": relative(image, out),
        "questions": questions,
        "meta": meta,
    }


def vqa_to_manifest(
    questions_json: str | os.PathLike[str],
    annotations_json: str | os.PathLike[str],
    image_dir: str | os.PathLike[str],
    out_manifest: str | os.PathLike[str],
    split: str = "train",
    image_pattern: str | None = None,
    on_error: OnError = "raise",
) -> ConversionResult:
    """Convert VQA v2 questions + annotations into one row per image, sorted by image id.

    A row is ``{"id": "vqa-<image id>", "split", "image", "questions", "meta"}`` with ``meta``
    ``{"image_id"}`` plus the files' ``data_type``/``data_subtype`` when present. Each question
    (in question-file order) has ``question``; ``answer`` (``multiple_choice_answer``);
    ``answers`` (the annotators' answer objects: ``answer``, ``answer_confidence``,
    ``answer_id``); ``question_id``; ``question_type``; and ``family``, which holds the
    ``answer_type`` ("yes/no", "number", "other"). Optional annotation fields that are
    absent are left out. Annotations without a question are ignored.

    Args:
        questions_json: e.g. ``v2_OpenEnded_mscoco_val2014_questions.json``.
        annotations_json: e.g. ``v2_mscoco_val2014_annotations.json``.
        image_dir: folder of the images.
        out_manifest: manifest to write (paths in it are relative to its folder).
        split: manifest split of every row.
        image_pattern: image file name, a ``str.format`` pattern with ``{image_id}`` (and
            ``{data_type}``/``{data_subtype}`` when the files have them). None: COCO's
            ``COCO_{data_subtype}_{image_id:012d}.jpg`` with the files' ``data_subtype``.
        on_error: ``"raise"`` stops at the first bad record; ``"skip"`` leaves out questions
            without an annotation and malformed questions or annotations.

    Returns:
        rows (images) written and the skipped records.

    Raises:
        ConversionError: a file is malformed, the files disagree on their data set, the image
            names are unknown, or a record is bad and ``on_error="raise"``.
        ValueError: ``image_pattern`` cannot be filled in, or ``split`` is unknown.
    """
    check_split(split)
    problems = RecordProblems(on_error)
    q_path, a_path, out = Path(questions_json), Path(annotations_json), Path(out_manifest)
    q_data, a_data = load_json(q_path), load_json(a_path)
    questions = require(q_data, "questions", list, str(q_path))
    annotations = require(a_data, "annotations", list, str(a_path))
    info = _dataset_info(q_data, q_path, a_data, a_path)
    pattern = _image_pattern(image_pattern, info, q_path, a_path)
    answers, rejected = _parse_annotations(annotations, a_path, problems)
    by_image = _group_questions(questions, q_path, a_path, answers, rejected, problems)
    rows = [
        _row(
            image_id,
            entries,
            split,
            info,
            Path(image_dir) / pattern.format(image_id=image_id, **info),
            out,
        )
        for image_id, entries in sorted(by_image.items())
    ]
    write_jsonl_atomic(out, rows)
    return problems.result(len(rows))
