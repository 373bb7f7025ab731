"""Learning-rate schedule and the deterministic data order of every stage; the AdamW,
schedule and clipped update step the application recipes (classify, home, imagine) share."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, floor: float = 0.05) -> float:
    """Multiplier of the base learning rate: linear warm-up, then cosine decay to ``floor``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def adamw_warmup_cosine(
    parameters: Iterable[torch.nn.Parameter],
    learning_rate: float,
    weight_decay: float,
    total_steps: int,
    warmup_steps: int,
    floor: float = 0.0,
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW and a :func:`warmup_cosine` schedule over ``total_steps`` (step it every step):
    what the application recipes (classify, home, imagine) train with."""
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, total_steps, max(1, warmup_steps), floor)
    )
    return optimizer, schedule


def clipped_step(
    loss: torch.Tensor,
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    max_norm: float = 1.0,
) -> None:
    """One update of the application recipes: backward, clip the gradient norm to
    ``max_norm``, step the optimizer and the schedule."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(module.parameters(), max_norm)
    optimizer.step()
    schedule.step()


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
