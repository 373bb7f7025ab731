"""The manifest: JSON Lines, one sample a line, validated with file/line/field errors.

A sample carries any subset of ``image``, ``audio`` and ``text`` (and of the registered stored
modalities' fields, such as ``video``: :mod:`trimodal.modalities`) plus task fields. Paths are
relative to the manifest's folder. Example line::

    {"id": "scene-000001", "split": "train", "image": "images/000001.png",
     "audio": "audio/000001_caption.wav", "text": "a small red circle",
     "questions": [{"question": "what color is the circle?", "answer": "red",
                    "family": "color", "spoken_question": "audio/000001_question.wav"}]}

Every problem is reported as ``FILE:LINE: field 'F': what is wrong``. With ``on_error="raise"``
(the default) any problem stops the load and lists every bad row; with ``on_error="skip"`` bad
rows are left out and returned in :attr:`Manifest.skipped` so the caller can report them.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile
from PIL import Image, UnidentifiedImageError

from trimodal.data.transforms import MAX_IMAGE_PIXELS, LogMel, max_audio_seconds, too_many_pixels
from trimodal.modalities import StoredModality, stored_modalities

SPLITS: tuple[str, ...] = ("train", "val", "test", "holdout")
MEDIA_FIELDS: tuple[str, ...] = ("image", "audio")
OnError = Literal["raise", "skip"]
FileCheck = Literal["decode", "exists", "none"]
MAX_TEXT_CHARS = 10_000
"""Longest string field a manifest row may hold (a 64 MB caption once took 12.9 GB to
tokenize)."""
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")
"""Audio sample formats that can hold NaN or Inf (integer PCM cannot), read in full by
``check_files="decode"``."""

_TOP_LEVEL: dict[str, tuple[type, ...]] = {
    "id": (str,),
    "split": (str,),
    "image": (str,),
    "audio": (str,),
    "text": (str,),
    "captions": (list,),
    "questions": (list,),
    "label": (str, int),
    "scene": (dict,),
    "meta": (dict,),
}
_REQUIRED = ("id", "split")


def _stored_fields() -> dict[str, StoredModality]:
    """``{manifest field: modality}`` of the registered modalities with a store of their own."""
    return {m.manifest_field: m for m in stored_modalities()}


def _top_level_fields() -> dict[str, tuple[type, ...]]:
    return _TOP_LEVEL | {name: (str,) for name in _stored_fields()}


_QUESTION_FIELDS: dict[str, tuple[type, ...]] = {
    "question": (str,),
    "answer": (str,),
    "family": (str,),
    "spoken_question": (str,),
    "answers": (list,),
    "question_id": (int, str),
    "question_type": (str,),
}
_QUESTION_REQUIRED = ("question", "answer")
_HUMAN_ANSWER_FIELDS: dict[str, tuple[type, ...]] = {
    "answer": (str,),
    "answer_confidence": (str,),
    "answer_id": (int,),
}


@dataclass(frozen=True)
class ManifestIssue:
    """One problem in a manifest: where it is and what is wrong."""

    path: str
    line: int
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}"
        return (
            f"{where}: field '{self.field}': {self.message}"
            if self.field
            else f"{where}: {self.message}"
        )


class ManifestError(ValueError):
    """A manifest failed validation; :attr:`issues` lists every problem found."""

    def __init__(self, issues: list[ManifestIssue]):
        self.issues = issues
        shown = "\n  ".join(str(issue) for issue in issues[:20])
        more = f"\n  ... and {len(issues) - 20} more" if len(issues) > 20 else ""
        super().__init__(
            f"{len(issues)} problem(s) in manifest; fix them or load with on_error='skip' "
            f"(CLI: --on-error skip):\n  {shown}{more}"
        )


@dataclass(frozen=True)
class QuestionRecord:
    """A question about a sample; ``spoken_question`` is an absolute path when present.

    ``human_answers`` are the annotators' answers (VQA v2 has ten), scored with the official
    VQA accuracy wherever present; ``answer`` is the single reference answer (VQA's
    ``multiple_choice_answer``) used for exact match and as the training target.
    """

    question: str
    answer: str
    family: str | None = None
    spoken_question: Path | None = None
    human_answers: tuple[str, ...] = ()
    question_id: int | str | None = None
    question_type: str | None = None


@dataclass(frozen=True)
class Sample:
    """A validated manifest row with media paths resolved against the manifest's folder."""

    id: str
    split: str
    line: int
    image: Path | None = None
    audio: Path | None = None
    text: str | None = None
    captions: tuple[str, ...] = ()
    questions: tuple[QuestionRecord, ...] = ()
    label: str | int | None = None
    scene: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    media: dict[str, Path] = field(default_factory=dict)
    """The files of stored modalities (``{"video": path}``), keyed by modality name."""

    @property
    def modalities(self) -> tuple[str, ...]:
        """Which of image, audio, text and the stored modalities this sample carries."""
        built_in = tuple(m for m in ("image", "audio", "text") if getattr(self, m) is not None)
        return built_in + tuple(self.media)


