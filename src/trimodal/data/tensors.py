"""Decoded, tensorized manifests held in memory for fast training and evaluation.

Decoding PNGs and computing log-mels on every step would cost more than the model on a 2-core
machine, so a manifest is decoded once into :class:`SceneTensors` (images as uint8, text as
padded ids, log-mel as a ragged float16 array with offsets) and cached next to the manifest in
a safetensors file keyed by the manifest's bytes and the preprocessing settings. Batches are
then plain index gathers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from trimodal.config import Config
from trimodal.data.manifest import Manifest, ManifestIssue, Sample
from trimodal.data.tokenizer import TextTokenizer
from trimodal.data.transforms import (
    ImageTransform,
    LogMel,
    load_audio,
    max_audio_seconds,
    open_image,
)
from trimodal.io import cache_root
from trimodal.modalities import StoredModality, get_modality, stored_modalities
from trimodal.world.motion import MOTION_CLASSES

CACHE_VERSION = 5
COUNT_WORDS = ("one", "two", "three")


def attribute_names(scene_samples: Sequence[Sample]) -> list[str]:
    """Attribute labels for the scene-attribute task: every colour, shape, size and object count."""
    colors, shapes, sizes = set(), set(), set()
    for sample in scene_samples:
        for obj in (sample.scene or {}).get("objects", []):
            colors.add(obj["color"])
            shapes.add(obj["shape"])
            sizes.add(obj["size"])
    names = [f"color:{c}" for c in sorted(colors)] + [f"shape:{s}" for s in sorted(shapes)]
    names += [f"size:{s}" for s in sorted(sizes)]
    return names + [f"count:{c}" for c in COUNT_WORDS] if names else []


OBJECT_GROUPS = ("color", "shape", "size")


def attribute_groups(attributes: Sequence[str]) -> dict[str, list[str]]:
    """The colour, shape and size values among attribute names (``"shape:star"`` -> star)."""
    groups: dict[str, list[str]] = {group: [] for group in OBJECT_GROUPS}
    for name in attributes:
        group, _, value = name.partition(":")
        if group in groups:
            groups[group].append(value)
    return groups


def content_groups(keys: Sequence[str], device: torch.device | None = None) -> torch.Tensor:
    """Integer id per distinct content key ``[N]`` (equal ids = same content), on ``device``
    (default: the CPU)."""
    index: dict[str, int] = {}
    ids = [index.setdefault(key, len(index)) for key in keys]
    return torch.tensor(ids, dtype=torch.long, device=device or torch.device("cpu"))


def content_key(sample: Sample) -> str:
    """What a caption says, canonically: equal keys mean retrieval counts either item as a hit.

    From the scene graph: the sorted object phrases and every pairwise relation; without a
    scene graph: the lower-cased, whitespace-normalized text.
    """
    scene = sample.scene
    if scene and "objects" in scene:
        motions = scene.get("motions") or [None] * len(scene["objects"])
        phrases = [_object_key(o, m) for o, m in zip(scene["objects"], motions, strict=False)]
        relations = sorted(
            f"{phrases[r['subject']]}|{r['relation']}|{phrases[r['object']]}"
            for r in scene.get("relations", [])
        )
        return json.dumps([sorted(phrases), relations])
    return " ".join((sample.text or sample.id).lower().split())


def _object_key(obj: Mapping[str, Any], motion: Any = None) -> str:
    """An object's size, colour and shape, and its motion where the scene has one."""
    phrase = f"{obj['size']} {obj['color']} {obj['shape']}"
    return f"{phrase} moving {motion}" if motion is not None else phrase


