"""``trimodal caption``, ``trimodal transcribe`` and ``trimodal chat``: the decoder at work."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from trimodal.cli.hardware import add_hardware_arguments, hardware_options
from trimodal.generation.chat import Turn
from trimodal.generation.smollm2 import SmolLM2, load_smollm2
from trimodal.inference import Model
from trimodal.llava.run import LlavaRun

CHAT_HELP = """commands: /image PATH (attach an image to your next message), /audio PATH (attach
audio; with nothing typed it is a spoken question, or transcribed if no image was given),
/reset (forget the conversation), /quit. Anything else is your message."""


def add_sampling_arguments(
    parser: argparse.ArgumentParser, checkpoint_required: bool = True
) -> None:
    """Decoding options shared by the generation verbs."""
    parser.add_argument(
        "--checkpoint",
        required=checkpoint_required,
        help="run folder or checkpoint folder (or a llava run: trimodal llava train)",
    )
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--sample", action="store_true", help="sample instead of greedy")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=0)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    add_hardware_arguments(parser)


def register(verbs: Any) -> None:
    """Add the ``caption``, ``transcribe`` and ``chat`` verbs."""
    caption = verbs.add_parser("caption", help="describe an image in words")
    add_sampling_arguments(caption)
    caption.add_argument("--image", required=True)
    caption.set_defaults(run=run_caption)

    transcribe = verbs.add_parser("transcribe", help="write down what a recording says")
    add_sampling_arguments(transcribe, checkpoint_required=False)
    transcribe.add_argument("--audio", required=True)
    transcribe.add_argument(
        "--whisper",
        choices=["tiny.en", "base"],
        help="transcribe with a pretrained Whisper (towers extra) instead of a checkpoint",
    )
    transcribe.set_defaults(run=run_transcribe)

    chat = verbs.add_parser("chat", help="talk about images and audio (interactive)")
    add_sampling_arguments(chat, checkpoint_required=False)
    chat.add_argument(
        "--llm",
        choices=["smollm2"],
        help="chat with a pretrained LLM instead of a checkpoint (SmolLM2-135M-Instruct from "
        "the towers extra; no training needed): /image attaches a photo, told to it as "
        "EfficientNet's ImageNet labels, /audio a recording, told as Whisper's transcript",
    )
    chat.set_defaults(run=run_chat)


def sampling_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for :meth:`Model.chat` from the command line."""
    import torch

    return {
        "max_new_tokens": args.max_new_tokens,
        "do_sample": args.sample,
        "temperature": args.temperature,
        "top_k": args.top_k,
        "top_p": args.top_p,
        "generator": torch.Generator().manual_seed(args.seed),
    }


def run_caption(args: argparse.Namespace) -> int:
    """Print the caption (from the checkpoint's decoder, or a llava run's LLM)."""
    print(_captioner(args).caption(args.image, **sampling_options(args)))
    return 0


def _captioner(args: argparse.Namespace) -> Model | LlavaRun:
    """A llava run when ``--checkpoint`` is one, else the checkpoint's model."""
    if LlavaRun.is_run(args.checkpoint):
        return LlavaRun.load(args.checkpoint, **hardware_options(args))
    return Model.from_pretrained(args.checkpoint, **hardware_options(args))


def run_transcribe(args: argparse.Namespace) -> int:
    """Print the transcript (from the checkpoint's decoder, or Whisper with ``--whisper``)."""
    name = getattr(args, "whisper", None)
    if (args.checkpoint is None) == (name is None):
        raise ValueError("trimodal transcribe needs exactly one of --checkpoint RUN or --whisper")
    if name is not None:
        from trimodal.towers.whisper import WhisperTower

        print(WhisperTower.load(name).transcribe(args.audio))
        return 0
    print(
        Model.from_pretrained(args.checkpoint, **hardware_options(args)).transcribe(
            args.audio, **sampling_options(args)
        )
    )
    return 0


def build_chat_args(checkpoint: object, **overrides: Any) -> argparse.Namespace:
    """``trimodal chat`` arguments with defaults (for calling :func:`run_chat` from Python)."""
    parser = argparse.ArgumentParser()
    add_sampling_arguments(parser)
    args = parser.parse_args(["--checkpoint", str(checkpoint)])
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


def _chat_model(args: argparse.Namespace) -> Model | SmolLM2 | LlavaRun:
    """The checkpoint's model (or llava run), or the pretrained LLM that ``--llm`` names
    (exactly one)."""
    llm = getattr(args, "llm", None)
    if (args.checkpoint is None) == (llm is None):
        raise ValueError("trimodal chat needs exactly one of --checkpoint RUN or --llm smollm2")
    if llm is not None:
        from trimodal.towers.senses import RealSenses

        chat = load_smollm2()
        chat.perceive = RealSenses()
        return chat
    return _captioner(args)


def run_chat(
    args: argparse.Namespace, stdin: TextIO | None = None, stdout: TextIO | None = None
) -> int:
    """Read messages line by line, print each reply, keep the history."""
    source, sink = stdin or sys.stdin, stdout or sys.stdout
    model = _chat_model(args)
    options = sampling_options(args)
    print(CHAT_HELP, file=sink)
    history: list[Turn] = []
    pending: dict[str, str] = {}
    for line in source:
        line = line.strip()
        command, _, value = line.partition(" ")
        if command == "/quit":
            break
        if command == "/reset":
            history, pending = [], {}
            print("(conversation cleared)", file=sink)
            continue
        if command in ("/image", "/audio"):
            pending[command[1:]] = value.strip()
            print(f"({command[1:]} attached: {value.strip()})", file=sink)
            continue
        if not line and not pending:
            continue
        turn = Turn("user", line, image=pending.get("image"), audio=pending.get("audio"))
        pending = {}
        try:
            reply = model.chat([*history, turn], **options)
        except (ValueError, FileNotFoundError, OSError) as error:
            print(f"error: {error}", file=sink)
            continue
        history += [turn, Turn("assistant", reply)]
        print(f"assistant: {reply}", file=sink, flush=True)
    return 0
