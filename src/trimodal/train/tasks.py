"""The task names each stage accepts, and the check that a recipe names only those."""

from __future__ import annotations

TASKS = ("contrastive", "vqa_typed", "vqa_spoken", "attributes", "objects")
REASON_TASKS = ("vqa_typed", "vqa_spoken", "contrastive", "transcribe")
"""Tasks of stage 2b, which keeps the image and audio towers fixed."""
IMAGE_TASKS = ("attributes", "objects")
"""Tasks that need only images (and scene graphs): they may join stage 1 too."""


def check_tasks(names: list[str], allowed: tuple[str, ...], field_name: str) -> None:
    """Raise a clear error naming the config field when a task name is unknown."""
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise ValueError(f"{field_name}: unknown task(s) {unknown}; choose from {list(allowed)}")
