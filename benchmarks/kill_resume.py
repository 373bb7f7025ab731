"""kill -9 at random moments of a training run, then resume: how many end bit-exact?

Trains the tiny recipe (a checkpoint after every step) on a 48-scene world once without
interruption, then ``--kills`` times starts the same run, kills it with SIGKILL after a random
delay drawn between just before its first checkpoint and its end (seeded; so kills land in
steps, in checkpoint writes and between the swap's renames alike; start-up is skipped), resumes it with ``--resume`` (or starts afresh when the kill came
before the first checkpoint) and compares every weight with the uninterrupted run's. It prints
one line per kill and the counts: kills, resumed, restarted, bit-exact, stale staging folders
left after the resume.

    python benchmarks/kill_resume.py --kills 20
"""

from __future__ import annotations

import argparse
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
TRAIN = [sys.executable, "-m", "trimodal.cli.main", "train", "--quiet"]


def _train(world: Path, run: Path, *extra: str) -> subprocess.Popen[bytes]:
    recipe = ["--config", str(ROOT / "configs" / "tiny.yaml"), "--set", "train.checkpoint_every=1"]
    command = [*TRAIN, *recipe, "--world", str(world), "--out", str(run), *extra]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _finish(process: subprocess.Popen[bytes]) -> None:
    _, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"training failed ({process.returncode}): {err.decode()[-600:]}")


def _same(a: Path, b: Path) -> bool:
    first = load_file(str(a / "checkpoint" / "model.safetensors"))
    second = load_file(str(b / "checkpoint" / "model.safetensors"))
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    draw = random.Random(args.seed)
    folder = Path(tempfile.mkdtemp(prefix="kill_resume_"))
    world = folder / "world"
    command = [sys.executable, "-m", "trimodal.cli.main", "world", "--out", str(world)]
    subprocess.run([*command, "--scenes", "48", "--seed", "3", "--quiet"], check=True)
    reference = folder / "reference"
    started, first_checkpoint = time.perf_counter(), None
    process = _train(world, reference)
    while process.poll() is None:
        if first_checkpoint is None and (reference / "checkpoint").is_dir():
            first_checkpoint = time.perf_counter() - started
        time.sleep(0.01)
    _finish(process)
    duration = time.perf_counter() - started
    earliest = 0.9 * (first_checkpoint or 0.0)
    print(f"uninterrupted run: {duration:.1f} s, first checkpoint at {earliest / 0.9:.1f} s")
    resumed = restarted = exact = stale = 0
    for number in range(args.kills):
        run = folder / f"run{number}"
        delay = draw.uniform(earliest, duration)
        process = _train(world, run)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        if (run / "checkpoint").is_dir() or (run / ".checkpoint.old").is_dir():
            _finish(_train(world, run, "--resume"))
            resumed, how = resumed + 1, "resumed"
        else:
            _finish(_train(world, run))
            restarted, how = restarted + 1, "restarted"
        same = _same(reference, run)
        left = len(list(run.glob(".checkpoint.*")))
        exact, stale = exact + same, stale + left
        print(f"kill {number + 1:2d} at {delay:5.1f} s: {how}, bit-exact {same}, stale {left}")
    print(
        f"\n{args.kills} kills: {resumed} resumed, {restarted} restarted (killed before the first"
        f" checkpoint), {exact} bit-exact, {stale} stale staging folders left"
    )
    return 0 if exact == args.kills and stale == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
