"""Data verbs: ``trimodal manifest`` (validate), ``trimodal convert``, ``trimodal tokenizer``."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from typing import Any

from trimodal.data.converters import (
    KARPATHY_SPLITS,
    ConversionResult,
    audio_captions_csv_to_manifest,
    coco_captions_to_manifest,
    karpathy_to_manifest,
    msrvtt_to_manifest,
    vqa_to_manifest,
)
from trimodal.data.manifest import load_manifest
from trimodal.data.tokenizer import manifest_texts, train_tokenizer


def register(verbs: Any) -> None:
    """Add the ``manifest``, ``convert`` and ``tokenizer`` verbs."""
    manifest = verbs.add_parser("manifest", help="validate a manifest and print its counts")
    manifest.add_argument("manifest", help="JSON Lines manifest")
    manifest.add_argument("--on-error", choices=("raise", "skip"), default="raise")
    manifest.add_argument("--check-files", choices=("decode", "exists", "none"), default="decode")
    manifest.set_defaults(run=run_validate)

    convert = verbs.add_parser(
        "convert", help="convert COCO / VQA / Karpathy / audio-caption data to a manifest"
    )
    formats = convert.add_subparsers(dest="format", required=True, metavar="FORMAT")
    coco = formats.add_parser("coco", help="COCO captions JSON: one row per image")
    coco.add_argument("--captions", required=True)
    coco.add_argument("--images", required=True, help="folder the images' file_name is under")
    vqa = formats.add_parser("vqa", help="VQA v2 questions + annotations JSON")
    vqa.add_argument("--questions", required=True)
    vqa.add_argument("--annotations", required=True)
    vqa.add_argument("--images", required=True, help="image folder")
    vqa.add_argument(
        "--image-pattern",
        default=None,
        help="image file name with {image_id} (and {data_subtype}); default: COCO's "
        "COCO_{data_subtype}_{image_id:012d}.jpg with the files' data_subtype",
    )
    karpathy = formats.add_parser(
        "karpathy", help="Karpathy split JSON (dataset_coco.json, dataset_flickr30k.json)"
    )
    karpathy.add_argument("--json", required=True, help="dataset_coco.json or similar")
    karpathy.add_argument(
        "--images", required=True, help="folder holding filepath/filename (COCO) or filename"
    )
    karpathy.add_argument(
        "--splits",
        action="append",
        help=f"Karpathy split(s), comma list or repeated: {', '.join(KARPATHY_SPLITS)} "
        "(default: test)",
    )
    audio = formats.add_parser("audio-captions", help="AudioCaps / Clotho style CSV")
    audio.add_argument("--csv", required=True)
    audio.add_argument("--audio", required=True, help="audio folder")
    audio.add_argument("--audio-extension", default=".wav")
    video = formats.add_parser("msrvtt", help="MSR-VTT annotation JSON (videos + sentences)")
    video.add_argument("--json", required=True, help="train_val_videodatainfo.json or similar")
    video.add_argument("--videos", required=True, help="folder of <video_id>.mp4 clips")
    video.add_argument("--video-extension", default=".mp4")
    for sub in (coco, vqa, karpathy, audio, video):
        sub.add_argument("--out", required=True, help="manifest to write")
        sub.add_argument(
            "--on-error",
            choices=("raise", "skip"),
            default="raise",
            help="skip: leave bad records out and list them (default: stop at the first)",
        )
    for sub in (coco, vqa, audio):
        sub.add_argument("--split", default="train")
    convert.set_defaults(run=run_convert)

    tokenizer = verbs.add_parser("tokenizer", help="train a BPE tokenizer on a manifest's text")
    tokenizer.add_argument("--manifest", required=True)
    tokenizer.add_argument("--out", required=True, help="tokenizer.json to write")
    tokenizer.add_argument("--vocab-size", type=int, default=1000)
    tokenizer.set_defaults(run=run_tokenizer)


def run_validate(args: argparse.Namespace) -> int:
    """Validate; print counts per split and modality, and every skipped row."""
    manifest = load_manifest(args.manifest, on_error=args.on_error, check_files=args.check_files)
    splits = Counter(sample.split for sample in manifest.samples)
    modalities = Counter(m for sample in manifest.samples for m in sample.modalities)
    questions = sum(len(sample.questions) for sample in manifest.samples)
    print(f"{manifest.path}: {len(manifest.samples)} valid samples, {questions} questions")
    print("  per split: " + ", ".join(f"{k} {v}" for k, v in sorted(splits.items())))
    print("  per modality: " + ", ".join(f"{k} {v}" for k, v in sorted(modalities.items())))
    if manifest.skipped:
        print(manifest.skipped_report(), file=sys.stderr)
    return 0


def _splits(values: list[str] | None) -> list[str]:
    """``--splits`` values, each a comma list; ``["test"]`` when none was given."""
    if not values:
        return ["test"]
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def _convert(args: argparse.Namespace) -> ConversionResult:
    if args.format == "coco":
        return coco_captions_to_manifest(
            args.captions, args.images, args.out, args.split, on_error=args.on_error
        )
    if args.format == "vqa":
        return vqa_to_manifest(
            args.questions,
            args.annotations,
            args.images,
            args.out,
            args.split,
            image_pattern=args.image_pattern,
            on_error=args.on_error,
        )
    if args.format == "karpathy":
        return karpathy_to_manifest(
            args.json, args.images, args.out, _splits(args.splits), on_error=args.on_error
        )
    if args.format == "msrvtt":
        return msrvtt_to_manifest(
            args.json, args.videos, args.out, args.video_extension, on_error=args.on_error
        )
    return audio_captions_csv_to_manifest(
        args.csv, args.audio, args.out, args.split, args.audio_extension, on_error=args.on_error
    )


def run_convert(args: argparse.Namespace) -> int:
    """Run the chosen converter; report the rows written and, on stderr, any skipped record."""
    result = _convert(args)
    print(f"wrote {result.rows} rows to {args.out}")
    if result.skipped:
        print(result.report(), file=sys.stderr)
    return 0


def run_tokenizer(args: argparse.Namespace) -> int:
    """Train on the train split's text and save tokenizer.json."""
    manifest = load_manifest(args.manifest, check_files="none")
    tokenizer = train_tokenizer(manifest_texts(manifest), vocab_size=args.vocab_size)
    tokenizer.save(args.out)
    print(f"trained a {tokenizer.vocab_size}-token BPE tokenizer; saved to {args.out}")
    return 0
