"""Real handwritten digits as a tri-modal world: scikit-learn's 8x8 digits, named and spoken.

scikit-learn bundles 1,797 handwritten digits (8x8 pixels, ink 0-16; no download). Each becomes
a manifest row with an image, a written caption naming the digit from several templates ("a
handwritten seven", "the digit seven", ...), the caption spoken by eSpeak NG with a varied voice,
rate and pitch, and its class label. Half of every class is ``train``, the other half ``test``.

Layout of a digits directory::

    digits.json       the arguments and format version (written last: marks a complete build)
    manifest.jsonl    one digit a line: id, split, image, audio, text, label, meta
    summary.json      counts per split and class, speech length, timings
    images/NNNNNN.png          (NNNNNN: the digit's index in ``load_digits()``)
    audio/NNNNNN_caption.wav   16 kHz mono PCM-16

Images are upscaled with nearest-neighbour resampling: every source pixel becomes a uniform
block, so the PNG holds exactly the 64 values the pixel baseline sees and nothing interpolated.
Ink is white on black, as in the source (high value = ink).

Determinism: captions, voices and the split are pure functions of the seed; speech runs in
fixed chunks, each in a fresh process, exactly as :mod:`trimodal.world.generate` does, so the
bytes do not depend on the worker count.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
from PIL import Image

from trimodal.io import atomic_write_text, write_jsonl_atomic
from trimodal.world.channel import SpeechStyle
from trimodal.world.generate import map_in_fresh_processes
from trimodal.world.speech import Synthesizer, VoiceSettings

FORMAT_VERSION = 1
SAMPLE_RATE = 16_000
MAX_INK = 16
"""Largest pixel value of ``load_digits()`` images (ink 0-16)."""
CHUNK = 32
"""Digits spoken by one fresh process: the unit of reproducibility (see world.speech)."""

DIGIT_NAMES: tuple[str, ...] = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
)
CAPTION_TEMPLATES: tuple[str, ...] = (
    "{name}",
    "the digit {name}",
    "a handwritten {name}",
    "the number {name}",
    "a handwritten digit {name}",
    "a {name} written by hand",
)
"""Written (and spoken) captions; ``{name}`` is the digit's English name."""


@dataclass(frozen=True)
class DigitsConfig:
    """Arguments that fully determine a digits directory's bytes.

    ``limit`` keeps only the first ``limit`` digits of ``load_digits()`` (0: all 1,797), for
    tests and smoke runs.
    """

    seed: int = 0
    image_size: int = 64
    limit: int = 0

    def validate(self) -> None:
        """Raise ValueError naming the bad argument."""
        if self.image_size < 8 or self.image_size % 8 != 0 or self.image_size > 1024:
            raise ValueError(
                f"image_size must be a multiple of 8 in [8, 1024] (the source is 8x8 and is "
                f"upscaled by whole blocks), got {self.image_size}"
            )
        if self.limit < 0 or self.limit == 1:
            raise ValueError(f"limit must be 0 (all digits) or at least 2, got {self.limit}")


@dataclass(frozen=True)
class DigitJob:
    """Everything a worker needs to write one digit's files."""

    index: int
    label: int
    split: str
    pixels: tuple[int, ...]
    caption: str
    voice: VoiceSettings


@dataclass
class DigitsSummary:
    """What building a digits directory reports."""

    path: str
    config: dict[str, Any]
    samples_per_split: dict[str, int]
    per_class: dict[str, dict[str, int]]
    audio_seconds: dict[str, float]
    timings: dict[str, float]
    cached: bool = False
    notes: list[str] = field(default_factory=list)


def load_source(limit: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits: pixels ``[N, 8, 8]`` int (0-16) and labels ``[N]`` int.

    Args:
        limit: keep the first ``limit`` digits (0: all 1,797).
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.int64)
    labels = np.asarray(bunch.target, dtype=np.int64)
    if limit:
        images, labels = images[:limit], labels[:limit]
    return images, labels


