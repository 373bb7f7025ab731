"""``trimodal world``: build the embedded default world and print its summary."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from trimodal.world.generate import (
    VARIED_PARTS,
    WorldConfig,
    build_world,
    format_summary,
    varied,
)
from trimodal.world.preview import preview_grid


def add_world_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by ``world`` and ``demo``."""
    defaults = WorldConfig()
    parser.add_argument("--scenes", type=int, default=defaults.scenes, help="number of scenes")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="world seed")
    parser.add_argument(
        "--image-size", type=int, default=defaults.image_size, help="image side (px)"
    )
    parser.add_argument(
        "--noise-snr", type=float, default=None, help="add white noise to speech at this SNR (dB)"
    )
    parser.add_argument(
        "--video-frames",
        type=int,
        default=defaults.video_frames,
        help="also render an MP4 clip of this many frames per scene, in which objects move, "
        "with motion captions and questions (0: no video)",
    )
    parser.add_argument(
        "--varied",
        nargs="?",
        const=",".join(VARIED_PARTS),
        default="",
        metavar="PARTS",
        help="a varied world: many phrasings, 21 voices at 90-260 words a minute, background "
        "noise and telephone channels, turned shapes, gradient and textured backgrounds, "
        "lighting (see docs/world.md); held-out phrasings and voices stay out. PARTS, "
        "comma-separated, varies only some of phrasing, speech, drawing (default: all)",
    )
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")


def world_config(args: argparse.Namespace) -> WorldConfig:
    """The :class:`WorldConfig` named by parsed arguments."""
    config = WorldConfig(
        scenes=args.scenes,
        seed=args.seed,
        image_size=args.image_size,
        noise_snr=args.noise_snr,
        video_frames=args.video_frames,
    )
    parts = [part.strip() for part in (getattr(args, "varied", "") or "").split(",")]
    chosen = [part for part in parts if part]
    try:
        return varied(config, chosen) if chosen else config
    except ValueError as error:
        raise ValueError(f"--varied: {error}") from None


def register(verbs: Any) -> None:
    """Add the ``world`` verb."""
    parser = verbs.add_parser("world", help="build the embedded tri-modal world")
    parser.add_argument("--out", required=True, help="world directory")
    add_world_arguments(parser)
    parser.add_argument("--preview", help="also write a PNG contact sheet of the first scenes")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Build (or reuse) the world and print its summary."""
    summary = build_world(
        args.out, world_config(args), workers=args.workers, progress=not args.quiet
    )
    print(json.dumps(asdict(summary), indent=2) if args.json else format_summary(summary))
    if args.preview:
        print(f"preview written to {preview_grid(args.out, args.preview)}")
    return 0
