"""Atomic writes: the target holds the old content or the new one, never a partial file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from trimodal import io as trimodal_io
from trimodal.io import atomic_write_bytes, atomic_write_text, write_jsonl_atomic


def test_atomic_write_text_writes_utf8(tmp_path: Path) -> None:
    path = tmp_path / "new" / "deeper" / "file.txt"
    atomic_write_text(path, "héllo\nwörld 🙂\n")
    assert path.read_bytes() == "héllo\nwörld 🙂\n".encode()
    assert os.listdir(path.parent) == ["file.txt"]


def test_atomic_write_replaces_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "file.txt"
    path.write_text("old content that is longer than the new one", encoding="utf-8")
    atomic_write_text(path, "new")
    assert path.read_text(encoding="utf-8") == "new"
    assert os.listdir(tmp_path) == ["file.txt"]


def test_atomic_write_bytes(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    atomic_write_bytes(path, bytes(range(256)))
    assert path.read_bytes() == bytes(range(256))


def test_failure_at_rename_keeps_old_file_and_removes_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "file.txt"
    path.write_text("old", encoding="utf-8")
    seen: list[str] = []

    def failing_replace(source: str, target: os.PathLike[str]) -> None:
        seen.append(source)
        # the temporary file was fully written before the rename
        assert Path(source).read_text(encoding="utf-8") == "new content"
        assert Path(source).parent == tmp_path
        raise OSError("disk on fire")

    monkeypatch.setattr(trimodal_io.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk on fire"):
        atomic_write_text(path, "new content")
    assert len(seen) == 1
    assert path.read_text(encoding="utf-8") == "old"
    assert os.listdir(tmp_path) == ["file.txt"]
    assert not Path(seen[0]).exists()


def test_interrupt_at_rename_leaves_no_temp_for_new_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(source: str, target: os.PathLike[str]) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(trimodal_io.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(tmp_path / "fresh.txt", "data")
    assert os.listdir(tmp_path) == []


def test_write_jsonl_atomic(tmp_path: Path) -> None:
    rows = [{"id": "a", "n": 1, "nested": {"x": [1, 2]}}, {"text": "é ü 🙂"}, {}]
    path = tmp_path / "rows.jsonl"
    write_jsonl_atomic(path, rows)
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    lines = text.splitlines()
    assert len(lines) == 3
    assert [json.loads(line) for line in lines] == rows
    # compact, key order kept, non-ASCII written as-is
    assert lines[0] == '{"id":"a","n":1,"nested":{"x":[1,2]}}'
    assert lines[1] == '{"text":"é ü 🙂"}'


def test_write_jsonl_atomic_accepts_generators_and_empty(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    write_jsonl_atomic(path, ({"i": i} for i in range(3)))
    assert path.read_text(encoding="utf-8") == '{"i":0}\n{"i":1}\n{"i":2}\n'
    write_jsonl_atomic(path, [])
    assert path.read_text(encoding="utf-8") == ""