def stratified_halves(labels: Sequence[int] | np.ndarray, seed: int) -> list[str]:
    """``"train"`` or ``"test"`` for each of ``N`` labels: half of every class each, shuffled.

    Within each class a seeded permutation alternates train, test, train, ... so every class
    splits within one sample of half. A class with an odd count gives its extra sample to
    train and to test in turn (by class value), so the whole split is also within one of half.

    Args:
        labels: ``[N]`` class labels.
        seed: seeds the per-class permutations.

    Returns:
        ``N`` split names, in the order of ``labels``.
    """
    labels = np.asarray(labels)
    splits = [""] * len(labels)
    odd_classes = 0
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        order = members[np.random.default_rng([seed, int(label), 5]).permutation(len(members))]
        extra_to_test = len(members) % 2 == 1 and odd_classes % 2 == 1
        odd_classes += len(members) % 2
        first, second = ("test", "train") if extra_to_test else ("train", "test")
        for position, index in enumerate(order):
            splits[int(index)] = first if position % 2 == 0 else second
    return splits


def caption_for(label: int, rng: np.random.Generator) -> str:
    """One caption naming digit ``label`` with a template drawn by ``rng``."""
    template = CAPTION_TEMPLATES[int(rng.integers(len(CAPTION_TEMPLATES)))]
    return template.format(name=DIGIT_NAMES[label])


def class_prompts(templates: Sequence[str] = CAPTION_TEMPLATES) -> list[list[str]]:
    """For each digit 0-9, its prompts: every template filled with the digit's name."""
    return [[t.format(name=name) for t in templates] for name in DIGIT_NAMES]


def render_digit(pixels: np.ndarray, image_size: int) -> Image.Image:
    """An 8x8 ink array (0-16) -> an RGB ``image_size`` square, white ink on black.

    Nearest-neighbour upscaling turns each source pixel into a uniform block.
    """
    gray = np.rint(np.asarray(pixels, dtype=np.float64) * (255.0 / MAX_INK)).astype(np.uint8)
    image = Image.fromarray(gray).resize((image_size, image_size), Image.Resampling.NEAREST)
    return image.convert("RGB")


def plan_digits(config: DigitsConfig) -> list[DigitJob]:
    """Label, split, caption and voice of every digit, in ``load_digits()`` order."""
    images, labels = load_source(config.limit)
    splits = stratified_halves(labels, config.seed)
    jobs = []
    for index, (pixels, label) in enumerate(zip(images, labels, strict=True)):
        text = caption_for(int(label), np.random.default_rng([config.seed, index, 1]))
        voice = SpeechStyle().voice(np.random.default_rng([config.seed, index, 3]))
        flat = tuple(int(v) for v in pixels.reshape(-1))
        jobs.append(DigitJob(index, int(label), splits[index], flat, text, voice))
    return jobs


def _media_paths(index: int) -> tuple[str, str]:
    stem = f"{index:06d}"
    return f"images/{stem}.png", f"audio/{stem}_caption.wav"


_WORKER: dict[str, Any] = {}


def _init_worker(root: str, config: DigitsConfig) -> None:
    _WORKER["root"] = Path(root)
    _WORKER["config"] = config
    _WORKER["synth"] = Synthesizer()


