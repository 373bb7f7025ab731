"""Train the home model: typed and spoken batches in turn, some without the camera."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from trimodal.home.data import IGNORE, HomeTensors
from trimodal.home.model import HomeModel
from trimodal.home.recipe import HomeRecipe
from trimodal.train.schedule import adamw_warmup_cosine, clipped_step


def home_loss(
    model: HomeModel,
    tensors: HomeTensors,
    rows: torch.Tensor,
    spoken: bool,
    with_image: bool,
    device: torch.device,
    state_weight: float = 0.0,
) -> torch.Tensor:
    """Mean cross-entropy over every device's slot, plus the temperature's cross-entropy summed
    over the rows that set one and divided by the batch size, plus (with the image)
    ``state_weight`` times the device-state cross-entropy."""
    outputs = model(tensors.inputs(rows, spoken, with_image, device))
    slots = tensors.slots[rows].to(device)
    loss = F.cross_entropy(outputs.slots.flatten(0, 1), slots.flatten())
    if with_image and state_weight > 0:
        states = tensors.states[rows].to(device)
        loss = loss + state_weight * F.cross_entropy(outputs.states.flatten(0, 1), states.flatten())
    values = tensors.values[rows].to(device)
    # Summed over the rows that set a temperature, divided by the batch: each such row weighs
    # what one device slot of any row weighs, and a batch with one such row is not dominated
    # by it (a mean over one or two rows made the loss jump by 5x from batch to batch).
    value_loss = F.cross_entropy(outputs.values, values, ignore_index=IGNORE, reduction="sum")
    return loss + value_loss / len(rows)


def train_home(
    model: HomeModel,
    train: HomeTensors,
    recipe: HomeRecipe,
    device: torch.device,
    report: Callable[[str], None] | None = None,
) -> list[float]:
    """Train ``model`` in place; returns each epoch's mean loss.

    Each step draws a batch, alternately typed and spoken; with probability
    ``recipe.image_dropout`` the batch has no room image.
    """
    generator = torch.Generator().manual_seed(recipe.seed)
    model.to(device).train()
    total = recipe.epochs * math.ceil(len(train) / recipe.batch_size)
    optimizer, schedule = adamw_warmup_cosine(
        model.parameters(),
        recipe.learning_rate,
        recipe.weight_decay,
        total,
        int(recipe.warmup_fraction * total),
    )
    history, step = [], 0
    for epoch in range(1, recipe.epochs + 1):
        order = torch.randperm(len(train), generator=generator)
        running = torch.zeros((), device=device)
        for start in range(0, len(train), recipe.batch_size):
            rows = order[start : start + recipe.batch_size]
            with_image = float(torch.rand((), generator=generator)) >= recipe.image_dropout
            loss = home_loss(
                model, train, rows, step % 2 == 1, with_image, device, recipe.state_weight
            )
            clipped_step(loss, model, optimizer, schedule)
            running += loss.detach() * len(rows)
            step += 1
        history.append(float(running) / len(train))
        if report is not None:
            report(f"epoch {epoch}/{recipe.epochs}: loss {history[-1]:.4f}")
    model.eval()
    return history
