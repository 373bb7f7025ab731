"""Decode the model's slots into outcomes and score them.

Figures per input (typed or spoken) and camera (on or off): exact-action accuracy (the whole
outcome after the policy equals the expected one: status, every action and value, reason),
per-slot micro F1 over devices, ``device:action`` pairs and thermostat values, refusal
precision and recall, and exact accuracy per command kind.
"""

from __future__ import annotations

from typing import Any

import torch

from trimodal.home.actions import Action, ConfirmationPolicy, Outcome, decided
from trimodal.home.data import HomeTensors
from trimodal.home.model import SLOT_ACTIONS, HomeModel
from trimodal.home.room import DEVICES, MIN_TEMPERATURE


def outcomes_of(slot_logits: torch.Tensor, value_logits: torch.Tensor) -> list[Outcome]:
    """Per row, the model's outcome before the policy: slot argmax per device, the temperature
    argmax for ``set``."""
    slots = slot_logits.argmax(-1).tolist()  # (B, devices)
    values = (value_logits.argmax(-1) + MIN_TEMPERATURE).tolist()
    outcomes = []
    for row, value in zip(slots, values, strict=True):
        actions, missing = [], []
        for device, index in zip(DEVICES, row, strict=True):
            name = SLOT_ACTIONS[index]
            if name == "missing":
                missing.append(device)
            elif name != "none":
                actions.append(Action(device, name, value if name == "set" else None))
        outcomes.append(decided(actions, missing))
    return outcomes


def predict_outcomes(
    model: HomeModel,
    tensors: HomeTensors,
    spoken: bool,
    with_image: bool,
    device: torch.device,
    batch: int = 256,
) -> list[Outcome]:
    """The model's outcomes (before the policy) for every row."""
    model.eval()
    outcomes: list[Outcome] = []
    with torch.no_grad():
        for start in range(0, len(tensors), batch):
            rows = torch.arange(start, min(start + batch, len(tensors)))
            outputs = model(tensors.inputs(rows, spoken, with_image, device))
            outcomes += outcomes_of(outputs.slots.float().cpu(), outputs.values.float().cpu())
    return outcomes


def _f1(true_positive: int, false_positive: int, false_negative: int) -> float:
    denominator = 2 * true_positive + false_positive + false_negative
    return 1.0 if denominator == 0 else 2 * true_positive / denominator


def _parts(outcome: Outcome) -> dict[str, set[tuple[Any, ...]]]:
    return {
        "device": {(a.device,) for a in outcome.actions},
        "action": {(a.device, a.action) for a in outcome.actions},
        "value": {(a.device, a.value) for a in outcome.actions if a.value is not None},
    }


def score_outcomes(
    predicted: list[Outcome], expected: list[Outcome], kinds: list[str]
) -> dict[str, Any]:
    """Exact accuracy (all and per kind), per-slot micro F1, refusal precision and recall.

    Both lists are outcomes after the policy. Precision with no predicted refusal is 1 if
    none was expected, else 0 (a model that never refuses cannot score 1).
    """
    if not expected or len(predicted) != len(expected) or len(kinds) != len(expected):
        raise ValueError(
            f"{len(predicted)} predictions, {len(expected)} outcomes, {len(kinds)} kinds"
        )
    exact = [p == e for p, e in zip(predicted, expected, strict=True)]
    counts = {slot: [0, 0, 0] for slot in ("device", "action", "value")}
    for p, e in zip(predicted, expected, strict=True):
        mine, theirs = _parts(p), _parts(e)
        for slot, tally in counts.items():
            tally[0] += len(mine[slot] & theirs[slot])
            tally[1] += len(mine[slot] - theirs[slot])
            tally[2] += len(theirs[slot] - mine[slot])
    refused_p = [p.status == "refused" for p in predicted]
    refused_e = [e.status == "refused" for e in expected]
    hits = sum(p and e for p, e in zip(refused_p, refused_e, strict=True))
    precision = hits / sum(refused_p) if any(refused_p) else float(not any(refused_e))
    recall = hits / sum(refused_e) if any(refused_e) else 1.0
    per_kind = {
        kind: sum(x for x, k in zip(exact, kinds, strict=True) if k == kind) / kinds.count(kind)
        for kind in sorted(set(kinds))
    }
    return {
        "rows": len(expected),
        "exact_accuracy": sum(exact) / len(exact),
        "slot_f1": {slot: _f1(*tally) for slot, tally in counts.items()},
        "refusal_precision": precision,
        "refusal_recall": recall,
        "per_kind": per_kind,
    }


def evaluate_home(
    model: HomeModel, tensors: HomeTensors, policy: ConfirmationPolicy, device: torch.device
) -> dict[str, Any]:
    """:func:`score_outcomes` for typed and spoken commands, with the camera on and off."""
    expected = [policy.apply(Outcome.from_dict(row["outcome"])) for row in tensors.rows]
    kinds = [row["kind"] for row in tensors.rows]
    results: dict[str, Any] = {}
    for spoken in (False, True):
        for with_image in (True, False):
            name = f"{'spoken' if spoken else 'typed'}{'' if with_image else '_no_image'}"
            predicted = [
                policy.apply(o)
                for o in predict_outcomes(model, tensors, spoken, with_image, device)
            ]
            results[name] = score_outcomes(predicted, expected, kinds)
    return results
