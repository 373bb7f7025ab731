"""Errors a training run stops with, each saying where and what to do."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

SHOWN_SAMPLES = 8


class NonFiniteLossError(ValueError):
    """A step's loss was NaN or infinite: the run stops before that step touches the weights
    (the last checkpoint stays the last good state), naming the stage, the step, the tasks
    whose loss was not finite and the samples of the batch."""

    def __init__(
        self,
        stage: str,
        step: int,
        global_step: int,
        parts: Mapping[str, float],
        sample_ids: Sequence[str],
    ):
        bad = [f"{task}={value}" for task, value in parts.items() if not math.isfinite(value)]
        shown = ", ".join(sample_ids[:SHOWN_SAMPLES])
        more = (
            f" and {len(sample_ids) - SHOWN_SAMPLES} more"
            if len(sample_ids) > SHOWN_SAMPLES
            else ""
        )
        super().__init__(
            f"non-finite loss at stage {stage} step {step} (global step {global_step}); "
            f"tasks: {', '.join(bad) or 'the weighted total'}; batch samples: {shown}{more}. "
            f"Check those samples' media (`trimodal manifest`), or lower the learning rate; "
            f"the last checkpoint is untouched"
        )
        self.stage, self.step, self.parts = stage, step, dict(parts)
