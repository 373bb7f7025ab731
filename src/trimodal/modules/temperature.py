"""The learned temperature of contrastive logits."""

from __future__ import annotations

import math

import torch
from torch import nn

MAX_SCALE = 100.0
"""The largest logit scale (CLIP's clamp): the temperature never goes below 1/100."""


class LearnableTemperature(nn.Module):
    """A learned ``logit_scale`` (log inverse temperature), CLIP-initialised.

    Args:
        init_temperature: initial temperature; ``logit_scale = log(1 / init_temperature)``.
        max_scale: the returned ``logit_scale`` is clamped to at most ``log(max_scale)``.
    """

    def __init__(self, init_temperature: float = 0.07, max_scale: float = MAX_SCALE):
        super().__init__()
        # Held as ``[1]``, not a scalar: FSDP2 shards no 0-d parameter.
        self.logit_scale = nn.Parameter(torch.full((1,), math.log(1.0 / init_temperature)))
        self.max_logit = math.log(max_scale)
        self.register_load_state_dict_pre_hook(_scalar_to_vector)

    def forward(self) -> torch.Tensor:
        """Scalar tensor ``min(logit_scale, log(max_scale))``."""
        return self.logit_scale.clamp(max=self.max_logit)[0]


def _scalar_to_vector(
    module: nn.Module, state: dict[str, torch.Tensor], prefix: str, *_: object
) -> None:
    """Load hook: checkpoints written when ``logit_scale`` was a 0-d tensor load as ``[1]``."""
    key = prefix + "logit_scale"
    if key in state and state[key].ndim == 0:
        state[key] = state[key].reshape(1)