@dataclass
class Manifest:
    """A loaded manifest: the good samples and the rows that were skipped (with reasons)."""

    path: Path
    samples: list[Sample]
    skipped: list[ManifestIssue] = field(default_factory=list)

    @property
    def root(self) -> Path:
        """Folder that relative paths are resolved against."""
        return self.path.parent

    def split(self, *names: str) -> list[Sample]:
        """Samples in any of the splits ``names``."""
        return [sample for sample in self.samples if sample.split in names]

    @property
    def skipped_lines(self) -> list[int]:
        """Line numbers of the rows that were left out."""
        return sorted({issue.line for issue in self.skipped})

    def skipped_report(self) -> str:
        """How many rows were skipped, then one line per problem (empty if none was)."""
        if not self.skipped:
            return ""
        lines = [f"skipped {len(self.skipped_lines)} bad row(s) of {self.path}:"]
        lines += [f"  {issue}" for issue in self.skipped]
        return "\n".join(lines)


@functools.cache
def _longest_clip_seconds() -> float:
    """The longest clip the default audio tower reads (40.95 s)."""
    return max_audio_seconds(LogMel())


def _check_media(path: Path, kind: str) -> str | None:
    """Return an error message if ``path`` is missing or cannot be decoded as ``kind``."""
    if not path.is_file():
        return f"file not found: {path}"
    try:
        if kind == "image":
            with Image.open(path) as image:  # header and integrity, no pixel decoding
                width, height = image.size
                if width * height > MAX_IMAGE_PIXELS:
                    return too_many_pixels(f"image file {path}", width, height, MAX_IMAGE_PIXELS)
                image.verify()
        else:
            info = soundfile.info(str(path))
            if info.frames <= 0:
                return f"audio file has no samples: {path}"
            seconds, longest = info.frames / info.samplerate, _longest_clip_seconds()
            if seconds > longest:
                return (
                    f"audio file {path} lasts {seconds:.1f} s; at most {longest:.2f} s is read "
                    "(the audio tower's positions): cut it into shorter clips"
                )
            if info.subtype in FLOAT_SUBTYPES:  # only floating-point samples can be NaN / Inf
                data, _ = soundfile.read(str(path), dtype="float32", always_2d=True)
                bad = int(data.size - np.isfinite(data).sum())
                if bad:
                    return f"audio file {path} holds {bad} non-finite samples (NaN or Inf)"
    except Image.DecompressionBombError:
        return too_many_pixels(f"image file {path}", 0, 0, MAX_IMAGE_PIXELS)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, RuntimeError) as error:
        # soundfile raises LibsndfileError (a RuntimeError); Pillow raises the others.
        return f"cannot decode {kind} file {path}: {error}"
    return None


