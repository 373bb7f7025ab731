"""``trimodal ask``, ``trimodal embed`` and ``trimodal eval``: use a trained checkpoint."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

import torch

from trimodal.cli.hardware import add_hardware_arguments, hardware_options
from trimodal.inference import Model
from trimodal.locks import FolderLock
from trimodal.modalities import stored_modalities
from trimodal.train.loop import manifest_path_of


def register(verbs: Any) -> None:
    """Add the ``ask``, ``embed`` and ``eval`` verbs."""
    ask = verbs.add_parser(
        "ask", help="answer a typed or spoken question about an image (or a video, ...)"
    )
    ask.add_argument("--checkpoint", required=True, help="run folder or checkpoint folder")
    ask.add_argument("--image", help="the image asked about")
    for modality in stored_modalities():
        ask.add_argument(f"--{modality.name}", help=f"the {modality.name} file asked about")
    question = ask.add_mutually_exclusive_group(required=True)
    question.add_argument("--text", help="the question, typed")
    question.add_argument("--audio", help="the question, spoken (any audio file)")
    ask.add_argument("--top", type=int, default=1, help="print the top-k answers")
    add_hardware_arguments(ask)
    ask.add_argument(
        "--whisper",
        choices=["tiny.en", "base"],
        help="hear a spoken question with a pretrained Whisper (towers extra) and answer its "
        "transcript as a typed question",
    )
    ask.set_defaults(run=run_ask)

    embed = verbs.add_parser("embed", help="embed images, audio or text into the shared space")
    embed.add_argument("--checkpoint", required=True)
    kind = embed.add_mutually_exclusive_group(required=True)
    kind.add_argument("--image", nargs="+")
    kind.add_argument("--audio", nargs="+")
    kind.add_argument("--text", nargs="+")
    for modality in stored_modalities():
        kind.add_argument(f"--{modality.name}", nargs="+")
    embed.add_argument(
        "--save", help="write the embeddings to this .safetensors file instead of printing"
    )
    add_hardware_arguments(embed)
    embed.set_defaults(run=run_embed)

    evaluate = verbs.add_parser(
        "eval",
        help="the evaluation harness: retrieval, VQA, baselines, zero-shot, missing modality, "
        "robustness, Grad-CAM; writes metrics.json, report.md and plots",
    )
    evaluate.add_argument("--checkpoint", required=True)
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--world", help="a world folder (its manifest.jsonl)")
    source.add_argument("--manifest", help="any manifest file (COCO/VQA-converted, ...)")
    evaluate.add_argument("--split", default="test", help="evaluation split (default: test)")
    evaluate.add_argument("--out", help="report folder (default: <checkpoint>/eval-<split>)")
    evaluate.add_argument(
        "--baseline",
        action="append",
        default=[],
        metavar="NAME=RUN",
        help="a trained blind baseline to report beside the model (repeatable)",
    )
    evaluate.add_argument("--no-robustness", action="store_true", help="skip robustness curves")
    evaluate.add_argument(
        "--robustness-scenes",
        type=int,
        default=500,
        help="scenes of the split used by the robustness curves (0: all; default 500)",
    )
    evaluate.add_argument("--examples", type=int, default=6, help="Grad-CAM example scenes")
    evaluate.add_argument(
        "--vqa-rules",
        choices=("official", "2017"),
        default="official",
        help="release of the official VQA script that scores questions with human answers: "
        "'official' (its current script, the default) or '2017' (the v2.0 release LAVIS copies)",
    )
    evaluate.add_argument(
        "--shifts",
        nargs="*",
        metavar="SHIFT",
        help="also run the robustness suite: the world's test scenes re-rendered with held-out "
        "phrasings, voices, rates, noise, channels, rotations, backgrounds (all, or the named "
        "shifts), each against an in-distribution control",
    )
    evaluate.add_argument(
        "--shift-scenes", type=int, default=300, help="test scenes per shift (default 300)"
    )
    evaluate.add_argument(
        "--shift-seed",
        type=int,
        default=None,
        help="world seed whose test scenes the suite renders (default: --world's seed, else 0)",
    )
    evaluate.add_argument(
        "--shift-worlds",
        help="folder for the suite's worlds, built once and reused (default: "
        "<checkpoint>/shift-worlds)",
    )
    evaluate.add_argument("--json", action="store_true", help="print metrics.json to stdout")
    add_hardware_arguments(evaluate)
    evaluate.set_defaults(run=run_eval)


def run_ask(args: argparse.Namespace) -> int:
    """Print the answer(s) and probability."""
    media = {m.name: getattr(args, m.name) for m in stored_modalities()}
    media = {name: path for name, path in media.items() if path is not None}
    if args.image is None and not media:
        names = ", ".join(f"--{m.name}" for m in stored_modalities())
        raise ValueError(f"ask needs --image or a file to ask about ({names})")
    predictor = Model.from_pretrained(args.checkpoint, **hardware_options(args))
    whisper = getattr(args, "whisper", None)
    if whisper is not None:
        if args.audio is None:
            raise ValueError("--whisper hears a spoken question: give it with --audio")
        from trimodal.towers.whisper import WhisperTower

        heard = WhisperTower.load(whisper).transcribe(args.audio)
        print(f"heard (whisper {whisper}): {heard}", file=sys.stderr)
        answers = predictor.ask(args.image, text=heard, top=args.top, **media)
    else:
        answers = predictor.ask(args.image, text=args.text, audio=args.audio, top=args.top, **media)
    if whisper is None and args.audio is not None and predictor.network.transcriber is not None:
        print(f"heard: {predictor.transcribe_question(args.audio)}", file=sys.stderr)
    for answer, probability in answers:
        print(f"{answer}\t{probability:.3f}")
    return 0


def run_embed(args: argparse.Namespace) -> int:
    """Print (or save) L2-normalized embeddings, one row per input."""
    predictor = Model.from_pretrained(args.checkpoint, **hardware_options(args))
    if args.image:
        inputs, embeddings = args.image, predictor.embed_images(args.image)
    elif args.audio:
        inputs, embeddings = args.audio, predictor.embed_audio(args.audio)
    elif args.text:
        inputs, embeddings = args.text, predictor.embed_texts(args.text)
    else:
        name = next(m.name for m in stored_modalities() if getattr(args, m.name))
        inputs, embeddings = getattr(args, name), predictor.embed_media(name, getattr(args, name))
    if args.save:
        from safetensors.torch import save_file

        save_file(
            {"embeddings": embeddings.contiguous()},
            args.save,
            metadata={"inputs": json.dumps(inputs)},
        )
        print(f"saved {tuple(embeddings.shape)} embeddings to {args.save}")
    else:
        for name, row in zip(inputs, embeddings.tolist(), strict=True):
            print(json.dumps({"input": name, "embedding": [round(v, 6) for v in row]}))
    return 0


def run_eval(args: argparse.Namespace) -> int:
    """Run the harness, write the report folder, print a summary (or the JSON)."""
    from pathlib import Path

    from trimodal.eval.harness import HarnessSettings, evaluate_checkpoint
    from trimodal.eval.report import write_report
    from trimodal.eval.summary import summary_table

    settings = HarnessSettings(
        split=args.split,
        robustness=not args.no_robustness,
        robustness_scenes=args.robustness_scenes,
        examples=args.examples,
        baselines=parse_baselines(args.baseline),
        vqa_rules=args.vqa_rules,
    )
    manifest = Path(args.manifest) if args.manifest else manifest_path_of(args.world)
    predictor = Model.from_pretrained(args.checkpoint, **hardware_options(args))
    quiet = args.json
    out = Path(args.out) if args.out else Path(args.checkpoint) / f"eval-{args.split}"
    with FolderLock(out, "evaluation"), torch.no_grad():
        metrics = evaluate_checkpoint(
            predictor, manifest, settings, progress=None if quiet else lambda m: print(f"... {m}")
        )
        if args.shifts is not None:
            metrics["shifts"] = _shift_suite(args, predictor, None if quiet else print)
        report = write_report(metrics, out)
    if quiet:
        print((out / "metrics.json").read_text())
    else:
        print(summary_table(metrics))
        if "shifts" in metrics:
            from trimodal.eval.shifts import format_shift_table

            print(format_shift_table(metrics["shifts"]))
        print(f"report: {report}")
    return 0


def _shift_suite(
    args: argparse.Namespace, predictor: Model, say: Callable[[str], None] | None
) -> dict[str, Any]:
    """Run ``eval --shifts`` (the seed from ``--shift-seed``, the world's, or 0)."""
    from pathlib import Path

    from trimodal.eval.shifts import run_shift_suite

    seed = args.shift_seed
    if seed is None and args.world:
        recorded = Path(args.world) / "world.json"
        seed = int(json.loads(recorded.read_text()).get("seed", 0)) if recorded.is_file() else 0
    folder = (
        Path(args.shift_worlds) if args.shift_worlds else Path(args.checkpoint) / "shift-worlds"
    )
    return run_shift_suite(
        predictor, folder, seed or 0, args.shift_scenes, args.shifts or None, progress=say
    )


def parse_baselines(values: list[str]) -> dict[str, str]:
    """``["question_only=runs/q", ...]`` -> ``{"question_only": "runs/q"}`` (clear errors)."""
    out: dict[str, str] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--baseline expects NAME=RUN, got {value!r}")
        out[name] = path
    return out
