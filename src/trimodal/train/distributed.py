"""Distributed setup: detected from the variables torchrun sets (``RANK``, ``WORLD_SIZE``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import torch
import torch.distributed as dist

from trimodal.hardware import CHECK_WIDTH, Precision, resolve_precision


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands: ``rank`` of ``world_size`` (1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    """This process's index on its node (torchrun's ``LOCAL_RANK``): its GPU."""

    @property
    def enabled(self) -> bool:
        """True under torchrun with more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes logs and checkpoints."""
        return self.rank == 0


def init_distributed(device: torch.device | None = None) -> DistributedContext:
    """Join the process group if torchrun started us: NCCL when training on CUDA ``device``,
    gloo otherwise (CPU, or a CPU run on a machine that has GPUs)."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return DistributedContext()
    if not dist.is_initialized():
        backend = "nccl" if device is not None and device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return DistributedContext(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def rank_device(device: torch.device, context: DistributedContext) -> torch.device:
    """The device this rank trains on: under torchrun each rank takes ``cuda:LOCAL_RANK``
    (and makes it current, as NCCL needs); other devices are shared as they are."""
    if device.type != "cuda" or not context.enabled:
        return device
    chosen = torch.device("cuda", context.local_rank)
    torch.cuda.set_device(chosen)
    return chosen


def agreed_precision(
    name: str, device: torch.device, context: DistributedContext, width: int = CHECK_WIDTH
) -> Precision:
    """:func:`resolve_precision` for training a model ``width`` wide (fp16 needs a GPU's
    gradient scaler); under torchrun rank 0 decides ``auto`` (its measured check) and every
    rank takes its choice, so ranks timing on shared cores cannot disagree."""
    chosen = resolve_precision(name, device, training=True, width=width)
    if not context.enabled or name.strip().lower() != "auto":
        return chosen
    decision = [chosen.name, chosen.reason]
    dist.broadcast_object_list(decision, src=0)
    if decision[0] == chosen.name:
        return chosen
    return replace(
        resolve_precision(str(decision[0]), device, training=True), reason=str(decision[1])
    )


def barrier(context: DistributedContext) -> None:
    """Wait for every rank (no-op when not distributed)."""
    if context.enabled:
        dist.barrier()


def all_reduce_mean(value: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """Mean of a tensor over ranks (returns ``value`` unchanged when not distributed)."""
    if not context.enabled:
        return value
    reduced = value.detach().clone()  # on the value's device: NCCL reduces CUDA tensors
    dist.all_reduce(reduced)
    return reduced / context.world_size
