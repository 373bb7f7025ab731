"""The modality registry: every modality the model can encode, registered here explicitly.

Registration order is build order (it fixes the encoders' initialization and parameter order):
text, image, audio, video. A new modality is a new :class:`~trimodal.modalities.base.Modality` in its
own file, registered with one line below.
"""

from __future__ import annotations

from trimodal.config import Config
from trimodal.modalities.audio import AudioModality
from trimodal.modalities.base import Modality, StoredModality
from trimodal.modalities.image import ImageModality
from trimodal.modalities.text import TextModality
from trimodal.modalities.video import VideoModality

_REGISTRY: dict[str, Modality] = {}


def register(modality: Modality) -> Modality:
    """Add ``modality`` to the registry; a second one with the same name is an error."""
    if modality.name in _REGISTRY:
        raise ValueError(f"modality {modality.name!r} is already registered")
    _REGISTRY[modality.name] = modality
    return modality


def get_modality(name: str) -> Modality:
    """The registered modality called ``name``; an unknown name lists the known ones."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown modality {name!r} (registered: {', '.join(_REGISTRY)})")
    return _REGISTRY[name]


def registered_modalities() -> tuple[Modality, ...]:
    """Every registered modality, in registration (build) order."""
    return tuple(_REGISTRY.values())


def enabled_modalities(config: Config) -> tuple[Modality, ...]:
    """The registered modalities a model built from ``config`` has encoders for."""
    return tuple(m for m in _REGISTRY.values() if m.enabled(config))


def stored_modalities(config: Config | None = None) -> tuple[StoredModality, ...]:
    """The registered modalities with a store of their own (enabled in ``config`` if given)."""
    return tuple(
        m
        for m in _REGISTRY.values()
        if isinstance(m, StoredModality) and (config is None or m.enabled(config))
    )


register(TextModality())
register(ImageModality())
register(AudioModality())
register(VideoModality())

__all__ = [
    "Modality",
    "StoredModality",
    "enabled_modalities",
    "get_modality",
    "register",
    "registered_modalities",
    "stored_modalities",
]
