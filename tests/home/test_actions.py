"""The outcome schema and the confirmation policy."""

from __future__ import annotations

import pytest

from trimodal.home.actions import (
    DEFAULT_ALLOW,
    Action,
    ConfirmationPolicy,
    Outcome,
    decided,
    validate_outcome,
)


def test_valid_outcomes_pass_and_round_trip() -> None:
    outcome = decided([Action("thermostat", "set", 22), Action("fan", "off")], [])
    value = outcome.to_dict()
    assert value["status"] == "execute" and len(value["actions"]) == 2
    assert Outcome.from_dict(value) == outcome
    assert decided([], ["oven"]).to_dict()["reason"] == "there is no oven in this room"
    assert decided([], []).to_dict() == {"status": "nothing_to_do", "actions": [], "reason": None}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"actions": [], "reason": None}, "'status' is a required property"),
        ({"status": "execute", "actions": [], "reason": None}, "field actions"),
        ({"status": "refused", "actions": [], "reason": None}, "field reason"),
        ({"status": "done", "actions": [], "reason": None}, "field status"),
        (
            {
                "status": "execute",
                "actions": [{"device": "fan", "action": "open", "value": None}],
                "reason": None,
            },
            "fan cannot 'open'",
        ),
        (
            {
                "status": "execute",
                "actions": [{"device": "thermostat", "action": "set", "value": None}],
                "reason": None,
            },
            "actions/0/value",
        ),
        (
            {
                "status": "execute",
                "actions": [{"device": "thermostat", "action": "set", "value": 40}],
                "reason": None,
            },
            "actions/0/value",
        ),
        (
            {
                "status": "execute",
                "actions": [{"device": "sink", "action": "on", "value": None}],
                "reason": None,
            },
            "actions/0/device",
        ),
        ({"status": "nothing_to_do", "actions": [], "reason": None, "extra": 1}, "extra"),
    ],
)
def test_invalid_outcomes_name_the_field(value: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_outcome(value)


def test_the_policy_holds_what_is_not_allowed() -> None:
    policy = ConfirmationPolicy.from_list(DEFAULT_ALLOW)
    unlock = decided([Action("door", "unlock"), Action("lamp_sofa", "on")], [])
    held = policy.apply(unlock)
    assert held.status == "needs_confirmation" and held.actions == unlock.actions
    assert held.reason == "confirm first: unlock the front door"
    assert policy.apply(decided([Action("door", "lock")], [])).status == "execute"
    strict = ConfirmationPolicy.from_list([])
    assert strict.apply(decided([Action("fan", "on")], [])).status == "needs_confirmation"
    refused = decided([], ["tv"])
    assert strict.apply(refused) == refused
    with pytest.raises(ValueError, match="'fan:open' is not device:action"):
        ConfirmationPolicy.from_list(["fan:open"])
