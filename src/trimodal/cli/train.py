"""``trimodal train``: train a recipe on a world folder or manifest (alone or under torchrun)."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from trimodal.cli.hardware import add_hardware_arguments
from trimodal.config import load_config
from trimodal.train.loop import train


def register(verbs: Any) -> None:
    """Add the ``train`` verb."""
    parser = verbs.add_parser("train", help="train a model (stage 1 align, stage 2 multi-task)")
    parser.add_argument("--config", default="configs/default.yaml", help="YAML recipe")
    parser.add_argument("--world", required=True, help="world folder or manifest file")
    parser.add_argument("--out", required=True, help="run folder")
    add_override_argument(parser)
    add_hardware_arguments(parser, default=None)
    parser.add_argument(
        "--resume", action="store_true", help="continue from the run folder's last checkpoint"
    )
    parser.add_argument(
        "--max-steps", type=int, default=0, help="stop after this many steps (0: whole plan)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(run=run)


def add_override_argument(parser: argparse.ArgumentParser) -> None:
    """``--set A.B=C`` (repeatable): override a value of the YAML recipe."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="A.B=C",
        help="override a recipe value",
    )


def run(args: argparse.Namespace) -> int:
    """Train and print the run summary as JSON."""
    overrides = list(args.overrides)
    if args.device is not None:
        overrides.append(f"train.device={args.device}")
    if args.precision is not None:
        overrides.append(f"train.precision={args.precision}")
    config = load_config(args.config, overrides)
    summary = train(
        config,
        args.world,
        args.out,
        resume=args.resume,
        max_steps=args.max_steps,
        progress=not args.quiet,
    )
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one summary (rank 0's)
        print(json.dumps(summary, indent=2))
    return 0
