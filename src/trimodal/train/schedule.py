"""Learning-rate schedule and the deterministic data order of every stage."""

from __future__ import annotations

import math

import torch


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, floor: float = 0.05) -> float:
    """Multiplier of the base learning rate: linear warm-up, then cosine decay to ``floor``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def epoch_order(count: int, seed: int, stage: int, epoch: int) -> torch.Tensor:
    """The permutation of ``count`` training rows used in ``epoch`` of ``stage``.

    A pure function of its arguments, so a resumed run sees exactly the same batches.
    """
    generator = torch.Generator().manual_seed(seed * 1_000_003 + stage * 10_007 + epoch)
    return torch.randperm(count, generator=generator, device="cpu")


def batch_rows(
    train_rows: torch.Tensor,
    batch_size: int,
    step: int,
    seed: int,
    stage: int,
    rank: int = 0,
    world_size: int = 1,
) -> torch.Tensor:
    """Rows of global batch ``step`` (this rank's share under DDP); incomplete batches are dropped."""
    per_epoch = max(1, len(train_rows) // batch_size)
    epoch, position = divmod(step, per_epoch)
    order = epoch_order(len(train_rows), seed, stage, epoch)
    global_batch = train_rows[order[position * batch_size : (position + 1) * batch_size]]
    return global_batch[rank::world_size]


def steps_for(epochs: float, rows: int, batch_size: int) -> int:
    """Optimizer steps for ``epochs`` passes over ``rows`` (at least 1 unless epochs is 0)."""
    if epochs <= 0:
        return 0
    return max(1, round(epochs * rows / batch_size))
