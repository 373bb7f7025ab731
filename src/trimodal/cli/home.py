"""``trimodal home``: the smart-home recipe: a room world, training, evaluation, and answering
a typed or spoken command about a room photo with a validated JSON action.

    trimodal home world --out worlds/home
    trimodal home train --world worlds/home --out runs/home [--config configs/apps/home.yaml]
    trimodal home eval --checkpoint runs/home --world worlds/home
    trimodal home --checkpoint runs/home --image room.png --text "it's too dark in here"
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from trimodal.hardware import resolve_device
from trimodal.home.recipe import HomeRecipe
from trimodal.home.world import HomeWorldConfig, build_home_world
from trimodal.locks import FolderLock

DEFAULT_RECIPE = Path("configs/apps/home.yaml")


def register(verbs: Any) -> None:
    """Add ``home`` and its actions."""
    parser = verbs.add_parser(
        "home", help="smart home: a room image + a typed or spoken command -> a JSON action"
    )
    parser.add_argument("--checkpoint", help="a home run (to answer one command)")
    parser.add_argument("--image", help="the room's image (omit with --no-image)")
    parser.add_argument("--no-image", action="store_true", help="answer with the camera off")
    parser.add_argument("--text", help="the command, typed")
    parser.add_argument("--audio", help="the command, spoken (a WAV/FLAC/MP3 file)")
    parser.add_argument("--device", default="auto", help="auto|cpu|cuda[:N]|mps")
    parser.set_defaults(run=_run_answer)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    world = actions.add_parser("world", help="build the room world (images, commands, speech)")
    defaults = HomeWorldConfig()
    world.add_argument("--out", required=True)
    world.add_argument("--train", type=int, default=defaults.train)
    world.add_argument("--val", type=int, default=defaults.val)
    world.add_argument("--test", type=int, default=defaults.test)
    world.add_argument("--seed", type=int, default=defaults.seed)
    world.add_argument("--workers", type=int, default=2)
    world.set_defaults(run=_run_world)
    train = actions.add_parser("train", help="train the home model and score it on test")
    train.add_argument("--world", required=True)
    train.add_argument("--out", required=True)
    train.add_argument("--config", default=None, help=f"YAML recipe (default {DEFAULT_RECIPE})")
    train.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    train.add_argument("--device", default="auto")
    train.add_argument("--quiet", action="store_true")
    train.set_defaults(run=_run_train)
    evaluate = actions.add_parser("eval", help="score a run on a world's test rows")
    evaluate.add_argument("--checkpoint", required=True)
    evaluate.add_argument("--world", required=True)
    evaluate.add_argument("--split", default="test", choices=("train", "val", "test"))
    evaluate.add_argument("--device", default="auto")
    evaluate.set_defaults(run=_run_eval)


def _recipe(path: str | None) -> HomeRecipe:
    if path is not None:
        return HomeRecipe.load(path)
    return HomeRecipe.load(DEFAULT_RECIPE) if DEFAULT_RECIPE.is_file() else HomeRecipe()


def _run_world(args: argparse.Namespace) -> int:
    config = HomeWorldConfig(args.train, args.val, args.test, args.seed)
    path = build_home_world(args.out, config, args.workers)
    print(f"wrote {path} ({args.train} train, {args.val} val, {args.test} test scenes)")
    return 0


def format_scores(test: dict[str, Any]) -> list[str]:
    """One line per input and camera: exact accuracy, slot F1s, refusal P/R; then per kind."""
    lines = [
        f"{'input':<18}{'exact':>7}{'dev F1':>8}{'act F1':>8}{'val F1':>8}{'ref P':>7}{'ref R':>7}"
    ]
    for name, s in test.items():
        f1 = s["slot_f1"]
        lines.append(
            f"{name:<18}{s['exact_accuracy']:>7.3f}{f1['device']:>8.3f}{f1['action']:>8.3f}"
            f"{f1['value']:>8.3f}{s['refusal_precision']:>7.3f}{s['refusal_recall']:>7.3f}"
        )
    kinds = sorted(next(iter(test.values()))["per_kind"])
    lines.append(f"{'exact, per kind':<18}" + "".join(f"{k:>11}" for k in kinds))
    for name, s in test.items():
        lines.append(f"{name:<18}" + "".join(f"{s['per_kind'][k]:>11.3f}" for k in kinds))
    return lines


def _run_train(args: argparse.Namespace) -> int:
    from trimodal.home.run import train_home_run

    recipe = _recipe(args.config)
    if args.epochs is not None:
        recipe.epochs = args.epochs
    device = resolve_device(args.device)
    with FolderLock(Path(args.out), "home training"):
        report = None if args.quiet else (lambda line: print(line, flush=True))
        run, metrics = train_home_run(args.world, recipe, device, report)
        run.save(args.out, metrics)
    print(f"trained in {metrics['train_seconds']} s ({metrics['rows']['train']} scenes)")
    print("\n".join(format_scores(metrics["test"])))
    return 0


def _run_eval(args: argparse.Namespace) -> int:
    from trimodal.home.data import home_tensors
    from trimodal.home.evaluate import evaluate_home
    from trimodal.home.run import HomeRun
    from trimodal.home.world import load_home_world

    run = HomeRun.load(args.checkpoint, resolve_device(args.device))
    rows = [r for r in load_home_world(args.world) if r["split"] == args.split]
    if not rows:
        raise ValueError(f"{args.world}: no '{args.split}' rows")
    tensors = home_tensors(rows, Path(args.world), run.tokenizer, run.recipe.max_length)
    scores = evaluate_home(run.model, tensors, run.recipe.policy(), run.device)
    print("\n".join(format_scores(scores)))
    return 0


def _run_answer(args: argparse.Namespace) -> int:
    from trimodal.home.run import HomeRun

    if args.checkpoint is None:
        raise ValueError("give --checkpoint RUN with --image and --text or --audio, or an action")
    if (args.image is None) == (not args.no_image):
        raise ValueError("give --image ROOM, or --no-image to answer with the camera off")
    run = HomeRun.load(args.checkpoint, resolve_device(args.device))
    print(json.dumps(run.answer(args.image, args.text, args.audio), indent=2))
    return 0
