"""Commands for a room, in six kinds, with the outcome each should get.

- ``direct``: names a present device and what to do ("turn off the lamp by the window", "set
  the thermostat to 22 degrees"); done whatever its state.
- ``deictic``: picks its device by state ("switch off the light that is on", "toggle the fan"),
  so only the camera can tell which device or which action.
- ``indirect``: says a need ("it's too dark in here", "I'm cold"); acts on the devices whose
  state needs changing.
- ``multi``: several devices at once ("turn everything off"), those whose state changes.
- ``unsafe``: unlocking the front door: the model answers the action, the recipe's policy holds
  it for confirmation.
- ``impossible``: a device the room does not have (the oven, or an absent fan, TV or
  thermostat): refused.

Collective and state-dependent commands act only on devices that change; when none does the
outcome is ``nothing_to_do``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from trimodal.home.actions import Action, Outcome, decided
from trimodal.home.room import MAX_TEMPERATURE, MIN_TEMPERATURE, SWITCHES, Room

KINDS = ("direct", "deictic", "indirect", "multi", "unsafe", "impossible")
LAMPS = ("lamp_window", "lamp_sofa")
SPOKEN_NAMES: dict[str, tuple[str, ...]] = {
    "lamp_window": ("the lamp by the window", "the window lamp"),
    "lamp_sofa": ("the lamp by the sofa", "the sofa lamp", "the reading lamp"),
    "fan": ("the fan", "the ceiling fan"),
    "tv": ("the tv", "the television"),
    "curtains": ("the curtains", "the drapes"),
    "thermostat": ("the thermostat", "the heating"),
    "door": ("the front door", "the door"),
    "oven": ("the oven",),
}
NUMBER_WORDS = {
    16: "sixteen",
    17: "seventeen",
    18: "eighteen",
    19: "nineteen",
    20: "twenty",
    21: "twenty one",
    22: "twenty two",
    23: "twenty three",
    24: "twenty four",
    25: "twenty five",
    26: "twenty six",
    27: "twenty seven",
    28: "twenty eight",
}


@dataclass(frozen=True)
class Command:
    """A command's words, its kind and the outcome it should get (before the policy)."""

    text: str
    kind: str
    outcome: Outcome
    missing: tuple[str, ...] = ()
    """Devices the command names that the room lacks (refused commands)."""


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return str(options[int(rng.integers(len(options)))])


def _name(rng: np.random.Generator, device: str) -> str:
    return _pick(rng, SPOKEN_NAMES[device])


def _switch_text(rng: np.random.Generator, name: str, state: str) -> str:
    templates = (
        "turn {s} {n}",
        "switch {s} {n}",
        "turn {n} {s}",
        "please switch {n} {s}",
        "{n} {s} please",
        "could you turn {s} {n}",
    )
    return _pick(rng, templates).format(s=state, n=name)


def direct(room: Room, rng: np.random.Generator) -> Command | None:
    """A present device told what to do."""
    present = [d for d in (*SWITCHES, "curtains", "thermostat", "door") if room.has(d)]
    device = _pick(rng, present)
    name = _name(rng, device)
    if device in SWITCHES:
        state = _pick(rng, ("on", "off"))
        return Command(
            _switch_text(rng, name, state), "direct", decided([Action(device, state)], [])
        )
    if device == "curtains":
        action = _pick(rng, ("open", "close"))
        text = _pick(rng, ("{a} {n}", "please {a} {n}", "could you {a} {n}")).format(
            a=action, n=name
        )
        return Command(text, "direct", decided([Action(device, action)], []))
    if device == "thermostat":
        value = int(rng.integers(MIN_TEMPERATURE, MAX_TEMPERATURE + 1))
        text = _pick(rng, ("set {n} to {v} degrees", "set {n} to {v}", "make it {v} degrees"))
        text = text.format(n=name, v=NUMBER_WORDS[value])
        return Command(text, "direct", decided([Action(device, "set", value)], []))
    text = _pick(rng, ("lock {n}", "please lock {n}", "lock up {n}")).format(n=name)
    return Command(text, "direct", decided([Action("door", "lock")], []))


def deictic(room: Room, rng: np.random.Generator) -> Command | None:
    """A device chosen by its state."""
    lamps = [d for d in LAMPS if room.has(d)]
    on_lamps = [d for d in lamps if room.on[d]]
    off_lamps = [d for d in lamps if not room.on[d]]
    choices: list[tuple[str, Action]] = []
    if len(lamps) == 2 and len(on_lamps) == 1:
        text = _pick(
            rng,
            (
                "switch off the light that is on",
                "turn off the lamp that is on",
                "the light that is on, turn it off",
            ),
        )
        choices.append((text, Action(on_lamps[0], "off")))
    if len(lamps) == 2 and len(off_lamps) == 1:
        text = _pick(rng, ("turn on the lamp that is off", "switch on the light that is off"))
        choices.append((text, Action(off_lamps[0], "on")))
    for device in ("fan", "tv"):
        if room.has(device):
            template = _pick(rng, ("toggle {n}", "flip {n}", "switch {n} the other way"))
            flipped = "off" if room.on[device] else "on"
            choices.append((template.format(n=_name(rng, device)), Action(device, flipped)))
    text = _pick(rng, ("do the curtains the other way", "toggle the curtains", "flip the curtains"))
    choices.append((text, Action("curtains", "close" if room.curtains_open else "open")))
    text, action = choices[int(rng.integers(len(choices)))]
    return Command(text, "deictic", decided([action], []))


