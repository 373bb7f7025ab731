"""``trimodal ask``, ``trimodal embed`` and ``trimodal eval``: use a trained checkpoint."""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch

from trimodal.inference import Model
from trimodal.train.loop import manifest_path_of


def register(verbs: Any) -> None:
    """Add the ``ask``, ``embed`` and ``eval`` verbs."""
    ask = verbs.add_parser("ask", help="answer a typed or spoken question about an image")
    ask.add_argument("--checkpoint", required=True, help="run folder or checkpoint folder")
    ask.add_argument("--image", required=True)
    question = ask.add_mutually_exclusive_group(required=True)
    question.add_argument("--text", help="the question, typed")
    question.add_argument("--audio", help="the question, spoken (any audio file)")
    ask.add_argument("--top", type=int, default=1, help="print the top-k answers")
    ask.set_defaults(run=run_ask)

    embed = verbs.add_parser("embed", help="embed images, audio or text into the shared space")
    embed.add_argument("--checkpoint", required=True)
    kind = embed.add_mutually_exclusive_group(required=True)
    kind.add_argument("--image", nargs="+")
    kind.add_argument("--audio", nargs="+")
    kind.add_argument("--text", nargs="+")
    embed.add_argument(
        "--save", help="write the embeddings to this .safetensors file instead of printing"
    )
    embed.set_defaults(run=run_embed)

    evaluate = verbs.add_parser("eval", help="retrieval R@k and VQA accuracy on a split, as JSON")
    evaluate.add_argument("--checkpoint", required=True)
    evaluate.add_argument("--world", required=True, help="world folder or manifest file")
    evaluate.add_argument("--split", default="test")
    evaluate.add_argument("--out", help="also write the metrics to this JSON file")
    evaluate.set_defaults(run=run_eval)


def run_ask(args: argparse.Namespace) -> int:
    """Print the answer(s) and probability."""
    predictor = Model.from_pretrained(args.checkpoint)
    answers = predictor.ask(args.image, text=args.text, audio=args.audio, top=args.top)
    for answer, probability in answers:
        print(f"{answer}\t{probability:.3f}")
    return 0


def run_embed(args: argparse.Namespace) -> int:
    """Print (or save) L2-normalized embeddings, one row per input."""
    predictor = Model.from_pretrained(args.checkpoint)
    if args.image:
        inputs, embeddings = args.image, predictor.embed_images(args.image)
    elif args.audio:
        inputs, embeddings = args.audio, predictor.embed_audio(args.audio)
    else:
        inputs, embeddings = args.text, predictor.embed_texts(args.text)
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
    """Print metrics JSON (and write it with --out)."""
    predictor = Model.from_pretrained(args.checkpoint)
    with torch.no_grad():
        metrics = predictor.evaluate(manifest_path_of(args.world), split=args.split)
    text = json.dumps(metrics, indent=2)
    print(text)
    if args.out:
        from trimodal.io import atomic_write_text

        atomic_write_text(args.out, text)
    return 0
