"""trimodal: tri-modal (text, image, audio) models."""

__version__ = "0.1.0"
