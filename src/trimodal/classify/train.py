"""Fit an :class:`ImageTextClassifier` on a table's rows: class-balanced loss, AdamW with warmup
and cosine decay, the epoch with the best validation macro-F1 kept, then temperature scaling
fitted on the validation rows.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from trimodal.classify.labels import LabelSpace
from trimodal.classify.model import ImageTextClassifier
from trimodal.data.tensors import to_float_images
from trimodal.data.transforms import ImageTransform
from trimodal.train.schedule import adamw_warmup_cosine, clipped_step


@dataclass
class FitSettings:
    """Optimization settings of one classifier."""

    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.1
    augment: bool = True
    """Random shifts of up to 3 pixels and brightness/contrast jitter on training images."""
    seed: int = 0


@dataclass
class EncodedRows:
    """A split's inputs as the model reads them.

    Attributes:
        pixels: uint8 ``[N, 3, S, S]``.
        ids, mask: token ids and mask ``[N, L]``.
        targets: ``[N]`` class indices or ``[N, C]`` 0/1 (multi-label).
    """

    pixels: torch.Tensor
    ids: torch.Tensor
    mask: torch.Tensor
    targets: torch.Tensor

    def __len__(self) -> int:
        return int(self.pixels.shape[0])

    def select(self, rows: torch.Tensor) -> EncodedRows:
        """The rows at ``rows`` ``[K]``."""
        return EncodedRows(self.pixels[rows], self.ids[rows], self.mask[rows], self.targets[rows])


@dataclass
class FitResult:
    """What training found: the kept epoch, its validation macro-F1, the fitted temperature
    and each epoch's mean training loss and validation macro-F1."""

    best_epoch: int
    best_val_macro_f1: float
    temperature: float
    history: list[dict[str, float]] = field(default_factory=list)


def normalized_images(
    pixels: torch.Tensor,
    device: torch.device,
    augment: ImageTransform | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """uint8 ``[B, 3, S, S]`` -> normalized float ``[B, 3, S, S]`` on ``device`` (augmented on
    the host with ``generator`` when ``augment`` is given)."""
    if augment is None:
        return to_float_images(pixels).to(device)
    images = torch.stack([augment._augment(image, generator) for image in pixels.float() / 255.0])
    return augment.normalize(images).to(device)


def logits_of(
    model: ImageTextClassifier, rows: EncodedRows, device: torch.device, batch_size: int = 256
) -> torch.Tensor:
    """Logits ``[N, C]`` (on the CPU) of every row, in eval mode without gradients."""
    model.eval()
    outputs = []
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            batch = rows.select(torch.arange(start, min(start + batch_size, len(rows))))
            outputs.append(_forward(model, batch, device).float().cpu())
    return torch.cat(outputs)


def _forward(
    model: ImageTextClassifier,
    batch: EncodedRows,
    device: torch.device,
    augment: ImageTransform | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    images = normalized_images(batch.pixels, device, augment, generator)
    return model(images, batch.ids.to(device), batch.mask.to(device))


def loss_of(
    logits: torch.Tensor, targets: torch.Tensor, labels: LabelSpace, weights: torch.Tensor
) -> torch.Tensor:
    """Class-weighted cross-entropy (multi-class) or BCE with ``pos_weight`` (multi-label)."""
    if labels.multi_label:
        return F.binary_cross_entropy_with_logits(logits, targets, pos_weight=weights)
    return F.cross_entropy(logits, targets, weight=weights)


def fit(
    model: ImageTextClassifier,
    train: EncodedRows,
    val: EncodedRows,
    labels: LabelSpace,
    settings: FitSettings,
    device: torch.device,
    score: Callable[[torch.Tensor, torch.Tensor], float],
    report: Callable[[str], None] | None = None,
) -> FitResult:
    """Train ``model`` in place; it ends with the weights of its best validation epoch.

    Args:
        score: ``(val probabilities [N, C], val targets) -> macro-F1`` that picks the epoch.
        report: called with one line per epoch (``None``: silent).
    """
    generator = torch.Generator().manual_seed(settings.seed)
    torch.manual_seed(settings.seed)
    model.to(device)
    weights = labels.loss_weights(train.targets).to(device)
    total = settings.epochs * math.ceil(len(train) / settings.batch_size)
    optimizer, schedule = adamw_warmup_cosine(
        model.parameters(),
        settings.learning_rate,
        settings.weight_decay,
        total,
        int(settings.warmup_fraction * total),
    )
    augment = (
        ImageTransform(size=train.pixels.shape[-1], augment=True) if settings.augment else None
    )
    best_state, best_f1, best_epoch, history = None, -1.0, 0, []
    for epoch in range(1, settings.epochs + 1):
        mean_loss = _epoch(
            model, train, labels, weights, optimizer, schedule, settings, device, augment, generator
        )
        val_f1 = score(labels.probabilities(logits_of(model, val, device)), val.targets)
        history.append({"epoch": epoch, "train_loss": mean_loss, "val_macro_f1": val_f1})
        if report is not None:
            report(
                f"epoch {epoch}/{settings.epochs}: loss {mean_loss:.4f}, val macro-F1 {val_f1:.3f}"
            )
        if val_f1 > best_f1:
            best_state, best_f1, best_epoch = copy.deepcopy(model.state_dict()), val_f1, epoch
    if best_state is not None:
        model.load_state_dict(best_state)
    temperature = fit_temperature(logits_of(model, val, device), val.targets, labels)
    return FitResult(best_epoch, best_f1, temperature, history)


def _epoch(
    model: ImageTextClassifier,
    train: EncodedRows,
    labels: LabelSpace,
    weights: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    settings: FitSettings,
    device: torch.device,
    augment: ImageTransform | None,
    generator: torch.Generator,
) -> float:
    """One shuffled pass over ``train``; returns the mean loss (one host sync per epoch)."""
    model.train()
    order = torch.randperm(len(train), generator=generator)
    total = torch.zeros((), device=device)
    for start in range(0, len(train), settings.batch_size):
        batch = train.select(order[start : start + settings.batch_size])
        logits = _forward(model, batch, device, augment, generator)
        loss = loss_of(logits, batch.targets.to(device), labels, weights)
        clipped_step(loss, model, optimizer, schedule)
        total += loss.detach() * len(batch)
    return float(total) / len(train)


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor, labels: LabelSpace) -> float:
    """The temperature ``T`` in [0.05, 20] minimizing the unweighted NLL of ``logits / T``.

    A 1-D search (golden section over ``log T``) on the validation rows: the NLL of a fixed
    set of logits is unimodal in ``log T`` for softmax and for sigmoids with shared ``T``.
    """
    logits, targets = logits.double(), targets

    def nll(log_t: float) -> float:
        scaled = logits / math.exp(log_t)
        if labels.multi_label:
            return float(F.binary_cross_entropy_with_logits(scaled, targets.double()))
        return float(F.cross_entropy(scaled, targets))

    low, high = math.log(0.05), math.log(20.0)
    ratio = (math.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = nll(a), nll(b)
    for _ in range(60):
        if fa < fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = nll(a)
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = nll(b)
    return float(np.exp((low + high) / 2))
