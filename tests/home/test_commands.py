"""Every generated command's outcome checked by an independent simulator of the room."""

from __future__ import annotations

import numpy as np

from trimodal.home.actions import DEVICE_NAMES, Outcome
from trimodal.home.commands import KINDS, sample_command
from trimodal.home.room import SWITCHES, Room, sample_room


def after(room: Room, outcome: Outcome) -> dict[str, bool]:
    """Switch states after the outcome's actions."""
    state = dict(room.on)
    for action in outcome.actions:
        if action.device in SWITCHES:
            state[action.device] = action.action == "on"
    return state


def test_outcomes_do_what_the_words_ask() -> None:
    rng = np.random.default_rng(0)
    seen = set()
    for index in range(600):
        room = sample_room(rng)
        kind = KINDS[index % len(KINDS)]
        command = sample_command(room, rng, kind)
        outcome, text = command.outcome, command.text
        outcome.to_dict()  # validates
        seen.add(command.kind)
        for action in outcome.actions:
            assert room.has(action.device), (text, action)
        if command.kind == "impossible":
            assert outcome.status == "refused" and not room.has(command.missing[0])
            assert DEVICE_NAMES[command.missing[0]] in (outcome.reason or "")
        if text in ("turn everything off", "switch everything off", "everything off please"):
            assert not any(after(room, outcome).values())
            assert (outcome.status == "nothing_to_do") == (not any(room.on.values()))
        if text == "switch off the light that is on":
            (action,) = outcome.actions
            assert room.on[action.device] and action.action == "off"
        if text.startswith("toggle the fan") or text.startswith("flip the fan"):
            (action,) = outcome.actions
            assert action.action == ("off" if room.on["fan"] else "on")
        if command.kind == "unsafe":
            assert [(a.device, a.action) for a in outcome.actions] == [("door", "unlock")]
        if "twenty two" in text and "thermostat" in text:
            assert outcome.actions[0].value == 22
    assert seen == set(KINDS)
