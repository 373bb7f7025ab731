"""Two example tables for ``trimodal classify``, written as a CSV with its images.

- **scans** (generated, seeded): grey textured "scans" that show a bright lesion-like blob or
  not, and short reports that say whether an earlier study showed a lesion. The finding needs
  both: ``new`` (blob, no prior), ``stable`` (blob, prior), ``resolved`` (no blob, prior),
  ``normal`` (neither), in unequal shares. The image alone cannot tell new from stable, the
  report alone cannot tell new from normal. Dark blobs and report sentences that say nothing
  about the finding are distractors. Also written: ``findings`` (multi-label: ``lesion`` from the
  image, ``prior`` from the report, ``;``-separated).
- **digits**: scikit-learn's 1,797 real handwritten digits (8x8 pixels), each with a written
  note that names two candidates, the true digit among them ("either a three or an eight").

Nothing here is medical data; the scans are noise and Gaussian blobs.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from PIL import Image

from trimodal.io import atomic_write_text

SCAN_SIZE = 64
PRIOR_SENTENCES = (
    "Comparison with the prior study, which showed a nodule.",
    "Known lesion on the previous examination.",
    "Follow-up of a previously reported mass.",
    "History of a lesion seen on earlier imaging.",
    "The last scan described a small nodule.",
)
NO_PRIOR_SENTENCES = (
    "No prior imaging is available.",
    "Baseline examination without earlier studies.",
    "First scan of this patient.",
    "Screening study, nothing reported before.",
    "There are no previous examinations to compare.",
)
FILLER_SENTENCES = (
    "Patient positioned supine.",
    "Image quality is adequate.",
    "Mild motion artifact.",
    "Routine protocol was used.",
    "Requested by the outpatient clinic.",
    "Contrast was not given.",
)
FINDINGS = {
    (True, False): "new",
    (True, True): "stable",
    (False, True): "resolved",
    (False, False): "normal",
}
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
NOTE_TEMPLATES = (
    "either a {a} or a {b}",
    "the clerk could not decide between {a} and {b}",
    "looks like {a} or maybe {b}",
    "note: {a} or {b}, unclear handwriting",
    "reads as {a}, possibly {b}",
)


def scan_image(rng: np.random.Generator, lesion: bool, size: int = SCAN_SIZE) -> np.ndarray:
    """One grey ``[size, size]`` uint8 scan: smooth texture, noise, maybe a bright blob and
    maybe a dark (irrelevant) blob."""
    coarse = rng.normal(0.0, 1.0, (size // 8, size // 8))
    texture = np.kron(coarse, np.ones((8, 8)))
    texture = _smooth(texture, 3)
    image = 0.45 + 0.06 * texture + rng.normal(0.0, 0.03, (size, size))
    y, x = np.mgrid[0:size, 0:size]
    if lesion:
        image += _blob(rng, x, y, size, amplitude=rng.uniform(0.22, 0.4))
    if rng.random() < 0.5:
        image -= _blob(rng, x, y, size, amplitude=rng.uniform(0.15, 0.3))
    return (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)


def _blob(
    rng: np.random.Generator, x: np.ndarray, y: np.ndarray, size: int, amplitude: float
) -> np.ndarray:
    cx, cy = rng.uniform(0.2, 0.8, 2) * size
    radius = rng.uniform(2.5, 5.0)
    return amplitude * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * radius**2))


def _smooth(values: np.ndarray, passes: int) -> np.ndarray:
    for _ in range(passes):
        values = (
            values
            + np.roll(values, 1, 0)
            + np.roll(values, -1, 0)
            + np.roll(values, 1, 1)
            + np.roll(values, -1, 1)
        ) / 5.0
    return values


def scan_report(rng: np.random.Generator, prior: bool) -> str:
    """A two- or three-sentence report: the prior-study sentence among fillers."""
    history = rng.choice(PRIOR_SENTENCES if prior else NO_PRIOR_SENTENCES)
    fillers = list(rng.choice(FILLER_SENTENCES, size=int(rng.integers(1, 3)), replace=False))
    sentences = [str(history)] + [str(f) for f in fillers]
    order = rng.permutation(len(sentences))
    return " ".join(sentences[i] for i in order)


def write_scans(out: str | Path, count: int = 1200, seed: int = 0) -> Path:
    """Write ``count`` scans to ``out/images/`` and ``out/data.csv`` (columns ``path``,
    ``report``, ``finding``, ``findings``); returns the CSV path. Same seed, same bytes."""
    folder = Path(out)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    records = []
    for index in range(count):
        lesion, prior = bool(rng.random() < 0.4), bool(rng.random() < 0.35)
        name = f"images/scan_{index:05d}.png"
        pixels = scan_image(rng, lesion)
        Image.fromarray(np.stack([pixels] * 3, axis=-1)).save(folder / name)
        multi = ";".join(label for label, on in (("lesion", lesion), ("prior", prior)) if on)
        records.append([name, scan_report(rng, prior), FINDINGS[(lesion, prior)], multi])
    return _write_csv(folder / "data.csv", ["path", "report", "finding", "findings"], records)


def digit_note(rng: np.random.Generator, digit: int) -> str:
    """A note naming ``digit`` and one other digit, in random order and wording."""
    other = int(rng.choice([d for d in range(10) if d != digit]))
    a, b = (digit, other) if rng.random() < 0.5 else (other, digit)
    template = str(rng.choice(NOTE_TEMPLATES))
    return template.format(a=DIGIT_NAMES[a], b=DIGIT_NAMES[b])


def write_digits(out: str | Path, seed: int = 0, limit: int = 0) -> Path:
    """Write scikit-learn's digits (the first ``limit``; 0: all) as PNGs with a note each to
    ``out/data.csv`` (columns ``path``, ``note``, ``digit``); returns the CSV path."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    folder = Path(out)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    total = len(digits.target) if limit <= 0 else min(limit, len(digits.target))
    records = []
    for index in range(total):
        ink = digits.images[index]  # 8x8, 0-16
        pixels = (255 - ink * 255 / 16).round().astype(np.uint8)  # dark ink on white paper
        name = f"images/digit_{index:04d}.png"
        Image.fromarray(np.stack([pixels] * 3, axis=-1)).save(folder / name)
        digit = int(digits.target[index])
        records.append([name, digit_note(rng, digit), DIGIT_NAMES[digit]])
    return _write_csv(folder / "data.csv", ["path", "note", "digit"], records)


def _write_csv(path: Path, header: list[str], records: list[list[str]]) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(records)
    atomic_write_text(path, buffer.getvalue())
    return path
