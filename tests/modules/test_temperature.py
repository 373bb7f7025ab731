"""The learned temperature of contrastive logits."""

from __future__ import annotations

import math

import pytest
import torch

from trimodal.modules.temperature import LearnableTemperature


def test_learnable_temperature_init_and_clamp() -> None:
    temperature = LearnableTemperature()
    assert temperature().item() == pytest.approx(math.log(1 / 0.07), abs=1e-6)
    with torch.no_grad():
        temperature.logit_scale.fill_(10.0)
    assert temperature().item() == pytest.approx(math.log(100.0), abs=1e-6)


def test_learnable_temperature_is_trained() -> None:
    temperature = LearnableTemperature()
    temperature().backward()
    assert temperature.logit_scale.grad is not None
    assert temperature.logit_scale.grad.item() == 1.0
