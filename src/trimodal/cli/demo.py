"""``trimodal demo``: the main job on the embedded default world.

Today it builds (or reuses) the default world and prints its summary; training and evaluation
join it as those capabilities land.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from trimodal.cli.world import add_world_arguments, world_config
from trimodal.world.generate import build_world, format_summary
from trimodal.world.preview import preview_grid


def register(verbs: Any) -> None:
    """Add the ``demo`` verb."""
    parser = verbs.add_parser("demo", help="run the main job on the embedded default world")
    parser.add_argument("--out", default="runs/demo", help="output folder")
    add_world_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Build the default world, print its summary and where everything landed."""
    started = time.perf_counter()
    out = Path(args.out)
    world_dir = out / "world"
    print(f"[1/1] building the default world in {world_dir} ...", flush=True)
    summary = build_world(world_dir, world_config(args), workers=args.workers, progress=True)
    print(format_summary(summary))
    preview = preview_grid(world_dir, out / "world_preview.png")
    print(f"preview of the first scenes: {preview}")
    print(f"demo finished in {time.perf_counter() - started:.1f}s; outputs under {out}")
    return 0
