"""The home recipe: model size, training settings and the confirmation policy (YAML)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trimodal.config import from_dict
from trimodal.home.actions import DEFAULT_ALLOW, ConfirmationPolicy


@dataclass
class HomeRecipe:
    """Everything ``trimodal home train`` reads from ``configs/apps/home.yaml``.

    Attributes:
        allow: the confirmation policy's allow-list (``device:action``); anything else the model
            asks for waits for a person to confirm.
        image_dropout: share of training batches without the room image (so the model can be
            asked, and measured, with the camera off).
        state_weight: weight of the auxiliary device-state loss (batches with the image).
    """

    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.05
    image_dropout: float = 0.15
    state_weight: float = 1.0
    """Weight of the auxiliary loss that reads each device's state from the image (0: off)."""
    dim: int = 128
    depth: int = 2
    max_length: int = 24
    seed: int = 0
    allow: list[str] = field(default_factory=lambda: list(DEFAULT_ALLOW))

    def policy(self) -> ConfirmationPolicy:
        """The checked allow-list."""
        return ConfirmationPolicy.from_list(self.allow)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "recipe") -> HomeRecipe:
        """Build from a mapping with :func:`trimodal.config.from_dict` (unknown keys and wrong
        types named by key); a bad policy entry names itself. Errors start with ``source``."""
        try:
            recipe = from_dict(cls, values)
            recipe.policy()
        except ValueError as error:
            raise ValueError(f"{source}: {error}") from None
        return recipe

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> HomeRecipe:
        """Read a YAML recipe (an empty file gives the defaults)."""
        source = Path(path)
        if not source.is_file():
            raise FileNotFoundError(f"home recipe not found: {source}")
        values = yaml.safe_load(source.read_text()) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{source}: expected a mapping of settings")
        return cls.from_dict(values, str(source))
