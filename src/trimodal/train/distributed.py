"""Distributed setup: detected from the variables torchrun sets (``RANK``, ``WORLD_SIZE``)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands: ``rank`` of ``world_size`` (1 when not distributed)."""

    rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        """True under torchrun with more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes logs and checkpoints."""
        return self.rank == 0


def init_distributed() -> DistributedContext:
    """Join the process group if torchrun started us (gloo on CPU, NCCL on GPU)."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return DistributedContext()
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    return DistributedContext(rank=dist.get_rank(), world_size=dist.get_world_size())


def barrier(context: DistributedContext) -> None:
    """Wait for every rank (no-op when not distributed)."""
    if context.enabled:
        dist.barrier()


def all_reduce_mean(value: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """Mean of a tensor over ranks (returns ``value`` unchanged when not distributed)."""
    if not context.enabled:
        return value
    reduced = value.detach().clone()
    dist.all_reduce(reduced)
    return reduced / context.world_size