@dataclass
class MediaStore:
    """Decoded rows of one stored modality: ``data [N, ...]`` (one fixed shape a row, zeros
    where absent) and ``present [N]`` bool."""

    data: torch.Tensor
    present: torch.Tensor

    def subset(self, rows: torch.Tensor) -> MediaStore:
        """The rows ``rows`` (in that order) as a new store."""
        return MediaStore(self.data[rows], self.present[rows])

    def to(self, device: torch.device) -> MediaStore:
        """The same store on ``device``."""
        return MediaStore(self.data.to(device), self.present.to(device))

    @staticmethod
    def decode(
        modality: StoredModality, paths: Sequence[Path | None], config: Config
    ) -> MediaStore:
        """Decode every path (None: the row lacks the modality) with ``modality``."""
        rows = [None if p is None else modality.decode(p, config) for p in paths]
        example = next(r for r in rows if r is not None)
        data = torch.zeros(len(rows), *example.shape, dtype=example.dtype)
        for index, row in enumerate(rows):
            if row is not None:
                data[index] = row
        return MediaStore(data, torch.tensor([r is not None for r in rows], dtype=torch.bool))


@dataclass
class RaggedAudio:
    """Log-mel clips of varying length: ``frames [total, n_mels]`` f16, ``offsets [N+1]``.

    Row ``i`` is ``frames[offsets[i]:offsets[i+1]]``; an empty row means no audio.
    """

    frames: torch.Tensor
    offsets: torch.Tensor

    def lengths(self) -> torch.Tensor:
        """Frames per row ``[N]``."""
        return self.offsets[1:] - self.offsets[:-1]

    def batch(
        self, rows: torch.Tensor, max_frames: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded features ``[B, n_mels, F]`` (float32) and frame mask ``[B, F]`` for ``rows``,
        on the store's device (one gather; the padded length is the batch's one host read)."""
        rows = rows.to(self.offsets.device)
        lengths = self.lengths()[rows]
        if max_frames is not None:
            lengths = lengths.clamp(max=max_frames)
        longest = int(lengths.max()) if len(rows) else 0
        frame = torch.arange(longest, device=self.frames.device)
        mask = frame[None, :] < lengths[:, None]
        if not len(self.frames):
            return torch.zeros(len(rows), self.frames.shape[1], longest, device=frame.device), mask
        index = (self.offsets[rows][:, None] + frame[None, :]).clamp(max=len(self.frames) - 1)
        out = self.frames[index].float() * mask[..., None]
        return out.transpose(1, 2), mask

    def to(self, device: torch.device) -> RaggedAudio:
        """The same clips on ``device``."""
        return RaggedAudio(self.frames.to(device), self.offsets.to(device))

    def subset(self, rows: torch.Tensor) -> RaggedAudio:
        """The clips of ``rows`` (in that order) as a new ragged array."""
        return RaggedAudio.from_rows(
            [self.frames[int(self.offsets[r]) : int(self.offsets[r + 1])] for r in rows.tolist()],
            self.frames.shape[1],
            self.frames.device,
        )

    @staticmethod
    def from_rows(
        rows: Sequence[torch.Tensor | None], n_mels: int, device: torch.device | None = None
    ) -> RaggedAudio:
        """Stack per-row ``[F_i, n_mels]`` features (None or empty: no audio) into one array
        on ``device`` (default: the CPU)."""
        device = device or torch.device("cpu")
        lengths = [0 if r is None else r.shape[0] for r in rows]
        offsets = torch.zeros(len(rows) + 1, dtype=torch.long, device=device)
        offsets[1:] = torch.cumsum(torch.tensor(lengths, dtype=torch.long, device=device), 0)
        parts = [r.to(device, torch.float16) for r in rows if r is not None and r.shape[0]]
        empty = torch.zeros(0, n_mels, dtype=torch.float16, device=device)
        # Stored rows are float16; CPU autocast (bf16) refuses to promote them in a cat.
        with torch.autocast(device.type, enabled=False):
            return RaggedAudio(torch.cat(parts) if parts else empty, offsets)


@dataclass
class SceneTensors:
    """A manifest decoded into tensors (``N`` samples, up to ``Q`` questions each).

    Attributes:
        images: ``[N, 3, S, S]`` uint8 (zeros where ``has_image`` is False).
        caption_ids / caption_mask: ``[N, L]`` ids and mask (all-False rows have no text).
        caption_audio: ragged log-mel of each sample's audio.
        question_ids / question_mask: ``[N, Q, Lq]``.
        answers: ``[N, Q]`` index into ``answer_vocab`` (-1: no question or unknown answer).
        human_answers: per row, per question, the annotators' answers (empty where the manifest
            gives none); VQA is scored with the official accuracy wherever they exist.
        spoken_audio: ragged log-mel of spoken questions; ``spoken_index [N]`` says which
            question it speaks (-1: none).
        attributes: ``[N, A]`` multi-hot scene attributes (``has_scene`` False rows unused).
        object_boxes: ``[N, K, 3]`` each object's centre ``x, y`` and ``radius`` as fractions of
            the image side (rows padded to the most objects ``K``; see ``object_labels``).
        object_labels: ``[N, K, 3]`` each object's colour, shape and size as an index into
            :func:`attribute_groups` (-1: padding, or a value the vocabulary lacks).
        object_motions: ``[N, K]`` each object's motion over the row's clip as an index into
            :data:`~trimodal.world.motion.MOTION_CLASSES` (-1: padding, or no motion recorded).
        media: one :class:`MediaStore` per stored modality the manifest carries (``video``),
            decoded only for a model that has the modality's encoder.
    """

    ids: list[str]
    splits: list[str]
    content_keys: list[str]
    families: list[list[str]]
    human_answers: list[list[list[str]]]
    images: torch.Tensor
    has_image: torch.Tensor
    caption_ids: torch.Tensor
    caption_mask: torch.Tensor
    caption_audio: RaggedAudio
    question_ids: torch.Tensor
    question_mask: torch.Tensor
    answers: torch.Tensor
    spoken_audio: RaggedAudio
    spoken_index: torch.Tensor
    attributes: torch.Tensor
    has_scene: torch.Tensor
    object_boxes: torch.Tensor
    object_labels: torch.Tensor
    object_motions: torch.Tensor
    media: dict[str, MediaStore] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, rows: torch.Tensor) -> SceneTensors:
        """A new store holding only ``rows`` (in that order); row ``i`` is old ``rows[i]``."""
        picked = rows.tolist()
        return SceneTensors(
            ids=[self.ids[r] for r in picked],
            splits=[self.splits[r] for r in picked],
            content_keys=[self.content_keys[r] for r in picked],
            families=[self.families[r] for r in picked],
            human_answers=[self.human_answers[r] for r in picked],
            images=self.images[rows],
            has_image=self.has_image[rows],
            caption_ids=self.caption_ids[rows],
            caption_mask=self.caption_mask[rows],
            caption_audio=self.caption_audio.subset(rows),
            question_ids=self.question_ids[rows],
            question_mask=self.question_mask[rows],
            answers=self.answers[rows],
            spoken_audio=self.spoken_audio.subset(rows),
            spoken_index=self.spoken_index[rows],
            attributes=self.attributes[rows],
            has_scene=self.has_scene[rows],
            object_boxes=self.object_boxes[rows],
            object_labels=self.object_labels[rows],
            object_motions=self.object_motions[rows],
            media={name: store.subset(rows) for name, store in self.media.items()},
        )

    def to(self, device: torch.device) -> SceneTensors:
        """The same store with every tensor on ``device`` (training moves it once, so a step
        gathers its batch where the model runs)."""
        moved: dict[str, Any] = {
            name: value.to(device)
            for name, value in vars(self).items()
            if isinstance(value, torch.Tensor | RaggedAudio)
        }
        moved["media"] = {name: store.to(device) for name, store in self.media.items()}
        return dataclasses.replace(self, **moved)

    def rows_in(self, *splits: str) -> torch.Tensor:
        """Indices of samples in ``splits``."""
        rows = [i for i, s in enumerate(self.splits) if s in splits]
        return torch.tensor(rows, dtype=torch.long, device=self.has_image.device)

    @property
    def has_text(self) -> torch.Tensor:
        """``[N]`` bool."""
        return self.caption_mask.any(-1)

    @property
    def has_audio(self) -> torch.Tensor:
        """``[N]`` bool."""
        return self.caption_audio.lengths() > 0

    def has(self, modality: str) -> torch.Tensor:
        """``[N]`` bool: which samples carry ``modality`` (``image``, ``text``, ``audio`` or a
        stored modality of :attr:`media`)."""
        present = {"image": self.has_image, "text": self.has_text, "audio": self.has_audio}
        present |= {name: store.present for name, store in self.media.items()}
        if modality not in present:
            raise ValueError(f"unknown modality {modality!r}; expected one of {tuple(present)}")
        return present[modality]

    @property
    def modalities(self) -> tuple[str, ...]:
        """Every modality this store can say :meth:`has` of."""
        return ("image", "text", "audio", *self.media)

    def batch(self, modality: str, rows: torch.Tensor, config: Config) -> tuple[Any, ...]:
        """The encoder inputs of a stored modality's ``rows`` (see :meth:`StoredModality.inputs`)."""
        if modality not in self.media:
            raise ValueError(
                f"this manifest's tensors have no {modality!r} store (stored: {tuple(self.media)})"
            )
        stored = get_modality(modality)
        assert isinstance(stored, StoredModality)
        return stored.inputs(self.media[modality].data[rows], config)


