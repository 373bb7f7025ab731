"""trimodal: tri-modal (text, image, audio) models: build, train, evaluate, serve."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Model", "__version__"]

if TYPE_CHECKING:
    from trimodal.inference import Model


def __getattr__(name: str) -> Any:
    # Lazy: ``import trimodal`` stays cheap (no torch) for the world generator's workers.
    if name == "Model":
        from trimodal.inference import Model

        return Model
    raise AttributeError(f"module 'trimodal' has no attribute {name!r}")
