"""``trimodal llava``: a pretrained LLM (SmolLM2) that sees through a checkpoint's image tower.

trimodal llava train --checkpoint runs/default --world runs/world --out runs/llava
trimodal llava eval --checkpoint runs/llava --world runs/world
trimodal caption --checkpoint runs/llava --image scene.png     # and trimodal chat
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from trimodal.cli.train import add_override_argument
from trimodal.io import atomic_write_text
from trimodal.locks import FolderLock


def register(verbs: Any) -> None:
    """Add ``llava`` and its actions."""
    parser = verbs.add_parser(
        "llava", help="a pretrained LLM that captions and chats through a checkpoint's image tower"
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    train = actions.add_parser("train", help="train the projector into the frozen LLM")
    train.add_argument(
        "--checkpoint", required=True, help="a trained trimodal run (its image tower, frozen)"
    )
    train.add_argument("--world", required=True, help="a world folder or manifest")
    train.add_argument("--out", required=True)
    train.add_argument("--steps", type=int, default=None, help="projector updates (default 200)")
    add_override_argument(train)
    train.add_argument("--quiet", action="store_true")
    train.set_defaults(run=_run_train)
    evaluate = actions.add_parser("eval", help="caption test scenes; BLEU-4, CIDEr-D, attributes")
    evaluate.add_argument("--checkpoint", required=True, help="a llava run")
    evaluate.add_argument("--world", required=True)
    evaluate.add_argument("--scenes", type=int, default=200)
    evaluate.add_argument("--split", default="test")
    evaluate.add_argument("--out", default=None, help="write the figures as JSON here")
    evaluate.set_defaults(run=_run_eval)


def _manifest(world: str) -> str:
    from trimodal.train.loop import manifest_path_of

    return str(manifest_path_of(world))


def _run_train(args: argparse.Namespace) -> int:
    from trimodal.config import apply_overrides, from_dict, to_dict
    from trimodal.llava.run import LlavaSettings, train_llava

    values = apply_overrides(to_dict(LlavaSettings()), args.overrides)
    settings = from_dict(LlavaSettings, values, "llava settings")
    if args.steps is not None:
        settings.steps = args.steps
    with FolderLock(Path(args.out), "llava training"):
        report = None if args.quiet else (lambda line: print(line, flush=True))
        run = train_llava(args.checkpoint, _manifest(args.world), settings, report)
        run.save(args.out)
    info = run.info
    print(
        f"trained the projector into {settings.llm} in {info['fit_seconds']:.1f} s "
        f"({settings.steps} steps, {info['seconds']:.1f} s in all); final loss "
        f"{info['final_loss']:.3f}"
    )
    return 0


def _run_eval(args: argparse.Namespace) -> int:
    from trimodal.llava.evaluate import evaluate_llava
    from trimodal.llava.run import LlavaRun

    run = LlavaRun.load(args.checkpoint)
    text = json.dumps(evaluate_llava(run, _manifest(args.world), args.scenes, args.split), indent=2)
    if args.out:
        atomic_write_text(args.out, text + "\n")
    print(text)
    return 0