class _RowValidator:
    """Validates one parsed JSON row, collecting issues instead of raising."""

    def __init__(self, path: str, line: int, root: Path, check_files: FileCheck):
        self.path, self.line, self.root, self.check_files = path, line, root, check_files
        self.issues: list[ManifestIssue] = []

    def fail(self, field_name: str | None, message: str) -> None:
        self.issues.append(ManifestIssue(self.path, self.line, field_name, message))

    def media(
        self, field_name: str, value: str, kind: str, modality: StoredModality | None = None
    ) -> Path:
        resolved = Path(value) if os.path.isabs(value) else self.root / value
        try:
            if self.check_files == "exists" and not resolved.is_file():
                self.fail(field_name, f"file not found: {resolved}")
            elif self.check_files == "decode":
                check = modality.check_file(resolved) if modality else _check_media(resolved, kind)
                if check:
                    self.fail(field_name, check)
        except (OSError, ValueError) as error:  # a name too long, a NUL byte, ...
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            self.fail(field_name, f"unusable path {value!r:.80}: {reason}")
        return resolved

    def typed(self, data: dict[str, Any], schema: dict[str, tuple[type, ...]], prefix: str) -> bool:
        ok = True
        for key, value in data.items():
            if key not in schema:
                known = ", ".join(schema)
                self.fail(f"{prefix}{key}", f"unknown field (known fields: {known})")
                ok = False
            elif not isinstance(value, schema[key]) or isinstance(value, bool):
                expected = " or ".join(t.__name__ for t in schema[key])
                self.fail(
                    f"{prefix}{key}",
                    f"expected {expected}, got {type(value).__name__} {value!r:.60}",
                )
                ok = False
            elif isinstance(value, str) and len(value) > MAX_TEXT_CHARS:
                self.fail(
                    f"{prefix}{key}",
                    f"{len(value)} characters; at most {MAX_TEXT_CHARS} are read "
                    f"(a caption, question or path, not a document)",
                )
                ok = False
        return ok

    def question(self, index: int, data: Any) -> QuestionRecord | None:
        prefix = f"questions[{index}]"
        if not isinstance(data, dict):
            self.fail(prefix, f"expected an object, got {type(data).__name__}")
            return None
        ok = self.typed(data, _QUESTION_FIELDS, prefix + ".")
        for key in _QUESTION_REQUIRED:
            if key not in data:
                self.fail(f"{prefix}.{key}", "missing required field")
                ok = False
        human = self.human_answers(prefix, data.get("answers", []))
        if not ok or human is None:
            return None
        spoken = data.get("spoken_question")
        spoken_path = self.media(f"{prefix}.spoken_question", spoken, "audio") if spoken else None
        return QuestionRecord(
            data["question"],
            data["answer"],
            data.get("family"),
            spoken_path,
            human_answers=human,
            question_id=data.get("question_id"),
            question_type=data.get("question_type"),
        )

    def human_answers(self, prefix: str, entries: Any) -> tuple[str, ...] | None:
        """The ``answer`` strings of a question's ``answers`` list (VQA v2's objects)."""
        if not isinstance(entries, list):
            return None  # its type was already reported
        answers = []
        for index, entry in enumerate(entries):
            where = f"{prefix}.answers[{index}]"
            if not isinstance(entry, dict):
                self.fail(where, f"expected an object, got {type(entry).__name__}")
                continue
            if self.typed(entry, _HUMAN_ANSWER_FIELDS, where + ".") and "answer" in entry:
                answers.append(entry["answer"])
            elif "answer" not in entry:
                self.fail(f"{where}.answer", "missing required field")
        return tuple(answers) if len(answers) == len(entries) else None

    def captions(self, entries: list[Any]) -> tuple[str, ...]:
        """The non-empty strings of ``captions`` (each bad one is reported)."""
        for index, caption in enumerate(entries):
            if not isinstance(caption, str) or not caption.strip():
                self.fail(f"captions[{index}]", f"expected a non-empty string, got {caption!r:.60}")
            elif len(caption) > MAX_TEXT_CHARS:
                self.fail(
                    f"captions[{index}]",
                    f"{len(caption)} characters; at most {MAX_TEXT_CHARS} are read",
                )
        if not entries:
            self.fail("captions", "empty list (leave the field out instead)")
        return tuple(c for c in entries if isinstance(c, str))

    def sample(self, data: Any) -> Sample | None:
        if not isinstance(data, dict):
            self.fail(None, f"expected a JSON object, got {type(data).__name__}")
            return None
        stored = _stored_fields()
        ok = self.typed(data, _top_level_fields(), "")
        for key in _REQUIRED:
            if key not in data:
                self.fail(key, "missing required field")
                ok = False
        if not ok:
            return None
        if data["split"] not in SPLITS:
            self.fail(
                "split", f"unknown split {data['split']!r} (expected one of {', '.join(SPLITS)})"
            )
        carriers = ("image", "audio", "text", "captions", *stored)
        if not any(key in data for key in carriers):
            self.fail(None, f"a sample needs at least one of {', '.join(carriers)}")
        captions = self.captions(data["captions"]) if "captions" in data else ()
        paths = {kind: self.media(kind, data[kind], kind) for kind in MEDIA_FIELDS if kind in data}
        media = {
            modality.name: self.media(key, data[key], key, modality)
            for key, modality in stored.items()
            if key in data
        }
        questions = [self.question(i, q) for i, q in enumerate(data.get("questions", []))]
        if self.issues:
            return None
        return Sample(
            id=data["id"],
            split=data["split"],
            line=self.line,
            image=paths.get("image"),
            audio=paths.get("audio"),
            text=data.get("text"),
            captions=captions,
            questions=tuple(q for q in questions if q is not None),
            label=data.get("label"),
            scene=data.get("scene"),
            meta=data.get("meta", {}),
            media=media,
        )


