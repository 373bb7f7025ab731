"""The search gallery: every item of a manifest embedded into the shared space, one FAISS
index per modality, built by ``trimodal index`` and searched by ``POST /v1/search``.

A gallery of at most :data:`EXACT_LIMIT` vectors is searched exactly (``IndexFlatIP``: inner
product of L2-normalized vectors = cosine); a larger one through HNSW (``IndexHNSWFlat``), whose
recall against exact search ``benchmarks/search_index.py`` measures (docs/serving.md).

Folder layout::

    gallery.json           what was indexed: checkpoint fingerprint, dimension, counts
    <modality>.faiss       the index
    <modality>.jsonl       one item per vector, in index order: id, file, text
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import torch

from trimodal.data.manifest import Sample, load_manifest
from trimodal.inference import Model
from trimodal.models.checkpoint import write_directory_atomically

EXACT_LIMIT = 50_000
"""Galleries up to this size are searched exactly (see the module docstring)."""
HNSW_NEIGHBOURS = 32
HNSW_BUILD_DEPTH = 80
HNSW_SEARCH_DEPTH = 128
EMBED_BATCH = 64


def model_fingerprint(model: Model) -> str:
    """SHA-256 (16 hex digits) of the checkpoint's weights: a gallery only serves its model."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.network.state_dict().items()):
        digest.update(name.encode())
        digest.update(
            tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
        )
    return digest.hexdigest()[:16]


