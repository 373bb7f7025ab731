"""Karpathy's retrieval splits (``dataset_coco.json``, ``dataset_flickr30k.json``)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from trimodal.data.converters.common import (
    ConversionError,
    ConversionResult,
    RecordProblems,
    caption_text,
    check_type,
    load_json,
    optional,
    relative,
    require,
)
from trimodal.data.manifest import OnError
from trimodal.io import write_jsonl_atomic

#: Karpathy split -> manifest split (``restval`` is the rest of COCO val2014, used to train).
KARPATHY_SPLITS: dict[str, str] = {
    "train": "train",
    "restval": "train",
    "val": "val",
    "test": "test",
}


def _chosen_splits(splits: str | Iterable[str]) -> set[str]:
    chosen = {splits} if isinstance(splits, str) else set(splits)
    unknown = sorted(chosen - set(KARPATHY_SPLITS))
    if unknown or not chosen:
        raise ValueError(
            f"unknown Karpathy split(s) {unknown} (choose one or more of "
            f"{', '.join(KARPATHY_SPLITS)})"
            if unknown
            else f"no Karpathy split chosen (choose one or more of {', '.join(KARPATHY_SPLITS)})"
        )
    return chosen


def _captions(image: dict[str, Any], where: str) -> list[str]:
    """The stripped ``raw`` text of every sentence of an image (at least one)."""
    sentences = require(image, "sentences", list, where)
    if not sentences:
        raise ConversionError(f"{where}.sentences: empty list")
    return [
        caption_text(
            require(s, "raw", str, f"{where}.sentences[{k}]"), f"{where}.sentences[{k}].raw"
        )
        for k, s in enumerate(sentences)
    ]


def _meta(image: dict[str, Any], dataset: str | None, split: str, where: str) -> dict[str, Any]:
    """``dataset``, ``imgid``, ``sentids`` and ``cocoid`` when present, ``karpathy_split``."""
    meta: dict[str, Any] = {} if dataset is None else {"dataset": dataset}
    meta["imgid"] = image["imgid"]
    sentids = optional(image, "sentids", list, where)
    if sentids is not None:
        meta["sentids"] = [
            check_type(s, int, f"{where}.sentids[{k}]") for k, s in enumerate(sentids)
        ]
    cocoid = optional(image, "cocoid", int, where)
    if cocoid is not None:
        meta["cocoid"] = cocoid
    meta["karpathy_split"] = split
    return meta


def _row(
    image: dict[str, Any], where: str, split: str, dataset: str | None, image_dir: Path, out: Path
) -> dict[str, Any]:
    """The manifest row of one Karpathy image entry (its ``imgid`` already checked)."""
    filename = require(image, "filename", str, where)
    filepath = optional(image, "filepath", str, where)
    folder = image_dir / filepath if filepath is not None else image_dir
    captions = _captions(image, where)
    meta = _meta(image, dataset, split, where)
    prefix = "karpathy" if dataset is None else f"karpathy-{dataset}"
    return {
        "id": f"{prefix}-{image['imgid']}",
        "split": KARPATHY_SPLITS[split],
        "image": relative(folder / filename, out),
        "text": captions[0],
        "captions": captions,
        "meta": meta,
    }


def karpathy_to_manifest(
    json_path: str | os.PathLike[str],
    image_dir: str | os.PathLike[str],
    out_manifest: str | os.PathLike[str],
    splits: str | Iterable[str] = ("test",),
    on_error: OnError = "raise",
) -> ConversionResult:
    """Convert a Karpathy split file into one row per image of the chosen split(s).

    The file is ``{"dataset": "coco" | "flickr30k" | "flickr8k", "images": [{"filepath"
    (COCO only), "filename", "imgid", "split", "sentences": [{"raw", "tokens", "imgid",
    "sentid"}], "sentids", "cocoid" (COCO only)}]}``. A row is ``{"id":
    "karpathy-<dataset>-<imgid>", "split", "image", "text", "captions", "meta"}``: ``image``
    is ``image_dir / filepath / filename`` (``filepath`` only when present), ``captions``
    every sentence's ``raw`` text (stripped), ``text`` the first, ``split`` the manifest split
    of the Karpathy split (:data:`KARPATHY_SPLITS`) and ``meta`` ``{"dataset", "imgid",
    "sentids", "cocoid" (when present), "karpathy_split"}``. Rows keep the file's order; only
    images of the chosen splits are read beyond their ``split``.

    Args:
        json_path: ``dataset_coco.json``, ``dataset_flickr30k.json`` or ``dataset_flickr8k.json``.
        image_dir: for COCO the folder holding ``train2014/`` and ``val2014/``; for Flickr the
            image folder itself.
        out_manifest: manifest to write (paths in it are relative to its folder).
        splits: Karpathy split names: ``train``, ``restval``, ``val``, ``test``.
        on_error: ``"raise"`` stops at the first bad image entry; ``"skip"`` leaves it out.

    Returns:
        rows written and the skipped records.

    Raises:
        ConversionError: the file is malformed, or an image entry is and ``on_error="raise"``.
        ValueError: an unknown split name.
    """
    chosen = _chosen_splits(splits)
    problems = RecordProblems(on_error)
    source, out = Path(json_path), Path(out_manifest)
    data = load_json(source)
    images = require(data, "images", list, str(source))
    dataset = optional(data, "dataset", str, str(source))
    rows: list[dict[str, Any]] = []
    seen: dict[int, int] = {}
    for i, image in enumerate(images):
        where = f"{source}: images[{i}]"
        try:
            split = require(image, "split", str, where)
            if split not in KARPATHY_SPLITS:
                raise ConversionError(
                    f"{where}.split: unknown Karpathy split {split!r} "
                    f"(expected one of {', '.join(KARPATHY_SPLITS)})"
                )
            if split not in chosen:
                continue
            imgid = require(image, "imgid", int, where)
            if imgid in seen:
                raise ConversionError(
                    f"{where}.imgid: duplicate imgid {imgid} (also images[{seen[imgid]}])"
                )
            row = _row(image, where, split, dataset, Path(image_dir), out)
        except ConversionError as error:
            problems.add(error)
            continue
        seen[imgid] = i
        rows.append(row)
    write_jsonl_atomic(out, rows)
    return problems.result(len(rows))
