"""COCO captions (``captions_*.json``) into one manifest row per image."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trimodal.data.converters.common import (
    ConversionError,
    ConversionResult,
    RecordProblems,
    caption_text,
    check_split,
    load_json,
    optional,
    relative,
    require,
)
from trimodal.data.manifest import OnError
from trimodal.io import write_jsonl_atomic

_IMAGE_META = ("coco_url", "width", "height")


@dataclass
class _Image:
    """One entry of ``images`` and the captions gathered for it."""

    image_id: int
    file_name: str
    extra: dict[str, Any]
    captions: list[str] = field(default_factory=list)
    caption_ids: list[int] = field(default_factory=list)


def _parse_images(images: list[Any], source: Path, problems: RecordProblems) -> dict[int, _Image]:
    """The valid ``images`` entries by id, in file order."""
    by_id: dict[int, _Image] = {}
    first_index: dict[int, int] = {}
    for i, image in enumerate(images):
        where = f"{source}: images[{i}]"
        try:
            image_id = require(image, "id", int, where)
            file_name = require(image, "file_name", str, where)
            if image_id in first_index:
                raise ConversionError(
                    f"{where}.id: duplicate image id {image_id} "
                    f"(also images[{first_index[image_id]}])"
                )
        except ConversionError as error:
            problems.add(error)
            continue
        first_index[image_id] = i
        extra = {key: image[key] for key in _IMAGE_META if key in image}
        by_id[image_id] = _Image(image_id, file_name, extra)
    return by_id


def _attach_captions(
    annotations: list[Any], images: dict[int, _Image], source: Path, problems: RecordProblems
) -> None:
    """Append each annotation's caption (and id) to its image, in annotation order; a repeated
    annotation id is reported and its later annotations left out."""
    first_index: dict[int, int] = {}
    for i, annotation in enumerate(annotations):
        where = f"{source}: annotations[{i}]"
        try:
            image_id = require(annotation, "image_id", int, where)
            text = caption_text(require(annotation, "caption", str, where), f"{where}.caption")
            caption_id = optional(annotation, "id", int, where)
            if image_id not in images:
                raise ConversionError(f"{where}.image_id: no image with id {image_id} in 'images'")
            if caption_id is not None and caption_id in first_index:
                raise ConversionError(
                    f"{where}.id: duplicate annotation id {caption_id} "
                    f"(also annotations[{first_index[caption_id]}])"
                )
        except ConversionError as error:
            problems.add(error)
            continue
        if caption_id is not None:
            first_index[caption_id] = i
        images[image_id].captions.append(text)
        images[image_id].caption_ids.append(i if caption_id is None else caption_id)


def coco_captions_to_manifest(
    captions_json: str | os.PathLike[str],
    image_dir: str | os.PathLike[str],
    out_manifest: str | os.PathLike[str],
    split: str = "train",
    on_error: OnError = "raise",
) -> ConversionResult:
    """Convert a COCO captions file into one row per image that has at least one caption.

    A row is ``{"id": "coco-<image id>", "split", "image", "text", "captions", "meta"}``:
    ``image`` is the image's own ``file_name`` under ``image_dir``, ``captions`` all its
    captions in annotation order (stripped), ``text`` the first of them and ``meta``
    ``{"image_id", "caption_ids"}`` plus ``coco_url``/``width``/``height`` when the image has
    them. Rows follow the order of ``images``; images without a caption are not rows.

    Args:
        captions_json: ``captions_train2014.json``, ``captions_val2017.json``, ...
        image_dir: folder the images' ``file_name`` values are relative to.
        out_manifest: manifest to write (paths in it are relative to its folder).
        split: manifest split of every row.
        on_error: ``"raise"`` stops at the first bad record; ``"skip"`` leaves bad records
            (an annotation of an unknown image, an empty caption, a malformed entry) out.

    Returns:
        rows written and the skipped records.

    Raises:
        ConversionError: the file is malformed, or a record is and ``on_error="raise"``.
    """
    check_split(split)
    problems = RecordProblems(on_error)
    source, out = Path(captions_json), Path(out_manifest)
    data = load_json(source)
    image_list = require(data, "images", list, str(source))
    annotations = require(data, "annotations", list, str(source))
    images = _parse_images(image_list, source, problems)
    _attach_captions(annotations, images, source, problems)
    rows = [_row(image, split, Path(image_dir), out) for image in images.values() if image.captions]
    write_jsonl_atomic(out, rows)
    return problems.result(len(rows))


def _row(image: _Image, split: str, image_dir: Path, out: Path) -> dict[str, Any]:
    return {
        "id": f"coco-{image.image_id}",
        "split": split,
        "image": relative(image_dir / image.file_name, out),
        "text": image.captions[0],
        "captions": image.captions,
        "meta": {"image_id": image.image_id, "caption_ids": image.caption_ids, **image.extra},
    }
