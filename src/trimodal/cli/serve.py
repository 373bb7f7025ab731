"""``trimodal serve`` (the OpenAI-compatible API and web page) and ``trimodal index`` (its
search gallery)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from trimodal.cli.hardware import add_hardware_arguments, hardware_options


def register(verbs: Any) -> None:
    """Add the ``serve`` and ``index`` verbs."""
    serve = verbs.add_parser(
        "serve", help="serve a checkpoint over an OpenAI-compatible HTTP API and a web page"
    )
    serve.add_argument("--checkpoint", required=True, help="run folder or checkpoint folder")
    serve.add_argument("--index", help="a gallery folder from `trimodal index` (enables search)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--api-key-file", help="file with one API key per line; /v1 routes then need a Bearer key"
    )
    serve.add_argument("--name", help="the model id clients send (default: the run folder's name)")
    serve.add_argument("--max-batch", type=int, default=32, help="most requests in one batch")
    add_hardware_arguments(serve)
    serve.add_argument(
        "--batch-wait-ms", type=float, default=5.0, help="how long a request waits for company"
    )
    serve.add_argument(
        "--threads",
        type=int,
        help="torch threads for the model (default: torch's, one per core); see docs/serving.md",
    )
    serve.add_argument(
        "--whisper",
        choices=["tiny.en", "base"],
        help="also transcribe with a pretrained Whisper (towers extra), as model whisper-NAME",
    )
    llms = serve.add_mutually_exclusive_group()
    llms.add_argument(
        "--llm",
        choices=["smollm2"],
        help="also serve SmolLM2-135M-Instruct for chat as model id smollm2 (towers extra; "
        "images reach it as ImageNet labels, audio as a Whisper transcript)",
    )
    llms.add_argument(
        "--llava",
        metavar="RUN",
        help="also serve a llava run (trimodal llava train) for chat as model id llava: "
        "SmolLM2 reading images through the run's checkpoint and projector",
    )
    serve.add_argument(
        "--home",
        metavar="RUN",
        help="also serve a smart-home run (trimodal home train) as model id home; its chat "
        "replies are one tool call, home_action, with the validated action JSON",
    )
    serve.set_defaults(run=run_serve)

    index = verbs.add_parser(
        "index", help="embed a manifest's items into a search gallery for `serve --index`"
    )
    index.add_argument("--checkpoint", required=True)
    index.add_argument("--manifest", required=True, help="manifest whose items become the gallery")
    index.add_argument("--out", required=True, help="gallery folder (replaced atomically)")
    index.add_argument("--split", action="append", help="only these splits (repeatable)")
    add_hardware_arguments(index)
    index.set_defaults(run=run_index)


def read_api_keys(path: str) -> list[str]:
    """Non-empty, non-comment lines of a key file (at least one)."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"API key file not found: {file}")
    keys = [line.strip() for line in file.read_text().splitlines()]
    keys = [key for key in keys if key and not key.startswith("#")]
    if not keys:
        raise ValueError(f"API key file {file} holds no key (one per line)")
    for number, key in enumerate(keys, start=1):
        if not key.isascii() or any(c.isspace() for c in key):
            raise ValueError(f"API key file {file}: key {number} is not printable ASCII")
    return keys


def run_serve(args: argparse.Namespace) -> int:
    """Load the checkpoint (and gallery) and serve until interrupted."""
    import torch
    import uvicorn

    from trimodal.inference import Model
    from trimodal.serve.app import create_app
    from trimodal.serve.engine import Engine
    from trimodal.serve.gallery import Gallery

    keys = read_api_keys(args.api_key_file) if args.api_key_file else []
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    model = Model.from_pretrained(args.checkpoint, **hardware_options(args))
    name = args.name or Path(args.checkpoint).resolve().name
    engine = Engine(
        model,
        name,
        max_batch=args.max_batch,
        wait_ms=args.batch_wait_ms,
        whisper=args.whisper,
        llm=load_llm(args.llm)
        if args.llm
        else load_llava(args.llava, model.device, args.precision),
        home=load_home(args.home, model.device) if args.home else None,
    )
    gallery = Gallery.load(args.index) if args.index else None
    app = create_app(engine, gallery, keys)
    print(f"serving {name} ({', '.join(engine.modalities)}) on http://{args.host}:{args.port}/")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def load_home(path: str, device: Any) -> Any:
    """A smart-home run (``trimodal home train``) to serve as model id ``home``."""
    from trimodal.home.run import HomeRun

    return HomeRun.load(path, device)


def load_llava(path: str | None, device: Any, precision: str = "fp32") -> Any:
    """A llava run as the chat backend of model id ``llava`` (None without one), on the served
    checkpoint's device and in the precision ``--precision`` names."""
    if path is None:
        return None
    from trimodal.llava.run import LlavaRun
    from trimodal.serve.backends import LlavaBackend

    return LlavaBackend(LlavaRun.load(path, device=str(device), precision=precision))


def load_llm(name: str) -> Any:
    """The pretrained LLM ``name`` as a chat backend, hearing and seeing through the towers."""
    from trimodal.generation.smollm2 import load_smollm2
    from trimodal.serve.backends import PretrainedLLM
    from trimodal.towers.senses import RealSenses

    llm = load_smollm2()
    llm.perceive = RealSenses()
    return PretrainedLLM(llm, name)


def run_index(args: argparse.Namespace) -> int:
    """Build the gallery and print what it holds."""
    from trimodal.inference import Model
    from trimodal.serve.gallery import build_gallery

    model = Model.from_pretrained(args.checkpoint, **hardware_options(args))
    info = build_gallery(model, args.manifest, args.out, args.split, progress=print)
    for modality, details in info["modalities"].items():
        print(f"{modality}: {details['count']} items ({details['index']} search)")
    print(f"gallery: {args.out}")
    return 0
