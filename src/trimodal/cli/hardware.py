"""``--device`` and ``--precision``: the options every verb that runs a model shares."""

from __future__ import annotations

import argparse

from trimodal.hardware import DEVICES, PRECISIONS


def add_hardware_arguments(parser: argparse.ArgumentParser, default: str | None = "auto") -> None:
    """Add ``--device`` and ``--precision``; ``default`` None leaves them to the recipe."""
    parser.add_argument(
        "--device",
        default=default,
        metavar="|".join(DEVICES).replace("cuda|cuda:N", "cuda[:N]"),
        help="where the model runs (auto: a CUDA GPU, else MPS, else the CPU)"
        + ("" if default else "; default: the recipe's train.device"),
    )
    parser.add_argument(
        "--precision",
        default=default,
        choices=PRECISIONS,
        help="autocast precision; auto takes bf16 only where it is fast (CUDA with bf16; CPUs "
        "with AVX512-BF16 or AMX where a block of the model's width measures faster), else fp32"
        + ("" if default else "; default: the recipe's train.precision"),
    )


def hardware_options(args: argparse.Namespace) -> dict[str, str]:
    """``device=`` and ``precision=`` for :meth:`Model.from_pretrained`."""
    return {"device": args.device, "precision": args.precision}
