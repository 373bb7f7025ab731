"""Training pieces: the schedule, the temperature fit, and fusion beating one input alone."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from trimodal.classify.labels import LabelSpace
from trimodal.classify.train import fit_temperature
from trimodal.train.schedule import warmup_cosine


def test_warmup_then_cosine_to_zero() -> None:
    """The applications' schedule: floor 0 (the training stages keep a floor of 0.05)."""
    assert warmup_cosine(0, 100, 10, floor=0.0) == pytest.approx(0.1)
    assert warmup_cosine(9, 100, 10, floor=0.0) == pytest.approx(1.0)
    assert warmup_cosine(10, 100, 10, floor=0.0) == pytest.approx(1.0)
    assert warmup_cosine(55, 100, 10, floor=0.0) == pytest.approx(0.5)
    assert warmup_cosine(100, 100, 10, floor=0.0) == pytest.approx(0.0)


def test_temperature_recovers_how_overconfident_logits_are() -> None:
    """Labels drawn from softmax(z); the model reports 3z: the best temperature is about 3."""
    generator = torch.Generator().manual_seed(0)
    true_logits = torch.randn(20000, 4, generator=generator) * 2
    labels = torch.multinomial(true_logits.softmax(-1), 1, generator=generator)[:, 0]
    space = LabelSpace(("a", "b", "c", "d"), multi_label=False)
    assert fit_temperature(3 * true_logits, labels, space) == pytest.approx(3.0, rel=0.05)
    assert fit_temperature(true_logits, labels, space) == pytest.approx(1.0, rel=0.05)
    multi = LabelSpace(("x", "y"), multi_label=True)
    binary_logits = torch.randn(20000, 2, generator=generator) * 2
    outcomes = torch.bernoulli(torch.sigmoid(binary_logits), generator=generator)
    assert fit_temperature(binary_logits / 2, outcomes, multi) == pytest.approx(0.5, rel=0.05)


def test_fusion_beats_either_input_alone(scans_run: Path) -> None:
    """On the scans the finding needs both inputs. A model that sees one input perfectly can
    still only tell two groups of classes apart: the best possible accuracy from the image alone
    is P(new | lesion) P(lesion) + P(normal | none) P(none) = 0.65 * 0.4 + 0.65 * 0.6 = 0.65,
    and from the report alone 0.6 (the lesion's share is 0.4). The fused model must beat both."""
    metrics = json.loads((scans_run / "metrics.json").read_text())["test"]
    fused, image, text = (metrics[v]["macro_f1"] for v in ("fused", "image", "text"))
    assert fused > max(image, text) + 0.05
    assert metrics["fused"]["accuracy"] > 0.75
    assert metrics["fused"]["macro_auroc"] > 0.9
    assert all(math.isfinite(metrics[v]["ece"]) for v in metrics)
