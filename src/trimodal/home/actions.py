"""What the home model answers: a JSON outcome that validates against :data:`OUTCOME_SCHEMA`,
and the confirmation policy that code applies after the model.

An outcome is ``{"status", "actions", "reason"}``: ``execute`` (the actions may run),
``needs_confirmation`` (an action is not on the recipe's allow-list; nothing runs until a
person confirms), ``refused`` (the command names a device the room does not have) or
``nothing_to_do`` (every device is already as asked). Actions are ``{device, action, value}``;
``value`` is the temperature for ``set`` and ``null`` otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jsonschema

from trimodal.home.room import DEVICES, MAX_TEMPERATURE, MIN_TEMPERATURE

ACTIONS = ("on", "off", "open", "close", "lock", "unlock", "set", "warmer", "cooler")
DEVICE_ACTIONS: dict[str, tuple[str, ...]] = {
    "lamp_window": ("on", "off"),
    "lamp_sofa": ("on", "off"),
    "fan": ("on", "off"),
    "tv": ("on", "off"),
    "curtains": ("open", "close"),
    "thermostat": ("set", "warmer", "cooler"),
    "door": ("lock", "unlock"),
    "oven": ("on", "off"),
}
STATUSES = ("execute", "needs_confirmation", "refused", "nothing_to_do")
DEVICE_NAMES = {
    "lamp_window": "lamp by the window",
    "lamp_sofa": "lamp by the sofa",
    "fan": "fan",
    "tv": "TV",
    "curtains": "curtains",
    "thermostat": "thermostat",
    "door": "front door",
    "oven": "oven",
}

OUTCOME_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "trimodal home outcome",
    "type": "object",
    "additionalProperties": False,
    "required": ["status", "actions", "reason"],
    "properties": {
        "status": {"enum": list(STATUSES)},
        "reason": {"type": ["string", "null"]},
        "actions": {
            "type": "array",
            "uniqueItems": True,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["device", "action", "value"],
                "properties": {
                    "device": {"enum": list(DEVICES)},
                    "action": {"enum": list(ACTIONS)},
                    "value": {
                        "oneOf": [
                            {"type": "null"},
                            {
                                "type": "integer",
                                "minimum": MIN_TEMPERATURE,
                                "maximum": MAX_TEMPERATURE,
                            },
                        ]
                    },
                },
            },
        },
    },
    "allOf": [
        {
            "if": {"properties": {"status": {"enum": ["execute", "needs_confirmation"]}}},
            "then": {"properties": {"actions": {"minItems": 1}}},
            "else": {"properties": {"actions": {"maxItems": 0}}},
        },
        {
            "if": {"properties": {"status": {"enum": ["refused", "needs_confirmation"]}}},
            "then": {"properties": {"reason": {"type": "string"}}},
        },
    ],
}


@dataclass(frozen=True, order=True)
class Action:
    """One device action; ``value`` only for ``set`` (a temperature)."""

    device: str
    action: str
    value: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The schema's action object."""
        return {"device": self.device, "action": self.action, "value": self.value}


@dataclass(frozen=True)
class Outcome:
    """A decided command: its status, actions (sorted) and reason."""

    status: str
    actions: tuple[Action, ...] = ()
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, validated against :data:`OUTCOME_SCHEMA`."""
        value = {
            "status": self.status,
            "actions": [a.to_dict() for a in self.actions],
            "reason": self.reason,
        }
        validate_outcome(value)
        return value

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> Outcome:
        """Parse a validated outcome object."""
        validate_outcome(value)
        actions = tuple(
            sorted(Action(a["device"], a["action"], a["value"]) for a in value["actions"])
        )
        return cls(value["status"], actions, value["reason"])


def validate_outcome(value: Any) -> None:
    """Raise ``ValueError`` naming the field when ``value`` does not match the schema (or an
    action a device does not have, or ``set`` without a value)."""
    try:
        jsonschema.validate(value, OUTCOME_SCHEMA)
    except jsonschema.ValidationError as error:
        where = "/".join(str(p) for p in error.absolute_path) or "(the outcome)"
        raise ValueError(f"home outcome field {where}: {error.message}") from None
    for index, action in enumerate(value["actions"]):
        if action["action"] not in DEVICE_ACTIONS[action["device"]]:
            raise ValueError(
                f"home outcome field actions/{index}: {action['device']} cannot "
                f"{action['action']!r} (it can {', '.join(DEVICE_ACTIONS[action['device']])})"
            )
        if (action["action"] == "set") != (action["value"] is not None):
            raise ValueError(
                f"home outcome field actions/{index}/value: a value goes with 'set' and only it"
            )


def decided(actions: Iterable[Action], missing: Iterable[str]) -> Outcome:
    """The model's outcome before the policy: refused when it names a missing device, nothing
    to do when no action is left, else execute."""
    absent = sorted(set(missing))
    if absent:
        names = " or ".join(DEVICE_NAMES[d] for d in absent)
        return Outcome("refused", (), f"there is no {names} in this room")
    chosen = tuple(sorted(set(actions)))
    if not chosen:
        return Outcome("nothing_to_do", (), None)
    return Outcome("execute", chosen, None)


@dataclass(frozen=True)
class ConfirmationPolicy:
    """The recipe's allow-list: ``device:action`` pairs that run without a person confirming.

    Applied in code after the model (:meth:`apply`); the model is never trusted to ask.
    """

    allow: frozenset[str]

    @classmethod
    def from_list(cls, allow: Iterable[str]) -> ConfirmationPolicy:
        """Check each ``device:action`` entry (a ``ValueError`` names a bad one)."""
        entries = frozenset(allow)
        for entry in sorted(entries):
            device, _, action = entry.partition(":")
            if device not in DEVICE_ACTIONS or action not in DEVICE_ACTIONS[device]:
                raise ValueError(
                    f"home policy allow entry {entry!r} is not device:action (devices: "
                    f"{', '.join(DEVICES)})"
                )
        return cls(entries)

    def apply(self, outcome: Outcome) -> Outcome:
        """``execute`` becomes ``needs_confirmation`` when an action is not allowed."""
        if outcome.status != "execute":
            return outcome
        held = [a for a in outcome.actions if f"{a.device}:{a.action}" not in self.allow]
        if not held:
            return outcome
        names = ", ".join(f"{a.action} the {DEVICE_NAMES[a.device]}" for a in held)
        return Outcome("needs_confirmation", outcome.actions, f"confirm first: {names}")


DEFAULT_ALLOW = tuple(
    f"{device}:{action}"
    for device, actions in DEVICE_ACTIONS.items()
    for action in actions
    if (device, action) != ("door", "unlock") and device != "oven"
)
"""Everything except unlocking the front door (and the oven, which no room has)."""