def _write_digit(job: DigitJob) -> tuple[int, float]:
    """Write one digit's PNG and spoken caption. Returns (index, seconds of speech)."""
    root: Path = _WORKER["root"]
    config: DigitsConfig = _WORKER["config"]
    image_path, audio_path = _media_paths(job.index)
    pixels = np.asarray(job.pixels).reshape(8, 8)
    render_digit(pixels, config.image_size).save(root / image_path, format="PNG")
    speech_seed = int(np.random.default_rng([config.seed, job.index, 4]).integers(2**31))
    wave = _WORKER["synth"].speak(job.caption, job.voice, SAMPLE_RATE, seed=speech_seed)
    soundfile.write(root / audio_path, wave, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return job.index, len(wave) / SAMPLE_RATE


def _run_workers(
    root: Path, config: DigitsConfig, jobs: list[DigitJob], workers: int
) -> list[tuple[int, float]]:
    """Write every digit's files; each fixed chunk runs in a newly forked process."""
    return map_in_fresh_processes(
        _write_digit, jobs, CHUNK, workers, _init_worker, (str(root), config)
    )


def manifest_row(job: DigitJob) -> dict[str, Any]:
    """The manifest line of one digit (``label`` is the digit; ``meta`` says where it came from)."""
    image_path, audio_path = _media_paths(job.index)
    return {
        "id": f"digit-{job.index:06d}",
        "split": job.split,
        "image": image_path,
        "audio": audio_path,
        "text": job.caption,
        "label": job.label,
        "meta": {
            "source": "sklearn.datasets.load_digits",
            "source_index": job.index,
            "caption_voice": asdict(job.voice),
        },
    }


def _marker(config: DigitsConfig) -> dict[str, Any]:
    return {"format_version": FORMAT_VERSION, **asdict(config)}


def _is_complete(root: Path, config: DigitsConfig) -> bool:
    marker = root / "digits.json"
    if not marker.is_file() or not (root / "summary.json").is_file():
        return False
    try:
        return bool(json.loads(marker.read_text()) == _marker(config))
    except json.JSONDecodeError:
        return False


def build_digits(
    out_dir: str | os.PathLike[str],
    seed: int = 0,
    image_size: int = 64,
    workers: int | None = None,
    limit: int = 0,
) -> DigitsSummary:
    """Write the digits world into ``out_dir`` (or reuse it if built with the same arguments).

    Args:
        out_dir: directory; created if absent.
        seed: determines captions, voices, speech and the split.
        image_size: side of the square PNGs (a multiple of 8).
        workers: processes for rendering and speech (default: CPU count).
        limit: keep only the first ``limit`` digits (0: all 1,797).

    Returns:
        the summary (``cached=True`` when an identical build was already there).
    """
    config = DigitsConfig(seed=seed, image_size=image_size, limit=limit)
    config.validate()
    root = Path(out_dir)
    if _is_complete(root, config):
        summary = DigitsSummary(**json.loads((root / "summary.json").read_text()))
        summary.cached = True
        return summary
    if (root / "digits.json").exists():
        # Built with other arguments: clear its media so no stale file survives.
        (root / "digits.json").unlink()
        for sub in ("images", "audio", ".cache"):
            shutil.rmtree(root / sub, ignore_errors=True)
    for sub in ("images", "audio"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    jobs = plan_digits(config)
    worker_count = workers or os.cpu_count() or 1
    durations = [seconds for _, seconds in _run_workers(root, config, jobs, worker_count)]
    write_jsonl_atomic(root / "manifest.jsonl", [manifest_row(job) for job in jobs])
    summary = _summarize(root, config, jobs, durations, time.perf_counter() - started)
    summary.timings["workers"] = float(worker_count)
    atomic_write_text(root / "summary.json", json.dumps(asdict(summary), indent=2))
    atomic_write_text(root / "digits.json", json.dumps(_marker(config), indent=2))
    return summary


def _summarize(
    root: Path,
    config: DigitsConfig,
    jobs: Sequence[DigitJob],
    durations: Sequence[float],
    seconds: float,
) -> DigitsSummary:
    per_split = Counter(job.split for job in jobs)
    per_class: dict[str, dict[str, int]] = {}
    for split in ("train", "test"):
        counts = Counter(job.label for job in jobs if job.split == split)
        per_class[split] = {str(label): counts.get(label, 0) for label in range(10)}
    return DigitsSummary(
        path=str(root),
        config=asdict(config),
        samples_per_split={split: per_split.get(split, 0) for split in ("train", "test")},
        per_class=per_class,
        audio_seconds={
            "mean": round(float(np.mean(durations)), 3) if durations else 0.0,
            "total": round(float(np.sum(durations)), 1),
        },
        timings={"total_wall_s": round(seconds, 2)},
    )


def format_summary(summary: DigitsSummary) -> str:
    """A short human-readable summary."""
    cached = " (cached)" if summary.cached else ""
    splits = ", ".join(f"{k} {v}" for k, v in summary.samples_per_split.items())
    return (
        f"digits at {summary.path}{cached}: {splits}; "
        f"speech {summary.audio_seconds['total']:.0f} s; "
        f"built in {summary.timings.get('total_wall_s', 0.0):.1f} s"
    )
