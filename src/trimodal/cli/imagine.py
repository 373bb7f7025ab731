"""``trimodal imagine``: images from words for the world's scenes.

trimodal imagine train --checkpoint runs/default --world runs/world --out runs/imagine
trimodal imagine eval --checkpoint runs/imagine --world runs/world
trimodal imagine --checkpoint runs/imagine --text "a large red star to the left of a small
    blue circle" --out star.png [--seed 0] [--count 4]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from trimodal.cli.train import add_override_argument
from trimodal.io import atomic_write_text
from trimodal.locks import FolderLock

STEPS_HELP = "diffusion sampler steps (default: the run's)"


def register(verbs: Any) -> None:
    """Add ``imagine`` and its actions."""
    parser = verbs.add_parser(
        "imagine", help="images from words (a tokenizer + our decoder, or diffusion)"
    )
    parser.add_argument("--checkpoint", help="an imagine run (to draw an image)")
    parser.add_argument("--text", help="the caption to draw")
    parser.add_argument("--out", help="PNG to write (several images: a row of them)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same image")
    parser.add_argument("--count", type=int, default=1, help="images to draw (1-16)")
    parser.add_argument("--temperature", type=float, default=1.0, help="0: greedy")
    parser.add_argument("--top-k", type=int, default=0, help="sample from the k likeliest ids")
    parser.add_argument(
        "--guidance",
        type=float,
        default=None,
        help="classifier-free guidance (1: none; default: the run's)",
    )
    parser.add_argument("--steps", type=int, default=None, help=STEPS_HELP)
    parser.add_argument("--device", default="auto", help="auto|cpu|cuda[:N]|mps")
    parser.set_defaults(run=_run_draw)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    train = actions.add_parser("train", help="train the image tokenizer and the caption prior")
    train.add_argument(
        "--checkpoint",
        required=True,
        help="a trained trimodal run (its text "
        "encoder reads the captions; its towers judge the images)",
    )
    train.add_argument("--world", required=True, help="a world folder or manifest")
    train.add_argument("--out", required=True)
    train.add_argument(
        "--method",
        choices=("tokens", "diffusion"),
        default="tokens",
        help="tokens: a VQ-VAE tokenizer and our decoder (default); diffusion: a pixel-space "
        "denoiser",
    )
    train.add_argument("--tokenizer-steps", type=int, default=None)
    train.add_argument("--prior-steps", type=int, default=None)
    train.add_argument("--diffusion-steps", type=int, default=None, help="denoiser updates")
    add_override_argument(train)
    train.add_argument("--quiet", action="store_true")
    train.set_defaults(run=_run_train)
    evaluate = actions.add_parser("eval", help="judge generated test images with the towers")
    evaluate.add_argument("--checkpoint", required=True, help="an imagine run")
    evaluate.add_argument("--world", required=True)
    evaluate.add_argument("--scenes", type=int, default=300)
    evaluate.add_argument(
        "--split", default="test", help="scenes to judge (val: to choose sampling settings)"
    )
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--temperature", type=float, default=1.0)
    evaluate.add_argument("--top-k", type=int, default=0)
    evaluate.add_argument("--guidance", type=float, default=None)
    evaluate.add_argument("--steps", type=int, default=None, help=STEPS_HELP)
    evaluate.add_argument("--out", default=None, help="write the figures as JSON here")
    evaluate.set_defaults(run=_run_eval)


def _manifest(world: str) -> str:
    from trimodal.train.loop import manifest_path_of

    return str(manifest_path_of(world))


def _run_train(args: argparse.Namespace) -> int:
    from trimodal.config import apply_overrides, from_dict, to_dict
    from trimodal.imagine.run import ImagineSettings, train_imagine

    values = apply_overrides(to_dict(ImagineSettings(method=args.method)), args.overrides)
    settings = from_dict(ImagineSettings, values, "imagine settings")
    if args.tokenizer_steps is not None:
        settings.tokens.tokenizer_steps = args.tokenizer_steps
    if args.prior_steps is not None:
        settings.tokens.prior_steps = args.prior_steps
    if args.diffusion_steps is not None:
        settings.diffusion.steps = args.diffusion_steps
    with FolderLock(Path(args.out), "imagine training"):
        report = None if args.quiet else (lambda line: print(line, flush=True))
        run = train_imagine(args.checkpoint, _manifest(args.world), settings, report)
        run.save(args.out)
    info = run.info
    if settings.method == "tokens":
        detail = (
            f" (tokenizer {info['tokenizer_seconds']} s, prior {info['prior_seconds']} s); "
            f"{info['codes_used']} of {settings.tokens.tokenizer.codes} codes in use"
        )
    else:
        detail = f" ({settings.diffusion.steps} denoiser steps)"
    print(
        f"trained {settings.method} in {info['seconds']:.1f} s on {info['train_images']} images"
        + detail
    )
    return 0


def _run_eval(args: argparse.Namespace) -> int:
    from trimodal.imagine.evaluate import evaluate_imagine
    from trimodal.imagine.run import ImagineRun

    run = ImagineRun.load(args.checkpoint)
    figures = evaluate_imagine(
        run,
        _manifest(args.world),
        args.scenes,
        args.seed,
        args.temperature,
        args.top_k,
        args.guidance,
        args.steps,
        args.split,
    )
    text = json.dumps(figures, indent=2)
    if args.out:
        atomic_write_text(args.out, text + "\n")
    print(text)
    return 0


def _run_draw(args: argparse.Namespace) -> int:
    from PIL import Image

    from trimodal.imagine.run import ImagineRun

    if args.checkpoint is None or args.text is None or args.out is None:
        raise ValueError("give --checkpoint RUN --text CAPTION --out IMAGE.png (or an action)")
    if not 1 <= args.count <= 16:
        raise ValueError(f"--count must be 1-16, got {args.count}")
    run = ImagineRun.load(args.checkpoint, args.device)
    images = run.imagine(
        [args.text] * args.count,
        args.seed,
        args.temperature,
        args.top_k,
        args.guidance,
        args.steps,
    )
    row = Image.new("RGB", (64 * len(images), 64))
    for index, image in enumerate(images):
        row.paste(image, (64 * index, 0))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.tmp")
    row.save(temporary, format="PNG")
    temporary.replace(out)
    print(f"wrote {out} ({len(images)} image(s), seed {args.seed})")
    return 0