def _lines(path: Path) -> Iterator[tuple[int, str | None]]:
    """Non-blank lines with their numbers; a line that is not UTF-8 comes as None (so one bad
    row is reported alone instead of ending the read)."""
    with open(path, "rb") as stream:
        for number, raw in enumerate(stream, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield number, None
                continue
            if line.strip():
                yield number, line


def _parse_row(line: str | None, validator: _RowValidator) -> tuple[bool, Any]:
    """``(True, the line's JSON value)``, or ``(False, None)`` after reporting why it has none."""
    if line is None:
        validator.fail(None, "not UTF-8 text")
        return False, None
    try:
        return True, json.loads(line)
    except json.JSONDecodeError as error:
        validator.fail(None, f"invalid JSON: {error.msg} at column {error.colno}")
    except RecursionError:
        validator.fail(None, "JSON nested too deeply")
    except ValueError as error:  # e.g. an integer with more digits than Python converts
        validator.fail(None, f"unusable JSON: {error}")
    return False, None


def load_manifest(
    path: str | os.PathLike[str], on_error: OnError = "raise", check_files: FileCheck = "decode"
) -> Manifest:
    """Read and validate a JSON Lines manifest.

    Args:
        path: the manifest file.
        on_error: ``"raise"`` stops with a :class:`ManifestError` listing every bad row;
            ``"skip"`` leaves bad rows out and lists them in ``Manifest.skipped``.
        check_files: ``"decode"`` opens every image/audio header, ``"exists"`` only checks that
            files exist, ``"none"`` trusts the paths.

    Returns:
        the validated :class:`Manifest`.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    manifest_path = Path(path)
    if not manifest_path.is_file():
        raise FileNotFoundError(f"manifest not found: {manifest_path}")
    samples: list[Sample] = []
    issues: list[ManifestIssue] = []
    seen_ids: dict[str, int] = {}
    for number, line in _lines(manifest_path):
        validator = _RowValidator(str(manifest_path), number, manifest_path.parent, check_files)
        parsed, data = _parse_row(line, validator)
        sample = validator.sample(data) if parsed else None
        if sample is not None and sample.id in seen_ids:
            validator.fail(
                "id", f"duplicate id {sample.id!r} (first seen on line {seen_ids[sample.id]})"
            )
            sample = None
        issues.extend(validator.issues)
        if sample is not None:
            seen_ids[sample.id] = number
            samples.append(sample)
    if issues and on_error == "raise":
        raise ManifestError(issues)
    return Manifest(manifest_path, samples, skipped=issues)
