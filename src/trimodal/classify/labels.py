"""The classes of a table and the targets and class weights the loss reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LabelSpace:
    """The classes, in a fixed (sorted) order, and whether a row may carry several.

    Multi-class: a row has exactly one class; targets are indices ``[N]``. Multi-label: a row
    has any subset; targets are 0/1 ``[N, C]``.
    """

    classes: tuple[str, ...]
    multi_label: bool

    @classmethod
    def from_rows(cls, labels: Sequence[tuple[str, ...]], multi_label: bool) -> LabelSpace:
        """Every class named in ``labels`` (at least two for multi-class, one for multi-label)."""
        classes = tuple(sorted({label for row in labels for label in row}))
        needed = 1 if multi_label else 2
        if len(classes) < needed:
            raise ValueError(
                f"the training rows name {len(classes)} class(es) ({', '.join(classes) or 'none'});"
                f" a {'multi-label' if multi_label else 'multi-class'} table needs at least {needed}"
            )
        return cls(classes, multi_label)

    def targets(self, labels: Sequence[tuple[str, ...]], where: Sequence[str]) -> torch.Tensor:
        """``[N]`` class indices (multi-class) or ``[N, C]`` float 0/1 (multi-label).

        Args:
            where: per row, how an error names it (``FILE:LINE``).

        Raises:
            ValueError: a row names a class the model does not know.
        """
        index = {name: i for i, name in enumerate(self.classes)}
        for row, place in zip(labels, where, strict=True):
            unknown = [label for label in row if label not in index]
            if unknown:
                raise ValueError(
                    f"{place}: label {unknown[0]!r} is not one of the model's classes "
                    f"({', '.join(self.classes)})"
                )
        if not self.multi_label:
            return torch.tensor([index[row[0]] for row in labels], dtype=torch.long)
        targets = torch.zeros(len(labels), len(self.classes))
        for i, row in enumerate(labels):
            for label in row:
                targets[i, index[label]] = 1.0
        return targets

    def loss_weights(self, targets: torch.Tensor) -> torch.Tensor:
        """Per-class weights ``[C]`` that balance the training rows.

        Multi-class: ``N / (C * n_c)`` (scikit-learn's "balanced"; a class absent from
        ``targets`` gets 1). Multi-label: ``pos_weight = n_negative / n_positive`` per class
        (1 where a class has no positives or no negatives).
        """
        count = len(self.classes)
        if not self.multi_label:
            per_class = torch.bincount(targets, minlength=count).float()
            weights = targets.numel() / (count * per_class.clamp_min(1.0))
            return torch.where(per_class > 0, weights, torch.ones_like(weights))
        positives = targets.sum(0)
        negatives = targets.shape[0] - positives
        usable = (positives > 0) & (negatives > 0)
        return torch.where(usable, negatives / positives.clamp_min(1.0), torch.ones_like(positives))

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """``[N, C]`` logits -> softmax (multi-class) or per-class sigmoid (multi-label)."""
        return torch.sigmoid(logits) if self.multi_label else logits.softmax(-1)

    def decide(self, probabilities: torch.Tensor, threshold: float = 0.5) -> list[tuple[str, ...]]:
        """The predicted label(s) per row: the top class, or every class over ``threshold``."""
        if not self.multi_label:
            return [(self.classes[int(i)],) for i in probabilities.argmax(-1)]
        return [
            tuple(self.classes[j] for j in range(len(self.classes)) if float(row[j]) >= threshold)
            for row in probabilities
        ]
