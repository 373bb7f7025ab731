"""Checkpoint files of a model: what is written, how it is read back, and the atomic swap.

A checkpoint is a directory: ``config.json`` (the resolved recipe), ``model.safetensors``,
``tokenizer.json``, ``vocab.json`` (answers, attributes) and ``metrics.json``. It is written
into a temporary directory and renamed into place, so a crash never leaves half a checkpoint.
:class:`~trimodal.models.trimodal.TriModalModel` reaches these through ``save_pretrained`` /
``from_pretrained``; the training checkpoint (:mod:`trimodal.train.checkpoint`) adds its
optimizer state beside them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from trimodal.config import Config, config_from_json, to_dict
from trimodal.data.tokenizer import TextTokenizer

TIED = ("decoder.lm_head.weight",)
"""Parameters tied to another (the decoder's LM head is its token embedding): not saved."""
OPTIONAL = ("object_head.weight", "object_head.bias")
"""Training-only heads that checkpoints from before they existed lack (left at their init)."""
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "vocab.json")


@dataclass(frozen=True)
class Vocabulary:
    """Label spaces of the heads: VQA answers and scene attributes."""

    answers: list[str]
    attributes: list[str]


@dataclass(frozen=True)
class CheckpointFiles:
    """A checkpoint directory read back: everything needed to rebuild and fill the model."""

    source: Path
    config: Config
    vocabulary: Vocabulary
    tokenizer: TextTokenizer
    state: dict[str, torch.Tensor]


def save_weights(module: torch.nn.Module, path: Path) -> None:
    """Every tensor of ``module``'s state dict, on the CPU, as one safetensors file (the
    application runs' weights; write it inside a staging folder)."""
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(path))


def write_model_files(
    directory: Path,
    config: Config,
    vocabulary: Vocabulary,
    state: Mapping[str, torch.Tensor],
    tokenizer: TextTokenizer,
    metrics: dict[str, Any] | None = None,
) -> None:
    """Write config, weights (tied ones left out), tokenizer, vocabulary and metrics into an
    existing folder."""
    (directory / "config.json").write_text(json.dumps(to_dict(config), indent=2))
    weights = {k: v.detach().cpu().contiguous() for k, v in state.items() if k not in TIED}
    save_file(weights, str(directory / "model.safetensors"))
    tokenizer.save(directory / "tokenizer.json")
    labels = {"answers": vocabulary.answers, "attributes": vocabulary.attributes}
    (directory / "vocab.json").write_text(json.dumps(labels, indent=2))
    (directory / "metrics.json").write_text(json.dumps(metrics or {}, indent=2))


def checkpoint_source(directory: str | os.PathLike[str]) -> Path:
    """The checkpoint folder itself, or a training run's latest ``checkpoint/`` inside it."""
    source = Path(directory)
    if (source / "checkpoint" / "model.safetensors").is_file() and not (
        source / "model.safetensors"
    ).is_file():
        return source / "checkpoint"
    return source


def read_checkpoint(
    directory: str | os.PathLike[str], map_location: str = "cpu"
) -> CheckpointFiles:
    """Read a checkpoint (or a run folder's latest one); a missing file is named."""
    source = checkpoint_source(directory)
    for name in MODEL_FILES:
        if not (source / name).is_file():
            raise FileNotFoundError(f"{source} is not a trimodal checkpoint: {name} is missing")
    return CheckpointFiles(
        source=source,
        config=config_from_json((source / "config.json").read_text()),
        vocabulary=Vocabulary(**json.loads((source / "vocab.json").read_text())),
        tokenizer=TextTokenizer.load(source / "tokenizer.json"),
        state=load_file(str(source / "model.safetensors"), device=map_location),
    )


def load_weights(model: nn.Module, files: CheckpointFiles) -> None:
    """Fill ``model`` from ``files.state``; anything missing (beyond tied and optional
    parameters) or unexpected is an error naming the file."""
    missing, unexpected = model.load_state_dict(files.state, strict=False)
    absent = set(missing) - set(TIED) - set(OPTIONAL)
    if unexpected or absent:
        raise ValueError(
            f"{files.source}/model.safetensors does not match its config.json: "
            f"missing {sorted(absent)}, unexpected {sorted(unexpected)}"
        )


def write_directory_atomically(target: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(staging)`` on a fresh temp folder beside ``target``, then swap it in."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write(staging)
        replace_directory(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def replace_directory(staging: Path, target: Path) -> None:
    """Swap ``staging`` into ``target``: the old directory survives until the new one is in place.

    Every file of ``staging`` and the folder itself are flushed to disk first, and the parent
    after each rename, so a power cut cannot leave a renamed folder of unwritten files. A crash
    between the two renames leaves ``.<target>.old`` and no ``target``:
    :func:`recover_directory` puts it back.
    """
    fsync_tree(staging)
    if target.exists():
        backup = target.with_name(f".{target.name}.old")
        shutil.rmtree(backup, ignore_errors=True)
        os.replace(target, backup)
        fsync_folder(target.parent)
        os.replace(staging, target)
        fsync_folder(target.parent)
        shutil.rmtree(backup, ignore_errors=True)
    else:
        os.replace(staging, target)
        fsync_folder(target.parent)


def recover_directory(target: Path) -> str | None:
    """Repair what a crash in :func:`write_directory_atomically` can leave beside ``target``.

    Puts ``.<target>.old`` back when ``target`` is missing (a crash between the two renames),
    and removes staging folders ``.<target>.*`` that no live writer owns (call it holding the
    folder's lock). Returns what was done, or None.
    """
    done = []
    backup = target.with_name(f".{target.name}.old")
    if not target.exists() and backup.is_dir():
        os.replace(backup, target)
        fsync_folder(target.parent)
        done.append(f"restored {target} from {backup.name} (a crash interrupted its last save)")
    if target.parent.is_dir():
        for stale in target.parent.glob(f".{target.name}.*"):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
                done.append(f"removed the unfinished save {stale.name}")
    return "; ".join(done) or None


def fsync_tree(folder: Path) -> None:
    """Flush every file under ``folder`` and every folder in it to disk."""
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
        elif path.is_dir():
            fsync_folder(path)
    fsync_folder(folder)


def fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (renames, new files) to disk."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
