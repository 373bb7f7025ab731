"""Build the room world on disk: rooms, typed and spoken commands, and their outcomes.

Layout of ``--out DIR``::

    DIR/images/NNNNN.png    the room, 64 px
    DIR/audio/NNNNN.wav     the command spoken by eSpeak NG (16 kHz; voices, rates, pitches
                            and background noise vary)
    DIR/home.jsonl          one row a scene: id, split, image, audio, text, kind, room, outcome
    DIR/home.json           the settings it was built with

Deterministic: the same settings give the same bytes (speech is synthesized in fixed chunks,
each in a fresh process). Commands are dealt evenly over the six kinds in every split.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from trimodal.home.commands import KINDS, sample_command
from trimodal.home.room import Room, render_room, sample_room
from trimodal.io import atomic_write_text, write_jsonl_atomic
from trimodal.locks import FolderLock
from trimodal.world.generate import map_in_fresh_processes
from trimodal.world.speech import VOICES, Synthesizer, VoiceSettings, add_noise

SAMPLE_RATE = 16_000
SPEECH_CHUNK = 100


@dataclass(frozen=True)
class HomeWorldConfig:
    """How many scenes per split, the seed, and the speech variety."""

    train: int = 3000
    val: int = 300
    test: int = 600
    seed: int = 0
    rates: tuple[int, int] = (130, 210)
    noise_probability: float = 0.3
    noise_snr: tuple[float, float] = (10.0, 30.0)


@dataclass(frozen=True)
class _SpeechJob:
    index: int
    text: str
    voice: str
    rate: int
    pitch: int
    snr: float | None
    seed: int


def _scene_rows(config: HomeWorldConfig) -> list[dict[str, Any]]:
    """Rooms, commands and speech settings of every scene (no files yet)."""
    rng = np.random.default_rng(config.seed)
    rows = []
    index = 0
    for split, count in (("train", config.train), ("val", config.val), ("test", config.test)):
        kinds = [KINDS[i % len(KINDS)] for i in range(count)]
        order = rng.permutation(count)
        for position in order:
            room = sample_room(rng)
            command = sample_command(room, rng, kinds[int(position)])
            snr = (
                float(rng.uniform(*config.noise_snr))
                if rng.random() < config.noise_probability
                else None
            )
            rows.append(
                {
                    "id": f"{index:05d}",
                    "split": split,
                    "image": f"images/{index:05d}.png",
                    "audio": f"audio/{index:05d}.wav",
                    "text": command.text,
                    "kind": command.kind,
                    "room": room.to_dict(),
                    "outcome": command.outcome.to_dict(),
                    "missing": list(command.missing),
                    "speech": {
                        "voice": str(rng.choice(VOICES)),
                        "rate": int(rng.integers(config.rates[0], config.rates[1] + 1)),
                        "pitch": int(rng.integers(25, 76)),
                        "snr": snr,
                    },
                }
            )
            index += 1
    return rows


_ROOT: Path | None = None
_SYNTHESIZER: Synthesizer | None = None


def _init_speaker(root: str) -> None:
    """Per worker process (one per chunk): where to write, and a fresh eSpeak synthesizer."""
    global _ROOT, _SYNTHESIZER
    _ROOT = Path(root)
    _SYNTHESIZER = Synthesizer()


def _speak(job: _SpeechJob) -> int:
    assert _ROOT is not None and _SYNTHESIZER is not None
    wave = _SYNTHESIZER.speak(
        job.text, VoiceSettings(job.voice, job.rate, job.pitch), SAMPLE_RATE, seed=job.seed
    )
    if job.snr is not None:
        wave = add_noise(wave, job.snr, np.random.default_rng(job.seed))
    soundfile.write(_ROOT / f"audio/{job.index:05d}.wav", wave, SAMPLE_RATE, subtype="PCM_16")
    return job.index


def build_home_world(out: str | Path, config: HomeWorldConfig, workers: int = 2) -> Path:
    """Write the world to ``out`` (see the module docstring); returns ``home.jsonl``."""
    root = Path(out)
    with FolderLock(root, "home world generation"):
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "audio").mkdir(parents=True, exist_ok=True)
        rows = _scene_rows(config)
        for row in rows:
            render_room(Room.from_dict(row["room"])).save(root / row["image"])
        jobs = [
            _SpeechJob(
                int(row["id"]),
                row["text"],
                row["speech"]["voice"],
                row["speech"]["rate"],
                row["speech"]["pitch"],
                row["speech"]["snr"],
                config.seed * 100_003 + i,
            )
            for i, row in enumerate(rows)
        ]
        map_in_fresh_processes(_speak, jobs, SPEECH_CHUNK, workers, _init_speaker, (str(root),))
        write_jsonl_atomic(root / "home.jsonl", rows)
        atomic_write_text(root / "home.json", json.dumps(asdict(config), indent=2) + "\n")
    return root / "home.jsonl"


def load_home_world(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a world's ``home.jsonl`` (``path``: the folder or the file)."""
    source = Path(path)
    source = source / "home.jsonl" if source.is_dir() else source
    if not source.is_file():
        raise FileNotFoundError(f"{source}: not a home world (build one with trimodal home world)")
    with open(source, encoding="utf-8") as stream:
        return [json.loads(line) for line in stream if line.strip()]
