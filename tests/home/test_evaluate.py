"""Scores against hand-computed values, and decoding slot logits."""

from __future__ import annotations

import pytest
import torch

from trimodal.home.actions import Action, Outcome, decided
from trimodal.home.evaluate import outcomes_of, score_outcomes
from trimodal.home.model import SLOT_ACTIONS
from trimodal.home.room import DEVICES


def test_scores_by_hand() -> None:
    fan_on = decided([Action("fan", "on")], [])
    both = decided([Action("fan", "on"), Action("thermostat", "set", 21)], [])
    refused = decided([], ["oven"])
    expected = [fan_on, both, refused, refused]
    predicted = [
        fan_on,
        decided([Action("fan", "on"), Action("thermostat", "set", 22)], []),
        refused,
        decided([], []),
    ]
    scores = score_outcomes(predicted, expected, ["direct", "multi", "impossible", "impossible"])
    assert scores["exact_accuracy"] == pytest.approx(2 / 4)
    # devices: tp fan, fan, thermostat = 3, fp 0, fn 0 -> 1. Actions likewise 1.
    assert scores["slot_f1"]["device"] == pytest.approx(1.0)
    # values: expected (thermostat, 21), predicted (thermostat, 22): tp 0, fp 1, fn 1 -> 0.
    assert scores["slot_f1"]["value"] == pytest.approx(0.0)
    assert scores["refusal_precision"] == pytest.approx(1.0)
    assert scores["refusal_recall"] == pytest.approx(0.5)
    assert scores["per_kind"] == {"direct": 1.0, "impossible": 0.5, "multi": 0.0}


def test_a_model_that_never_acts_scores_low() -> None:
    expected = [decided([Action("tv", "off")], []), decided([], ["fan"])] * 5
    idle = [Outcome("nothing_to_do")] * 10
    scores = score_outcomes(idle, expected, ["direct", "impossible"] * 5)
    assert scores["exact_accuracy"] == 0.0
    assert scores["refusal_precision"] == 0.0 and scores["refusal_recall"] == 0.0
    assert scores["slot_f1"]["action"] == 0.0


def test_outcomes_from_logits() -> None:
    logits = torch.zeros(2, len(DEVICES), len(SLOT_ACTIONS))
    logits[:, :, 0] = 1.0  # none everywhere
    logits[0, DEVICES.index("thermostat"), SLOT_ACTIONS.index("set")] = 5.0
    logits[0, DEVICES.index("tv"), SLOT_ACTIONS.index("off")] = 5.0
    logits[1, DEVICES.index("oven"), SLOT_ACTIONS.index("missing")] = 5.0
    values = torch.zeros(2, 13)
    values[0, 7] = 3.0  # 16 + 7 = 23 degrees
    first, second = outcomes_of(logits, values)
    assert first == decided([Action("thermostat", "set", 23), Action("tv", "off")], [])
    assert second.status == "refused" and second.reason == "there is no oven in this room"
