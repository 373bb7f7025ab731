"""``train.sharding: fsdp``: FSDP2 (``fully_shard``) for a stage's step, and its checkpoints in
the same format as every other run's.

Each stage's :class:`~trimodal.train.step.TrainStep` (the model plus the stage's task weighting)
is sharded whole as one FSDP2 group: parameters, gradients and AdamW moments live 1/N on each
rank and are gathered for the step's forward and backward. Stage losses call the model's
methods (``encode``, ``answer_logits``, ...) from inside the step's ``forward``, so one group
around the step is what keeps every parameter gathered while they run.

Checkpoints stay whole and engine-neutral: the sharded weights and optimizer state are gathered
to rank 0 and written with integer parameter ids exactly as a single process or DDP writes
them, so a run saved by N ranks under FSDP resumes on M ranks under FSDP, DDP or alone. At a
stage boundary the whole weights are gathered onto every rank into a fresh, unsharded model for
the next stage (FSDP2 cannot be undone in place).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard

SHARDINGS = ("ddp", "fsdp")


def check_sharding(name: str) -> None:
    """Refuse an unknown ``train.sharding`` before any step."""
    if name not in SHARDINGS:
        raise ValueError(f"train.sharding must be one of {', '.join(SHARDINGS)}, got {name!r}")


def shard(step: nn.Module, device: torch.device, world_size: int) -> nn.Module:
    """Shard ``step`` in place as one FSDP2 group over the ranks on ``device``'s type (a CPU
    run on a machine with GPUs stays on the CPU); returns it.

    Parameters a rank's batch left without a gradient (a batch with no video rows, say) are
    reduce-scattered too, so every rank takes part in the same collectives, as DDP's
    ``find_unused_parameters`` ensures."""
    mesh = init_device_mesh(device.type, (world_size,))
    sharded = fully_shard(step, mesh=mesh)
    sharded.set_reduce_scatter_unused_params(True)
    return step


def whole_model_state(step: nn.Module, prefix: str = "model.") -> dict[str, torch.Tensor]:
    """Every rank gets the whole weights of the sharded step's submodule ``prefix`` (a
    collective call: every rank must make it)."""
    state = get_model_state_dict(step, options=StateDictOptions(full_state_dict=True))
    return _tensors(state, prefix)


def gathered_states(
    step: nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Any]]:
    """The whole model weights, weighting weights and optimizer state (integer ids), on rank 0
    (other ranks get empty mappings); collective."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    state = get_model_state_dict(step, options=options)
    by_name = get_optimizer_state_dict(step, optimizer, options=options)
    by_id = optimizer_state_by_id(dict(by_name)) if by_name else {}
    return _tensors(state, "model."), _tensors(state, "weighting."), by_id


def _tensors(state: Mapping[str, Any], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors of ``state`` under ``prefix``, the prefix removed."""
    return {
        key[len(prefix) :]: value
        for key, value in state.items()
        if key.startswith(prefix) and isinstance(value, torch.Tensor)
    }


def optimizer_state_by_id(by_name: dict[str, Any]) -> dict[str, Any]:
    """``get_optimizer_state_dict``'s state keyed by parameter name -> ``Optimizer.state_dict``'s
    integer ids (numbered through the groups in order, as torch numbers them)."""
    ids: dict[str, int] = {}
    groups = []
    for group in by_name["param_groups"]:
        numbered = [ids.setdefault(name, len(ids)) for name in group["params"]]
        groups.append({**group, "params": numbered})
    state = {ids[name]: value for name, value in by_name["state"].items()}
    return {"state": state, "param_groups": groups}


def optimizer_state_by_name(by_id: dict[str, Any], names: list[list[str]]) -> dict[str, Any]:
    """The inverse of :func:`optimizer_state_by_id` given each group's parameter names."""
    lookup = {
        index: name
        for group, group_names in zip(by_id["param_groups"], names, strict=True)
        for index, name in zip(group["params"], group_names, strict=True)
    }
    groups = [
        {**group, "params": group_names}
        for group, group_names in zip(by_id["param_groups"], names, strict=True)
    ]
    state = {lookup[int(index)]: value for index, value in by_id["state"].items()}
    return {"state": state, "param_groups": groups}


def load_optimizer(
    step: nn.Module, optimizer: torch.optim.Optimizer, by_id: dict[str, Any]
) -> None:
    """Load a whole optimizer state (integer ids, as checkpoints hold it) into the sharded
    step's optimizer; each rank keeps its shard."""
    names_of = {parameter: name for name, parameter in step.named_parameters()}
    names = [[names_of[p] for p in group["params"]] for group in optimizer.param_groups]
    shapes = [p.shape for group in optimizer.param_groups for p in group["params"]]
    for index, moments in by_id["state"].items():  # a 0-d temperature's moments -> [1]
        for key, value in moments.items():
            shape = shapes[int(index)]
            if key != "step" and torch.is_tensor(value) and value.numel() == shape.numel():
                moments[key] = value.reshape(shape)
    set_optimizer_state_dict(
        step,
        optimizer,
        optimizer_state_by_name(by_id, names),
        options=StateDictOptions(full_state_dict=True),
    )