def _turn(room: Room, devices: list[str], state: str) -> list[Action]:
    """Actions that bring the present ``devices`` (switches) to ``state``."""
    want = state == "on"
    return [Action(d, state) for d in devices if room.has(d) and room.on[d] != want]


def indirect(room: Room, rng: np.random.Generator) -> Command | None:
    """A need, met by the devices whose state must change."""
    need = _pick(rng, ("dark", "cold", "hot", "bright", "bed"))
    if need == "dark":
        text = _pick(rng, ("it's too dark in here", "i can't see a thing", "it is so dark"))
        actions = _turn(room, list(LAMPS), "on")
    elif need == "cold":
        if not room.has("thermostat"):
            return None
        text = _pick(rng, ("i'm cold", "it's freezing in here", "i am so cold"))
        actions = [Action("thermostat", "warmer"), *_turn(room, ["fan"], "off")]
    elif need == "hot":
        text = _pick(rng, ("it's too hot in here", "i'm boiling", "it is so warm"))
        actions = _turn(room, ["fan"], "on")
        if not room.has("fan") and room.has("thermostat"):
            actions = [Action("thermostat", "cooler")]
        if not room.has("fan") and not room.has("thermostat"):
            return None
    elif need == "bright":
        text = _pick(rng, ("it's too bright in here", "the light hurts my eyes"))
        actions = _turn(room, list(LAMPS), "off")
        if room.curtains_open:
            actions.append(Action("curtains", "close"))
    else:
        text = _pick(rng, ("i'm going to bed", "good night", "time to sleep"))
        actions = _turn(room, list(SWITCHES), "off")
        if room.curtains_open:
            actions.append(Action("curtains", "close"))
    return Command(text, "indirect", decided(actions, []))


def multi(room: Room, rng: np.random.Generator) -> Command | None:
    """Several devices at once."""
    form = _pick(rng, ("all_off", "all_on", "lights_off", "lights_on"))
    if form == "all_off":
        text = _pick(rng, ("turn everything off", "switch everything off", "everything off please"))
        actions = _turn(room, list(SWITCHES), "off")
    elif form == "all_on":
        text = _pick(rng, ("turn everything on", "switch everything on"))
        actions = _turn(room, list(SWITCHES), "on")
    else:
        state = form.split("_")[1]
        text = _pick(rng, ("turn all the lights {s}", "switch the lights {s}", "lights {s}"))
        text = text.format(s=state)
        actions = _turn(room, list(LAMPS), state)
    return Command(text, "multi", decided(actions, []))


def unsafe(room: Room, rng: np.random.Generator) -> Command | None:
    """Unlocking the front door."""
    text = _pick(
        rng,
        (
            "unlock the front door",
            "unlock the door",
            "open the lock on the door",
            "let them in, unlock the door",
        ),
    )
    return Command(text, "unsafe", decided([Action("door", "unlock")], []))


def impossible(room: Room, rng: np.random.Generator) -> Command | None:
    """A device the room lacks."""
    absent = [d for d in ("fan", "tv", "thermostat") if not room.has(d)]
    device = _pick(rng, ["oven", *absent, *absent])
    name = _name(rng, device)
    if device == "oven":
        text = _pick(rng, ("turn on the oven", "preheat the oven", "switch the oven on"))
    elif device == "thermostat":
        text = _pick(rng, ("set the thermostat to twenty degrees", "turn up the heating"))
    else:
        text = _switch_text(rng, name, _pick(rng, ("on", "off")))
    return Command(text, "impossible", decided([], [device]), (device,))


GENERATORS: dict[str, Callable[[Room, np.random.Generator], Command | None]] = {
    "direct": direct,
    "deictic": deictic,
    "indirect": indirect,
    "multi": multi,
    "unsafe": unsafe,
    "impossible": impossible,
}


def sample_command(room: Room, rng: np.random.Generator, kind: str) -> Command:
    """A command of ``kind`` for ``room`` (kinds that do not fit the room draw again)."""
    for _ in range(20):
        command = GENERATORS[kind](room, rng)
        if command is not None:
            return command
    return direct(room, rng) or unsafe(room, rng)  # type: ignore[return-value]
