"""Every file-reading verb against a corpus of ordinary bad (and odd but valid) inputs.

Builds a corpus of images, recordings, captions and manifests -- empty, truncated, mislabeled,
decompression-bomb, NaN / Inf, silent, long, stereo, odd sample rates, a 64 MB caption, missing
paths, folders under file names -- and runs ``ask``, ``embed``, ``transcribe``, ``chat``,
``caption``, ``manifest``, ``eval`` and ``train`` (2 steps of the tiny recipe on 15 good rows and
the bad one) on each, every run in a forked child (the parent imports
trimodal but runs no tensor op) with a time limit. Each run is classified:

- ``ok``: an input that should be read was read (exit 0);
- ``clean``: an input that should be refused was, in one line naming the file (exit != 0,
  or, in ``chat``, an ``error:`` line that keeps the session going);
- ``unclear``: refused, but the message does not name the file;
- ``warned``: read, with a warning saying what was not (a text cut to the tower's length);
- ``silent``: a bad input was accepted without a word (exit 0) -- data silently lost or wrong;
- ``refused_valid``: a valid input was refused;
- ``traceback``: an exception escaped ``main``; ``hang``: the time limit passed.

It prints one row per run and the counts, with the peak resident memory of the largest inputs'
runs (``ru_maxrss`` of the child, which includes the imported libraries).

    python benchmarks/bad_inputs.py --checkpoint runs/default --world runs/world
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import struct
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
from PIL import Image

from trimodal.cli.main import main

QUESTION = "what colour is the circle?"
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
KINDS = ("ok", "clean", "warned", "unclear", "refused_valid", "silent", "traceback", "hang")


@dataclass
class Case:
    """One input: its path, what it is, and whether a verb should read (True) or refuse it."""

    name: str
    path: Path
    valid: bool


# ----------------------------------------------------------------------------- the corpus


def _image_cases(folder: Path, good_image: Path, good_audio: Path) -> list[Case]:
    folder.mkdir()
    base = Image.open(good_image).convert("RGB")
    cases: list[Case] = []

    def write(name: str, valid: bool, save: Callable[[Path], None]) -> None:
        path = folder / name
        save(path)
        cases.append(Case(f"image:{name}", path, valid))

    write("ok.png", True, lambda p: base.save(p))
    write("gray.png", True, lambda p: base.convert("L").save(p))
    write("rgba.png", True, lambda p: base.convert("RGBA").save(p))
    write("palette.gif", True, lambda p: base.convert("P").save(p))
    write("cmyk.jpg", True, lambda p: base.convert("CMYK").save(p))
    write("one_pixel.png", True, lambda p: base.resize((1, 1)).save(p))
    write("sixteen_bit.png", True, lambda p: base.convert("I;16").save(p))
    write("large_4000x3000.jpg", True, lambda p: base.resize((4000, 3000)).save(p))
    png = io.BytesIO()
    base.save(png, format="PNG")
    data = png.getvalue()
    write("empty.png", False, lambda p: p.write_bytes(b""))
    write("truncated.png", False, lambda p: p.write_bytes(data[: len(data) // 2]))
    write("header_only.png", False, lambda p: p.write_bytes(data[:33]))
    corrupt = bytearray(data)
    corrupt[len(corrupt) // 2 : len(corrupt) // 2 + 64] = b"\x00" * 64
    write("corrupt_middle.png", False, lambda p: p.write_bytes(bytes(corrupt)))
    write("text.png", False, lambda p: p.write_text("not an image\n"))
    write("audio.png", False, lambda p: shutil.copy(good_audio, p))
    write("bomb_20000.png", False, lambda p: Image.new("1", (20000, 20000)).save(p))
    write("missing.png", False, lambda p: None)
    write("folder.png", False, lambda p: p.mkdir())
    return cases


def _wav(path: Path, samples: np.ndarray, rate: int = 16000, subtype: str = "PCM_16") -> None:
    soundfile.write(str(path), samples, rate, subtype=subtype)


def _long_wav(path: Path, seconds: int, rate: int = 16000) -> None:
    """A silent 16-bit WAV of ``seconds`` written in blocks (never the whole clip in memory)."""
    with soundfile.SoundFile(str(path), "w", rate, 1, "PCM_16") as out:
        block = np.zeros(rate * 60, dtype=np.int16)
        for start in range(0, seconds, 60):
            out.write(block[: rate * min(60, seconds - start)])


def _audio_cases(folder: Path, good_audio: Path, good_image: Path) -> list[Case]:
    folder.mkdir()
    clip, rate = soundfile.read(str(good_audio), dtype="float32")
    cases: list[Case] = []

    def write(name: str, valid: bool, save: Callable[[Path], None]) -> None:
        path = folder / name
        save(path)
        cases.append(Case(f"audio:{name}", path, valid))

    write("ok.wav", True, lambda p: _wav(p, clip, rate))
    write("stereo.wav", True, lambda p: _wav(p, np.stack([clip, clip], 1), rate))
    write("rate_8k.wav", True, lambda p: _wav(p, clip[::2], rate // 2))
    write("rate_96k.wav", True, lambda p: _wav(p, np.repeat(clip, 6), rate * 6))
    write("float32.wav", True, lambda p: _wav(p, clip, rate, "FLOAT"))
    write("flac.flac", True, lambda p: soundfile.write(str(p), clip, rate, format="FLAC"))
    write("silence.wav", True, lambda p: _wav(p, np.zeros_like(clip), rate))
    write("clipped_loud.wav", True, lambda p: _wav(p, np.clip(clip * 50, -1, 1), rate))
    write("forty_seconds.wav", True, lambda p: _long_wav(p, 40))
    with open(good_audio, "rb") as handle:
        data = handle.read()
    nan = clip.copy()
    nan[len(nan) // 3] = np.nan
    inf = clip.copy()
    inf[len(inf) // 2] = np.inf
    write("empty.wav", False, lambda p: p.write_bytes(b""))
    write("header_only.wav", False, lambda p: p.write_bytes(data[:44]))
    write("no_samples.wav", False, lambda p: _wav(p, np.zeros(0, dtype=np.float32), rate))
    write("nan.wav", False, lambda p: _wav(p, nan, rate, "FLOAT"))
    write("inf.wav", False, lambda p: _wav(p, inf, rate, "FLOAT"))
    write("text.wav", False, lambda p: p.write_text("not audio\n"))
    write("image.wav", False, lambda p: shutil.copy(good_image, p))
    write(
        "garbage_header.wav",
        False,
        lambda p: p.write_bytes(b"RIFF" + struct.pack("<I", 99) + b"WAVEjunk" * 8),
    )
    write("ten_minutes.wav", False, lambda p: _long_wav(p, 600))
    write("one_hour.wav", False, lambda p: _long_wav(p, 3600))
    write("missing.wav", False, lambda p: None)
    write("folder.wav", False, lambda p: p.mkdir())
    return cases


# ----------------------------------------------------------------------------- runs


@dataclass
class Outcome:
    case: str
    verb: str
    kind: str
    seconds: float
    peak_mib: float
    message: str


def _run_child(
    argv: list[str], stdin_text: str, folder: Path, limit: float
) -> tuple[str, int, str, str, float, float]:
    """Fork, run ``main(argv)`` with stdin/stdout/stderr on files; return (status, code,
    stdout, stderr, seconds, peak MiB). status: exit | traceback | hang."""
    stdin_path, out_path, err_path = folder / "in.txt", folder / "out.txt", folder / "err.txt"
    stdin_path.write_text(stdin_text)
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.dup2(os.open(stdin_path, os.O_RDONLY), 0)
            os.dup2(os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 1)
            os.dup2(os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
            sys.stdin = open(0, closefd=False)  # noqa: SIM115
            sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
            code = main(argv)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        except SystemExit as exit_:
            sys.stderr.flush()
            os._exit(exit_.code if isinstance(exit_.code, int) else 2)
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
            os._exit(70)
    deadline = started + limit
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        if time.perf_counter() > deadline:
            os.kill(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            return ("hang", -9, "", "", time.perf_counter() - started, usage.ru_maxrss / 1024)
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    out, err = out_path.read_text(errors="replace"), err_path.read_text(errors="replace")
    state = "traceback" if code == 70 or "Traceback (most recent call last)" in err else "exit"
    return state, code, out, err, seconds, usage.ru_maxrss / 1024


def _classify(case: Case, verb: str, result: tuple[str, int, str, str, float, float]) -> Outcome:
    state, code, out, err, seconds, peak = result
    if state != "exit":
        message = (err.strip().splitlines() or [""])[-1]
        return Outcome(case.name, verb, state, seconds, peak, message[:160])
    error_lines = [line for line in out.splitlines() if line.startswith("error:")]
    refused = code != 0 or bool(error_lines)
    message = (err.strip().splitlines() or error_lines or [""])[-1]
    warned = [line for line in err.splitlines() if "Warning:" in line]
    if not refused and warned:
        kind, message = "warned", warned[-1].split("Warning:", 1)[1].strip()
    elif not refused:
        kind = "ok" if case.valid else "silent"
    elif case.valid:
        kind = "refused_valid"
    else:
        kind = "clean" if str(case.path.name) in message else "unclear"
    return Outcome(case.name, verb, kind, seconds, peak, message[:160])


def _manifest_with(folder: Path, field: str, case: Case, good: dict[str, str]) -> Path:
    row = {"id": "bad", "split": "test", **good, field: str(case.path)}
    path = folder / f"manifest_{case.path.name}.jsonl"
    path.write_text(json.dumps(row) + "\n")
    return path


def _absolute_rows(world: Path, count: int) -> list[dict[str, Any]]:
    """The world's first ``count`` training rows with absolute media paths."""
    rows = []
    for line in (world / "manifest.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["split"] != "train":
            continue
        for key in ("image", "audio"):
            if key in row:
                row[key] = str((world / row[key]).resolve())
        for question in row.get("questions", []):
            if "spoken_question" in question:
                question["spoken_question"] = str((world / question["spoken_question"]).resolve())
        rows.append(row)
        if len(rows) == count:
            return rows
    return rows


def _training_manifest(folder: Path, field: str, case: Case, rows: list[dict[str, Any]]) -> Path:
    """Good training rows and one whose ``field`` is the case's file."""
    bad = {**rows[0], "id": "bad", field: str(case.path)}
    path = folder / f"train_{case.path.name}.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in [*rows[1:], bad]))
    return path


def _decoder_checkpoint(folder: Path, limit: float) -> str:
    """A checkpoint with a decoder, for ``caption`` and ``chat``: the tiny generation recipe on
    a 48-scene world (seconds; its answers do not matter here, only how inputs are read).
    Trained in forked children like every run, so the parent never runs a tensor op."""
    world, run = folder / "tiny_world", folder / "tiny_generate"
    recipe = CONFIGS / "tiny_generate.yaml"
    steps = [
        ["world", "--out", str(world), "--scenes", "48", "--seed", "3", "--quiet"],
        ["train", "--config", str(recipe), "--world", str(world), "--out", str(run), "--quiet"],
    ]
    for argv in steps:
        state, code, _, err, _, _ = _run_child(argv, "", folder, limit)
        if state != "exit" or code != 0:
            raise SystemExit(f"could not train the decoder checkpoint ({argv[0]}): {err[-400:]}")
    return str(run)


def _verbs(
    kind: str,
    case: Case,
    checkpoints: tuple[str, str],
    good: dict[str, str],
    folder: Path,
    rows: list[dict[str, Any]],
) -> dict[str, tuple[list[str], str]]:
    """verb -> (argv, stdin) for one case of ``kind`` (image or audio); ``checkpoints``: the
    model to test and one with a decoder (caption, chat)."""
    path, ck = str(case.path), ["--checkpoint", checkpoints[0]]
    talk = ["--checkpoint", checkpoints[1]]
    manifest = str(_manifest_with(folder, kind, case, good))
    evaluate = ["eval", *ck, "--manifest", manifest, "--no-robustness", "--out", str(folder / "e")]
    recipe = str(CONFIGS / "tiny.yaml")
    training = str(_training_manifest(folder, kind, case, rows))
    train = ["train", "--config", recipe, "--world", training, "--max-steps", "2", "--quiet"]
    shared = {
        "train": ([*train, "--out", str(folder / f"run_{kind}_{case.path.name}")], ""),
        "embed": (["embed", *ck, f"--{kind}", path], ""),
        "chat": (["chat", *talk], f"/{kind} {path}\n{QUESTION}\n/quit\n"),
        "manifest": (["manifest", manifest], ""),
        "eval": (evaluate, ""),
    }
    if kind == "image":
        return {
            "ask": (["ask", *ck, "--image", path, "--text", QUESTION], ""),
            "caption": (["caption", *talk, "--image", path], ""),
            **shared,
        }
    return {
        "ask": (["ask", *ck, "--image", good["image"], "--audio", path], ""),
        "transcribe": (["transcribe", *talk, "--audio", path], ""),
        **shared,
    }


def _text_runs(
    folder: Path, checkpoint: str, good: dict[str, str]
) -> list[tuple[Case, str, list[str], str]]:
    """Captions and questions: empty, control characters, over-long, a 64 MB caption in a
    manifest (a refusal of a typed text names it as ``text N``)."""
    huge = folder / "caption_64mb.jsonl"
    row = {"id": "huge", "split": "test", **good, "text": "a red circle " * 5_000_000}
    huge.write_text(json.dumps(row) + "\n")
    ck = ["--checkpoint", checkpoint]
    evaluate = ["eval", *ck, "--manifest", str(huge), "--no-robustness", "--out", str(folder / "e")]
    typed = Path("text 1")
    ask = ["ask", *ck, "--image", good["image"], "--text"]
    return [
        (Case("text:caption_64mb", huge, False), "manifest", ["manifest", str(huge)], ""),
        (Case("text:caption_64mb", huge, False), "eval", evaluate, ""),
        (Case("text:empty_question", typed, False), "ask", [*ask, ""], ""),
        (Case("text:blank_question", typed, False), "ask", [*ask, " \t "], ""),
        (
            Case("text:control_chars", typed, True),
            "embed",
            ["embed", *ck, "--text", "a red\x00 circle\x1b[2J"],
            "",
        ),
        (
            Case("text:200k_chars", typed, False),
            "embed",
            ["embed", *ck, "--text", "red " * 50_000],
            "",
        ),
        (Case("text:300_words", typed, False), "embed", ["embed", *ck, "--text", "red " * 300], ""),
    ]


def main_benchmark() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", default="runs/default")
    parser.add_argument("--world", default="runs/world")
    parser.add_argument(
        "--limit", type=float, default=120.0, help="seconds before a run counts as a hang"
    )
    parser.add_argument("--json", default=None, help="write every outcome here")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    world = Path(args.world)
    scene = json.loads((world / "manifest.jsonl").read_text().splitlines()[0])
    good_image, good_audio = world / scene["image"], world / scene["audio"]
    good = {
        "image": str(good_image.resolve()),
        "audio": str(good_audio.resolve()),
        "text": scene["text"],
    }
    folder = Path(tempfile.mkdtemp(prefix="bad_inputs_"))
    try:
        cases = [("image", c) for c in _image_cases(folder / "img", good_image, good_audio)]
        cases += [("audio", c) for c in _audio_cases(folder / "aud", good_audio, good_image)]
        checkpoints = (args.checkpoint, _decoder_checkpoint(folder, 600.0))
        rows = _absolute_rows(world, 16)
        runs = [
            (case, verb, argv, stdin)
            for kind, case in cases
            for verb, (argv, stdin) in _verbs(kind, case, checkpoints, good, folder, rows).items()
        ]
        runs += _text_runs(folder, args.checkpoint, good)
        outcomes = []
        for case, verb, argv, stdin in runs:
            outcome = _classify(case, verb, _run_child(argv, stdin, folder, args.limit))
            outcomes.append(outcome)
            print(
                f"{outcome.kind:13s} {outcome.verb:10s} {outcome.case:28s} {outcome.seconds:6.1f} s {outcome.peak_mib:7.0f} MiB  {outcome.message}",
                flush=True,
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    counts = Counter(o.kind for o in outcomes)
    print(f"\n{len(outcomes)} runs: " + ", ".join(f"{k} {counts[k]}" for k in KINDS))
    manifest_verbs = [o for o in outcomes if o.verb in ("manifest", "eval", "train")]
    refused = [o for o in manifest_verbs if o.kind == "clean"]
    with_line = [o for o in refused if ".jsonl:" in o.message]
    print(
        f"manifest, eval and train: {len(refused)} clean refusals, {len(with_line)} of them "
        "naming the manifest line"
    )
    largest = [
        o
        for o in outcomes
        if any(s in o.case for s in ("one_hour", "ten_minutes", "bomb", "64mb", "4000x3000"))
    ]
    for o in largest:
        print(f"peak {o.peak_mib:7.0f} MiB  {o.verb:10s} {o.case}")
    baseline = max(
        (o.peak_mib for o in outcomes if o.case.endswith(":ok.png") or o.case.endswith(":ok.wav")),
        default=0.0,
    )
    print(f"(the same verbs on a valid image or clip peak at {baseline:.0f} MiB)")
    if args.json:
        Path(args.json).write_text(json.dumps([o.__dict__ for o in outcomes], indent=1) + "\n")
    return 0 if counts["traceback"] == counts["hang"] == counts["silent"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main_benchmark())