def _fingerprint(
    manifest: Manifest,
    tokenizer: TextTokenizer,
    answers: Sequence[str],
    image_size: int,
    n_mels: int,
) -> str:
    digest = hashlib.sha256()
    digest.update(manifest.path.read_bytes())
    digest.update(tokenizer.tokenizer.to_str().encode())
    digest.update(json.dumps([list(answers), image_size, n_mels, CACHE_VERSION]).encode())
    digest.update(json.dumps(_media_stats(manifest)).encode())
    return digest.hexdigest()[:20]


def _media_stats(manifest: Manifest) -> list[tuple[str, int, int]]:
    """``(path, size, modification time ns)`` of every media file the manifest names, so that a
    file replaced on disk (same manifest bytes) makes a new cache key; ``-1`` for a missing
    file."""
    stats = []
    for sample in manifest.samples:
        paths = [sample.image, sample.audio, *(q.spoken_question for q in sample.questions)]
        for path in [*paths, *sample.media.values()]:
            if path is None:
                continue
            try:
                info = path.stat()
                stats.append((str(path), info.st_size, info.st_mtime_ns))
            except OSError:
                stats.append((str(path), -1, -1))
    return stats


def _ragged_logmel(
    paths: list[Path | None],
    log_mel: LogMel,
    places: Sequence[ManifestIssue | None] | None = None,
) -> RaggedAudio:
    """Compute log-mel for every path (None -> empty row); a clip that cannot be read is a
    ValueError reported as its ``places`` entry (``MANIFEST:LINE: field '...': ...``)."""
    longest = max_audio_seconds(log_mel)
    waves: list[torch.Tensor | None] = []
    for index, path in enumerate(paths):
        if path is None:
            waves.append(None)
            continue
        try:
            waves.append(load_audio(path, log_mel.sample_rate, longest))
        except ValueError as error:
            place = None if places is None else places[index]
            if place is None:
                raise
            raise ValueError(str(dataclasses.replace(place, message=str(error)))) from error
    return logmel_of_waves(waves, log_mel)


