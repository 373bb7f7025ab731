"""Training checkpoints: the model checkpoint plus everything needed to resume exactly.

``RUN/checkpoint/`` holds the model files (see ``TriModalModel.write_files``) and
``trainer_state.json`` + ``trainer_state.safetensors``: stage and step, optimizer state,
scheduler position, weighting parameters, task-sampler state and the torch RNG. No pickles.
The folder is replaced atomically, so a crash leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from trimodal.data.tokenizer import TextTokenizer
from trimodal.models.checkpoint import write_directory_atomically, write_model_files
from trimodal.models.trimodal import TriModalModel

STATE_JSON = "trainer_state.json"
STATE_TENSORS = "trainer_state.safetensors"


@dataclass
class TrainingState:
    """Where training stands and the state of every stateful object besides the model."""

    stage: int
    step: int
    global_step: int
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    weighting: dict[str, torch.Tensor]
    sampler: dict[str, Any] | None
    rng: torch.Tensor
    history: list[dict[str, Any]]


def _split_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {"param_groups": state["param_groups"], "state": {}}
    for param_id, entries in state["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{param_id}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars["state"].setdefault(str(param_id), {})[key] = value
    return tensors, scalars


def _join_optimizer(tensors: dict[str, torch.Tensor], scalars: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, param_id, key = name.split(".", 2)
            state.setdefault(int(param_id), {})[key] = value
    for param_id, entries in scalars["state"].items():
        state.setdefault(int(param_id), {}).update(entries)
    return {"state": state, "param_groups": scalars["param_groups"]}


def save_training_checkpoint(
    directory: Path,
    model: TriModalModel,
    tokenizer: TextTokenizer,
    state: TrainingState,
    metrics: dict[str, Any],
    model_state: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """Write model files and training state into ``directory`` atomically; ``model_state``
    (the whole weights gathered from FSDP shards) replaces ``model.state_dict()``."""
    optimizer_tensors, optimizer_scalars = _split_optimizer(state.optimizer)

    def write(staging: Path) -> None:
        if model_state is None:
            model.write_files(staging, tokenizer, metrics)
        else:
            write_model_files(
                staging, model.config, model.vocabulary, model_state, tokenizer, metrics
            )
        tensors = dict(optimizer_tensors)
        tensors["rng.torch"] = state.rng
        tensors |= {
            f"weighting.{k}": v.detach().cpu().contiguous() for k, v in state.weighting.items()
        }
        sampler_scalars = None
        if state.sampler is not None:
            tensors["sampler.generator"] = state.sampler["generator"]
            sampler_scalars = {k: v for k, v in state.sampler.items() if k != "generator"}
        save_file(tensors, str(staging / STATE_TENSORS))
        scalars = {
            "stage": state.stage,
            "step": state.step,
            "global_step": state.global_step,
            "optimizer": optimizer_scalars,
            "scheduler": state.scheduler,
            "sampler": sampler_scalars,
            "history": state.history,
        }
        (staging / STATE_JSON).write_text(json.dumps(scalars, indent=1))

    return write_directory_atomically(directory, write)


def load_training_state(directory: Path) -> TrainingState:
    """Read the training state written by :func:`save_training_checkpoint`."""
    json_path, tensor_path = directory / STATE_JSON, directory / STATE_TENSORS
    if not json_path.is_file() or not tensor_path.is_file():
        raise FileNotFoundError(f"no resumable checkpoint in {directory} (missing {STATE_JSON})")
    scalars = json.loads(json_path.read_text())
    tensors = load_file(str(tensor_path))
    sampler = None
    if scalars["sampler"] is not None:
        sampler = dict(scalars["sampler"], generator=tensors["sampler.generator"])
    return TrainingState(
        stage=scalars["stage"],
        step=scalars["step"],
        global_step=scalars["global_step"],
        optimizer=_join_optimizer(tensors, scalars["optimizer"]),
        scheduler=scalars["scheduler"],
        weighting={
            k[len("weighting.") :]: v for k, v in tensors.items() if k.startswith("weighting.")
        },
        sampler=sampler,
        rng=tensors["rng.torch"],
        history=scalars["history"],
    )
