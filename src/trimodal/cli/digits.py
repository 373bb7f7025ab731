"""``trimodal digits``: build the handwritten-digits world, train the recipe, compare to an SVM.

Layout of ``--out DIR``::

    DIR/world/               scikit-learn's digits with written and spoken names (reused)
    DIR/run/                 the trained run (reused when it was trained with the same recipe)
    DIR/digits_metrics.json  every accuracy, the settings and the wall times
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from trimodal.cli.train import add_override_argument
from trimodal.config import Config, load_config, to_dict
from trimodal.eval.digits import evaluate_digits, format_table
from trimodal.inference import Model
from trimodal.io import atomic_write_text
from trimodal.train.checkpoint import load_training_state
from trimodal.train.loop import torch_threads, train
from trimodal.world.digits import build_digits, format_summary


def register(verbs: Any) -> None:
    """Add the ``digits`` verb."""
    parser = verbs.add_parser(
        "digits", help="handwritten digits: zero-shot and linear probe against an SVM baseline"
    )
    parser.add_argument("--out", required=True, help="folder for the world, run and metrics")
    parser.add_argument("--config", default="configs/digits.yaml", help="YAML recipe")
    parser.add_argument(
        "--seed", type=int, default=0, help="seeds the captions, voices, split and training"
    )
    add_override_argument(parser)
    parser.add_argument("--workers", type=int, default=None, help="processes for speech")
    parser.add_argument(
        "--limit", type=int, default=0, help="use the first N digits only (0: all 1,797)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(run=run)


def _train_or_reuse(config: Config, world: Path, run_dir: Path, progress: bool) -> str:
    """Train into ``run_dir``; a run there with the same recipe and world is resumed.

    Resuming a finished run is a no-op. ``run_dir/digits_world.json`` records the world's
    ``digits.json`` (seed, limit, ...), so a run is never reused on another world.

    Returns:
        ``"trained"``, ``"resumed"`` (an interrupted run finished) or ``"reused"``.
    """
    saved, marker = run_dir / "config.json", run_dir / "digits_world.json"
    world_record = json.loads((world / "digits.json").read_text())
    if (run_dir / "checkpoint").is_dir() and saved.is_file():
        same_recipe = json.loads(saved.read_text()) == json.loads(json.dumps(to_dict(config)))
        same_world = marker.is_file() and json.loads(marker.read_text()) == world_record
        if not (same_recipe and same_world):
            raise FileExistsError(
                f"{run_dir} holds a run trained with another recipe, seed or digits world "
                "(--limit); remove it or choose another --out"
            )
        before = load_training_state(run_dir / "checkpoint").global_step
        summary = train(config, world, run_dir, resume=True, progress=progress)
        return "reused" if summary["global_step"] == before else "resumed"
    atomic_write_text(marker, json.dumps(world_record, indent=2))
    train(config, world, run_dir, progress=progress)
    return "trained"


def run(args: argparse.Namespace) -> int:
    """Build, train, evaluate; print the table and write ``digits_metrics.json``."""
    out = Path(args.out)
    config = load_config(args.config, [*args.overrides, f"train.seed={args.seed}"])
    timings: dict[str, float] = {}
    started = time.perf_counter()
    summary = build_digits(
        out / "world", seed=args.seed, image_size=64, workers=args.workers, limit=args.limit
    )
    print(format_summary(summary), flush=True)
    timings["build_s"] = time.perf_counter() - started
    mark = time.perf_counter()
    status = _train_or_reuse(config, out / "world", out / "run", progress=not args.quiet)
    timings["train_s"] = time.perf_counter() - mark
    print(f"run at {out / 'run'} ({status}, {timings['train_s']:.1f} s)", flush=True)
    mark = time.perf_counter()
    with torch_threads(config.train.threads):
        metrics = evaluate_digits(Model.from_pretrained(out / "run"), out / "world")
    timings["eval_s"] = time.perf_counter() - mark
    timings["total_s"] = time.perf_counter() - started
    record = {
        **metrics,
        "seed": args.seed,
        "config": args.config,
        "overrides": args.overrides,
        "run": status,
        "timings": {k: round(v, 2) for k, v in timings.items()},
    }
    atomic_write_text(out / "digits_metrics.json", json.dumps(record, indent=2))
    print(format_table(metrics))
    print(f"wall time {timings['total_s']:.1f} s; metrics in {out / 'digits_metrics.json'}")
    return 0