def _place(manifest: Manifest, sample: Sample, field: str) -> ManifestIssue:
    """Where a sample's field is written (its message is filled in when reading it fails)."""
    return ManifestIssue(str(manifest.path), sample.line, field, "")


def logmel_of_waves(
    waveforms: Sequence[torch.Tensor | None], log_mel: LogMel, chunk: int = 256
) -> RaggedAudio:
    """Log-mel of 1-D waveforms at ``log_mel.sample_rate`` (None -> empty row), as ragged rows.

    STFTs are batched over clips of similar length, so padding stays small.
    """
    features: list[torch.Tensor | None] = [None] * len(waveforms)
    waves = {i: w for i, w in enumerate(waveforms) if w is not None}
    order = sorted(waves, key=lambda i: waves[i].shape[0])
    with torch.no_grad():
        for start in range(0, len(order), chunk):
            group = order[start : start + chunk]
            clips = [waves[i] for i in group]
            longest = max(clip.shape[0] for clip in clips)
            stacked = torch.zeros(len(group), longest, device="cpu")
            for row, clip in enumerate(clips):
                stacked[row, : clip.shape[0]] = clip
            mels = log_mel(stacked)  # (G, n_mels, F)
            for row, (i, clip) in enumerate(zip(group, clips, strict=True)):
                count = log_mel.frames(clip.shape[0])
                features[i] = mels[row, :, :count].T.to(torch.float16)
    return RaggedAudio.from_rows(features, log_mel.n_mels)