def new_index(vectors: np.ndarray, exact_limit: int = EXACT_LIMIT) -> faiss.Index:
    """An inner-product index over L2-normalized ``vectors [N, E]``: exact up to
    ``exact_limit`` rows, HNSW above."""
    dimension = vectors.shape[1]
    index: faiss.Index
    if len(vectors) <= exact_limit:
        index = faiss.IndexFlatIP(dimension)
    else:
        hnsw = faiss.IndexHNSWFlat(dimension, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = HNSW_BUILD_DEPTH
        hnsw.hnsw.efSearch = HNSW_SEARCH_DEPTH
        index = hnsw
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def index_kind(index: faiss.Index) -> str:
    """``exact`` or ``hnsw``."""
    return "hnsw" if isinstance(index, faiss.IndexHNSW) else "exact"


@dataclass(frozen=True)
class Hit:
    """One search result: the item's modality, its row in that index, the cosine score and
    what the gallery knows of it (``id``, ``file``, ``text``)."""

    modality: str
    row: int
    score: float
    item: dict[str, Any]


class Gallery:
    """A loaded gallery folder (see the module docstring)."""

    def __init__(
        self,
        folder: Path,
        info: dict[str, Any],
        indexes: dict[str, faiss.Index],
        items: dict[str, list[dict[str, Any]]],
    ):
        self.folder = folder
        self.info = info
        self.indexes = indexes
        self.items = items

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> Gallery:
        """Read ``gallery.json`` and each modality's index and items."""
        root = Path(folder)
        summary = root / "gallery.json"
        if not summary.is_file():
            raise FileNotFoundError(f"no gallery at {root} (build one with `trimodal index`)")
        info = json.loads(summary.read_text())
        indexes, items = {}, {}
        for modality in info["modalities"]:
            indexes[modality] = faiss.read_index(str(root / f"{modality}.faiss"))
            with (root / f"{modality}.jsonl").open() as lines:
                items[modality] = [json.loads(line) for line in lines]
            if len(items[modality]) != indexes[modality].ntotal:
                raise ValueError(f"gallery {root}: {modality}.jsonl and {modality}.faiss disagree")
        return cls(root, info, indexes, items)

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modalities with an index."""
        return tuple(self.indexes)

    def search(
        self, query: np.ndarray, k: int, modalities: Sequence[str] | None = None
    ) -> list[Hit]:
        """The ``k`` best items for a normalized ``query [E]`` over the chosen modalities
        (all by default), best first."""
        hits: list[Hit] = []
        for modality in modalities or self.modalities:
            index = self.indexes[modality]
            scores, rows = index.search(
                query.reshape(1, -1).astype(np.float32), min(k, index.ntotal)
            )
            for score, row in zip(scores[0].tolist(), rows[0].tolist(), strict=True):
                if row >= 0:
                    hits.append(Hit(modality, row, float(score), self.items[modality][row]))
        hits.sort(key=lambda hit: -hit.score)
        return hits[:k]

    def file_of(self, modality: str, row: int) -> Path | None:
        """The media file of an item (for thumbnails), or None."""
        if modality not in self.items or not 0 <= row < len(self.items[modality]):
            return None
        name = self.items[modality][row].get("file")
        return None if name is None else Path(name)


def _embed(model: Model, modality: str, samples: list[Sample]) -> np.ndarray:
    """``[N, E]`` float32 embeddings of the samples' ``modality``, in batches."""
    chunks = []
    for start in range(0, len(samples), EMBED_BATCH):
        part = samples[start : start + EMBED_BATCH]
        if modality == "image":
            vectors = model.embed_images([s.image for s in part if s.image is not None])
        elif modality == "audio":
            vectors = model.embed_audio([s.audio for s in part if s.audio is not None])
        elif modality == "text":
            vectors = model.embed_texts([s.text for s in part if s.text is not None])
        else:
            vectors = model.embed_media(modality, [s.media[modality] for s in part])
        chunks.append(vectors.to(torch.float32).cpu().numpy())
    return np.concatenate(chunks)


def _has(sample: Sample, modality: str) -> bool:
    if modality in ("image", "audio", "text"):
        return getattr(sample, modality) is not None
    return modality in sample.media


def _item(sample: Sample, modality: str) -> dict[str, Any]:
    item: dict[str, Any] = {"id": sample.id, "split": sample.split}
    if sample.text is not None:
        item["text"] = sample.text
    path = (
        sample.media.get(modality)
        if modality not in ("image", "audio", "text")
        else getattr(sample, modality)
    )
    if isinstance(path, Path):
        item["file"] = str(path.resolve())
    if modality == "text" and sample.image is not None:
        item["image_file"] = str(sample.image.resolve())
    return item


def build_gallery(
    model: Model,
    manifest: str | os.PathLike[str],
    out: str | os.PathLike[str],
    splits: Sequence[str] | None = None,
    exact_limit: int = EXACT_LIMIT,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Embed every item of ``manifest`` (optionally only ``splits``) and write the gallery
    folder ``out`` atomically (a staging folder renamed into place). Returns ``gallery.json``."""
    loaded = load_manifest(manifest, check_files="exists")
    samples = loaded.split(*splits) if splits else loaded.samples
    info: dict[str, Any] = {
        "manifest": str(Path(manifest).resolve()),
        "fingerprint": model_fingerprint(model),
        "dimension": int(model.network.config.model.embed_dim),
        "modalities": {},
    }

    def write(staging: Path) -> None:
        with torch.no_grad():
            for modality in model.network.encoders:
                chosen = [s for s in samples if _has(s, modality)]
                if not chosen:
                    continue
                if progress:
                    progress(f"embedding {len(chosen)} {modality} items")
                index = new_index(_embed(model, modality, chosen), exact_limit)
                faiss.write_index(index, str(staging / f"{modality}.faiss"))
                with (staging / f"{modality}.jsonl").open("w") as lines:
                    for sample in chosen:
                        lines.write(json.dumps(_item(sample, modality)) + "\n")
                info["modalities"][modality] = {"count": len(chosen), "index": index_kind(index)}
        if not info["modalities"]:
            raise ValueError(f"{manifest}: no items of this model's modalities to index")
        (staging / "gallery.json").write_text(json.dumps(info, indent=2) + "\n")

    write_directory_atomically(Path(out), write)
    return info
