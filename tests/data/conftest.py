"""Fixtures for the data-layer tests: tiny media files and JSON Lines writers in tmp_path."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from PIL import Image


def _png(
    path: Path, color: tuple[int, int, int] = (255, 0, 128), size: tuple[int, int] = (8, 8)
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format="PNG")
    return path


def _wav(
    path: Path,
    data: np.ndarray | None = None,
    samples: int = 1600,
    rate: int = 16_000,
    subtype: str = "FLOAT",
) -> Path:
    """Write ``data`` (``[N]`` or ``[N, C]``) or ``samples`` of a quiet 440 Hz tone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if data is None:
        data = 0.1 * np.sin(2 * np.pi * 440.0 * np.arange(samples) / rate)
    soundfile.write(str(path), np.asarray(data, dtype=np.float32), rate, subtype=subtype)
    return path


def _garbage(path: Path, payload: bytes = b"this is not a media file\x00\x01\x02" * 4) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return path


def _jsonl(path: Path, rows: Sequence[dict[str, Any] | str]) -> Path:
    """One row a line; a ``str`` row is written verbatim (for malformed or blank lines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [row if isinstance(row, str) else json.dumps(row, ensure_ascii=False) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def make_png() -> Callable[..., Path]:
    """``make_png(path, color=(r, g, b), size=(w, h))`` writes a solid-colour PNG."""
    return _png


@pytest.fixture
def make_wav() -> Callable[..., Path]:
    """``make_wav(path, data=None, samples=1600, rate=16000, subtype="FLOAT")`` writes a WAV."""
    return _wav


@pytest.fixture
def make_garbage() -> Callable[..., Path]:
    """``make_garbage(path)`` writes bytes that no decoder accepts."""
    return _garbage


@pytest.fixture
def write_jsonl() -> Callable[[Path, Sequence[dict[str, Any] | str]], Path]:
    """``write_jsonl(path, rows)`` writes a JSON Lines file (str rows verbatim)."""
    return _jsonl