def pad_ids(
    sequences: Sequence[Sequence[int]], length: int, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``ids [N, L]`` and ``mask [N, L]``, each sequence cut to ``length``
    (``L = max(1, length)``)."""
    ids = torch.full((len(sequences), max(1, length)), pad_id, dtype=torch.long)
    mask = torch.zeros(len(sequences), max(1, length), dtype=torch.bool)
    for row, sequence in enumerate(sequences):
        cut = list(sequence[:length])
        ids[row, : len(cut)] = torch.tensor(cut, dtype=torch.long)
        mask[row, : len(cut)] = True
    return ids, mask


def pad_to_longest(
    sequences: Sequence[Sequence[int]], max_length: int, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`pad_ids` to the longest sequence, cut at ``max_length``: ids and mask ``[N, L]``."""
    longest = max((len(ids) for ids in sequences), default=1)
    return pad_ids(sequences, min(max_length, longest), pad_id)


def tokenized(
    tokenizer: TextTokenizer, texts: Sequence[str], max_length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``texts`` encoded and right-padded to the longest (at most ``max_length``): ids and mask
    ``[N, L]``."""
    encoded = tokenizer.encode_batch(list(texts)) if texts else []
    return pad_to_longest(encoded, max_length, tokenizer.pad_id)


def row_index_table(per_row: Mapping[int, Sequence[int]], rows: int) -> torch.Tensor:
    """``[rows, K]`` table: row ``r`` lists ``per_row[r]`` then ``-1`` padding (all ``-1`` for a
    row not in ``per_row``); ``K`` is the longest list (at least 1)."""
    width = max((len(v) for v in per_row.values()), default=1)
    table = torch.full((rows, width), -1, dtype=torch.long)
    for row, indices in per_row.items():
        table[row, : len(indices)] = torch.tensor(list(indices), dtype=torch.long)
    return table


def _attribute_matrix(
    samples: Sequence[Sample], names: Sequence[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    index = {name: i for i, name in enumerate(names)}
    matrix = torch.zeros(len(samples), len(names))
    has_scene = torch.zeros(len(samples), dtype=torch.bool)
    for row, sample in enumerate(samples):
        objects = (sample.scene or {}).get("objects")
        if not objects or not names:
            continue
        has_scene[row] = True
        for obj in objects:
            for key in (f"color:{obj['color']}", f"shape:{obj['shape']}", f"size:{obj['size']}"):
                if key in index:
                    matrix[row, index[key]] = 1.0
        count = f"count:{COUNT_WORDS[min(len(objects), 3) - 1]}"
        matrix[row, index[count]] = 1.0
    return matrix, has_scene


def _object_tables(
    samples: Sequence[Sample], attributes: Sequence[str]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``object_boxes [N, K, 3]``, ``object_labels [N, K, 3]`` and ``object_motions [N, K]``
    (see :class:`SceneTensors`).

    Objects without a position (``x``, ``y``, ``radius``) are left out: they can't be placed.
    A scene's ``motions`` (one per object, in object order) give the objects' motions.
    """
    index = {g: {v: i for i, v in enumerate(vs)} for g, vs in attribute_groups(attributes).items()}
    motion_index = {m: i for i, m in enumerate(MOTION_CLASSES)}
    placed = [_placed_objects(s.scene or {}) for s in samples]
    most = max(1, max(map(len, placed), default=0))
    boxes = torch.zeros(len(samples), most, 3)
    labels = torch.full((len(samples), most, 3), -1, dtype=torch.long)
    motions = torch.full((len(samples), most), -1, dtype=torch.long)
    for row, objects in enumerate(placed):
        for k, (obj, motion) in enumerate(objects):
            boxes[row, k] = torch.tensor([float(obj["x"]), float(obj["y"]), float(obj["radius"])])
            labels[row, k] = torch.tensor(
                [index[g].get(str(obj.get(g)), -1) for g in OBJECT_GROUPS]
            )
            motions[row, k] = motion_index.get(str(motion), -1)
    return boxes, labels, motions


def _placed_objects(scene: Mapping[str, Any]) -> list[tuple[Mapping[str, Any], Any]]:
    """A scene graph's objects that have a position, each with its motion (None if the scene
    records no motions)."""
    objects = scene.get("objects", [])
    motions = scene.get("motions") or [None] * len(objects)
    return [
        (obj, motion)
        for obj, motion in zip(objects, motions, strict=False)
        if {"x", "y", "radius"} <= obj.keys()
    ]


def _warn_truncated(
    kind: str, sequences: Sequence[Sequence[int]], limit: int, source: Path
) -> None:
    cut = sum(len(sequence) > limit for sequence in sequences)
    if cut:
        longest = max(len(sequence) for sequence in sequences)
        warnings.warn(
            f"{source}: {cut} {kind} longer than {limit} tokens (longest {longest}) are truncated; "
            "raise model.text.max_length or data.vocab_size",
            stacklevel=3,
        )


def uint8_image(path: Path, transform: ImageTransform) -> torch.Tensor:
    """An image file decoded (and checked, :func:`~trimodal.data.transforms.open_image`) to
    uint8 ``[3, S, S]`` at the transform's size, skipping float conversion when no resize is
    needed."""
    rgb = open_image(path)
    if rgb.size != (transform.size, transform.size):
        return (transform.load(rgb) * 255).round().to(torch.uint8)
    return torch.from_numpy(np.asarray(rgb, dtype=np.uint8).copy()).permute(2, 0, 1)


def build_scene_tensors(
    manifest: Manifest,
    tokenizer: TextTokenizer,
    answers: Sequence[str],
    attributes: Sequence[str],
    image_size: int = 64,
    n_mels: int = 64,
    max_text_length: int = 48,
    config: Config | None = None,
) -> SceneTensors:
    """Decode every sample of ``manifest`` (see :class:`SceneTensors`); the stored modalities
    that ``config``'s model has encoders for go into :attr:`SceneTensors.media`."""
    samples = manifest.samples
    transform = ImageTransform(size=image_size)
    images = torch.zeros(len(samples), 3, image_size, image_size, dtype=torch.uint8)
    has_image = torch.zeros(len(samples), dtype=torch.bool)
    for row, sample in enumerate(samples):
        if sample.image is not None:
            try:
                images[row] = uint8_image(sample.image, transform)
            except ValueError as error:
                issue = dataclasses.replace(_place(manifest, sample, "image"), message=str(error))
                raise ValueError(str(issue)) from error
            has_image[row] = True
    captions = [tokenizer.encode(s.text) if s.text is not None else [] for s in samples]
    caption_ids, caption_mask = pad_to_longest(captions, max_text_length, tokenizer.pad_id)
    _warn_truncated("captions", captions, max_text_length, manifest.path)
    questions_per_row = max((len(s.questions) for s in samples), default=0)
    answer_index = {a: i for i, a in enumerate(answers)}
    texts = [[q.question for q in s.questions] for s in samples]
    flat = tokenizer.encode_batch([t for row in texts for t in row]) if any(texts) else []
    _warn_truncated("questions", flat, max_text_length, manifest.path)
    longest = min(max_text_length, max(map(len, flat), default=1))
    question_ids = torch.full(
        (len(samples), max(1, questions_per_row), max(1, longest)),
        tokenizer.pad_id,
        dtype=torch.long,
    )
    question_mask = torch.zeros(question_ids.shape, dtype=torch.bool)
    answer_ids = torch.full((len(samples), max(1, questions_per_row)), -1, dtype=torch.long)
    spoken_index = torch.full((len(samples),), -1, dtype=torch.long)
    spoken_paths: list[Path | None] = [None] * len(samples)
    spoken_places: list[ManifestIssue | None] = [None] * len(samples)
    cursor = 0
    for row, sample in enumerate(samples):
        for q, question in enumerate(sample.questions):
            ids = flat[cursor][:longest]
            cursor += 1
            question_ids[row, q, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            question_mask[row, q, : len(ids)] = True
            answer_ids[row, q] = answer_index.get(question.answer, -1)
            if question.spoken_question is not None and spoken_index[row] < 0:
                spoken_index[row] = q
                spoken_paths[row] = question.spoken_question
                spoken_places[row] = _place(manifest, sample, f"questions[{q}].spoken_question")
    log_mel = LogMel(n_mels=n_mels)
    attribute_matrix, has_scene = _attribute_matrix(samples, attributes)
    object_boxes, object_labels, object_motions = _object_tables(samples, attributes)
    return SceneTensors(
        ids=[s.id for s in samples],
        splits=[s.split for s in samples],
        content_keys=[content_key(s) for s in samples],
        families=[[q.family or "" for q in s.questions] for s in samples],
        human_answers=[[list(q.human_answers) for q in s.questions] for s in samples],
        images=images,
        has_image=has_image,
        caption_ids=caption_ids,
        caption_mask=caption_mask,
        caption_audio=_ragged_logmel(
            [s.audio for s in samples],
            log_mel,
            [_place(manifest, s, "audio") for s in samples],
        ),
        question_ids=question_ids,
        question_mask=question_mask,
        answers=answer_ids,
        spoken_audio=_ragged_logmel(spoken_paths, log_mel, spoken_places),
        spoken_index=spoken_index,
        attributes=attribute_matrix,
        has_scene=has_scene,
        object_boxes=object_boxes,
        object_labels=object_labels,
        object_motions=object_motions,
        media=_media_stores(samples, config),
    )


def _media_stores(samples: Sequence[Sample], config: Config | None) -> dict[str, MediaStore]:
    """A store per stored modality that ``config`` enables and some sample carries."""
    if config is None:
        return {}
    return {
        modality.name: MediaStore.decode(
            modality, [s.media.get(modality.name) for s in samples], config
        )
        for modality in stored_modalities(config)
        if any(modality.name in s.media for s in samples)
    }


def _media_key(config: Config | None) -> list[str]:
    """The decode settings of the stored modalities ``config`` enables (for the cache key)."""
    return [] if config is None else [m.cache_key(config) for m in stored_modalities(config)]


_TENSOR_FIELDS = (
    "images",
    "has_image",
    "caption_ids",
    "caption_mask",
    "question_ids",
    "question_mask",
    "answers",
    "spoken_index",
    "attributes",
    "has_scene",
    "object_boxes",
    "object_labels",
    "object_motions",
)


def save_scene_tensors(tensors: SceneTensors, path: Path) -> None:
    """Write to a safetensors file atomically (strings go in its metadata)."""
    data = {name: getattr(tensors, name).contiguous() for name in _TENSOR_FIELDS}
    data |= {
        "caption_audio.frames": tensors.caption_audio.frames.contiguous(),
        "caption_audio.offsets": tensors.caption_audio.offsets,
        "spoken_audio.frames": tensors.spoken_audio.frames.contiguous(),
        "spoken_audio.offsets": tensors.spoken_audio.offsets,
    }
    for name, store in tensors.media.items():
        data |= {
            f"media.{name}.data": store.data.contiguous(),
            f"media.{name}.present": store.present,
        }
    metadata = {
        "strings": json.dumps(
            {
                "ids": tensors.ids,
                "splits": tensors.splits,
                "content_keys": tensors.content_keys,
                "families": tensors.families,
                "human_answers": tensors.human_answers,
            }
        )
    }
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(data, str(temporary), metadata=metadata)
    os.replace(temporary, path)


def load_scene_tensors(path: Path) -> SceneTensors:
    """Inverse of :func:`save_scene_tensors`."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    strings: dict[str, Any] = json.loads(metadata["strings"])
    data = load_file(str(path))
    tensors: dict[str, Any] = {name: data[name] for name in _TENSOR_FIELDS}
    return SceneTensors(
        **strings,
        **tensors,
        caption_audio=RaggedAudio(data["caption_audio.frames"], data["caption_audio.offsets"]),
        spoken_audio=RaggedAudio(data["spoken_audio.frames"], data["spoken_audio.offsets"]),
        media={
            key.split(".")[1]: MediaStore(data[key], data[key.replace(".data", ".present")])
            for key in data
            if key.startswith("media.") and key.endswith(".data")
        },
    )


def cached_scene_tensors(
    manifest: Manifest,
    tokenizer: TextTokenizer,
    answers: Sequence[str],
    attributes: Sequence[str],
    image_size: int = 64,
    n_mels: int = 64,
    cache_dir: Path | None = None,
    max_text_length: int = 48,
    config: Config | None = None,
) -> SceneTensors:
    """:func:`build_scene_tensors`, cached in ``cache_dir`` (default: ``<manifest dir>/.cache``,
    or the user cache folder ``$TRIMODAL_CACHE/tensors`` where the dataset is read-only).

    The key covers the manifest's bytes, the tokenizer, the settings and every media file's
    size and modification time: replacing a file on disk rebuilds the cache.
    """
    key = _fingerprint(
        manifest,
        tokenizer,
        [*answers, "|", *attributes, f"max_text={max_text_length}", *_media_key(config)],
        image_size,
        n_mels,
    )
    folders = [cache_dir] if cache_dir else [manifest.root / ".cache", cache_root() / "tensors"]
    name = f"tensors-{key}.safetensors"
    for folder in folders:
        if (folder / name).is_file():
            return load_scene_tensors(folder / name)
    tensors = build_scene_tensors(
        manifest, tokenizer, answers, attributes, image_size, n_mels, max_text_length, config
    )
    _save_in_first_writable(tensors, [folder / name for folder in folders])
    return tensors


def _save_in_first_writable(tensors: SceneTensors, paths: list[Path]) -> None:
    """Save to the first path whose folder can be written; warn (and keep going) if none can."""
    problems = []
    for path in paths:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_scene_tensors(tensors, path)
            return
        except OSError as error:
            problems.append(f"{path.parent}: {error.strerror or error}")
    warnings.warn(
        "the tensor cache could not be written (" + "; ".join(problems) + "); the decoded "
        "tensors will be rebuilt next time",
        stacklevel=3,
    )


def to_float_images(images: torch.Tensor, transform: ImageTransform | None = None) -> torch.Tensor:
    """uint8 ``[B, 3, S, S]`` -> normalized float ``[B, 3, S, S]``."""
    transform = transform or ImageTransform(size=images.shape[-1])
    return transform.normalize(images.float() / 255.0)
