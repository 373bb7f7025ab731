"""Combining per-task losses, and choosing which tasks to train on.

Task losses arrive as ``{task: scalar tensor}`` holding only the tasks present in the batch. Every
weighting module maps them to a :class:`MultiTaskOutput` whose ``total`` is the weighted sum over
the present tasks:

- :class:`StaticWeighting`: fixed weights.
- :class:`UncertaintyWeighting`: learned homoscedastic uncertainty (Kendall, Gal & Cipolla 2018).
- :class:`DynamicWeightAverage`: weights from the rate of change of each loss (Liu et al. 2019).

:class:`LossDrivenTaskSampler` picks which tasks to run, favouring those whose loss is high.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class MultiTaskOutput:
    """A weighted multi-task loss and what went into it.

    Attributes:
        total: scalar tensor ``sum_t weights[t] * parts[t]`` (plus any regulariser).
        parts: ``{task: scalar}`` the unweighted task losses given.
        weights: ``{task: float}`` the weight applied to each given task.
    """

    total: torch.Tensor
    parts: dict[str, torch.Tensor]
    weights: dict[str, float]


def _require_losses(losses: dict[str, torch.Tensor], known: Sequence[str] | None = None) -> None:
    """Reject an empty dict, and (when ``known`` is given) tasks outside it."""
    if not losses:
        raise ValueError("no task losses given")
    if known is not None:
        unknown = sorted(set(losses) - set(known))
        if unknown:
            raise ValueError(f"unknown tasks {unknown}; this weighting knows {sorted(known)}")


def weighted_sum(losses: dict[str, torch.Tensor], weights: dict[str, float]) -> MultiTaskOutput:
    """``sum_t weights[t] * losses[t]`` over ``losses`` (scalars); every task needs a weight."""
    _require_losses(losses)
    total = torch.stack([weights[task] * loss for task, loss in losses.items()]).sum()
    return MultiTaskOutput(
        total=total, parts=dict(losses), weights={task: weights[task] for task in losses}
    )


class StaticWeighting(nn.Module):
    """Fixed weights: ``total = sum_t w_t * L_t`` over the present tasks.

    Args:
        weights: ``{task: w_t}``; a task without a weight gets 1.0.
    """

    def __init__(self, weights: dict[str, float] | None = None):
        super().__init__()
        self.weights = dict(weights or {})

    def forward(self, losses: dict[str, torch.Tensor]) -> MultiTaskOutput:
        """Weight ``{task: scalar}``; see the class docstring."""
        return weighted_sum(losses, {task: self.weights.get(task, 1.0) for task in losses})


class UncertaintyWeighting(nn.Module):
    """Homoscedastic uncertainty weighting (Kendall, Gal & Cipolla 2018).

    Learns a log-variance ``s_t`` per task (initialised to 0) and minimises
    ``sum_t 0.5 * exp(-s_t) * L_t + 0.5 * s_t`` over the present tasks; for a constant ``L_t``
    the optimum is ``s_t = log L_t``. The reported weight is ``0.5 * exp(-s_t)``.

    Args:
        tasks: every task this weighting may see.
    """

    def __init__(self, tasks: Sequence[str]):
        super().__init__()
        if not tasks:
            raise ValueError("UncertaintyWeighting needs at least one task")
        self.tasks = tuple(tasks)
        self.log_vars = nn.Parameter(torch.zeros(len(self.tasks)))  # [K]

    def log_var(self, task: str) -> torch.Tensor:
        """Scalar tensor ``s_t`` of ``task``."""
        return self.log_vars[self.tasks.index(task)]

    def forward(self, losses: dict[str, torch.Tensor]) -> MultiTaskOutput:
        """Weight ``{task: scalar}``; see the class docstring."""
        _require_losses(losses, self.tasks)
        terms, weights = [], {}
        for task, loss in losses.items():
            s = self.log_var(task)
            precision = 0.5 * torch.exp(-s)
            terms.append(precision * loss + 0.5 * s)
            weights[task] = float(precision.detach())
        return MultiTaskOutput(total=torch.stack(terms).sum(), parts=dict(losses), weights=weights)


class DynamicWeightAverage(nn.Module):
    """Dynamic Weight Average (Liu, Johns & Davison 2019).

    In training mode every call adds the given losses to the current window's running means;
    :meth:`step_epoch` closes the window. With ``r_t = Lbar_t(k-1) / Lbar_t(k-2)`` the ratio of
    the last two closed windows' mean losses, the weights are ``w_t = K * softmax_t(r_t / T)``
    over all ``K`` tasks; a task missing from either window gets ``r_t = 1``. Until two windows
    are closed every weight is 1.0. The window state is in buffers, so ``state_dict`` resumes it.

    Args:
        tasks: every task this weighting may see (``K = len(tasks)``).
        temperature: softmax temperature ``T``; larger is closer to equal weights.
    """

    _sums: torch.Tensor
    _counts: torch.Tensor
    _history: torch.Tensor
    _closed: torch.Tensor

    def __init__(self, tasks: Sequence[str], temperature: float = 2.0):
        super().__init__()
        if not tasks:
            raise ValueError("DynamicWeightAverage needs at least one task")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.tasks = tuple(tasks)
        self.temperature = temperature
        k = len(self.tasks)
        self.register_buffer("_sums", torch.zeros(k, dtype=torch.float64))
        self.register_buffer("_counts", torch.zeros(k, dtype=torch.long))
        # row 0: last closed window's means, row 1: the one before; NaN = task not seen.
        self.register_buffer("_history", torch.full((2, k), math.nan, dtype=torch.float64))
        self.register_buffer("_closed", torch.zeros((), dtype=torch.long))

    def record(self, losses: dict[str, torch.Tensor]) -> None:
        """Add ``{task: scalar}`` to the current window's running means."""
        for task, loss in losses.items():
            index = self.tasks.index(task)
            self._sums[index] += float(loss.detach())
            self._counts[index] += 1

    def step_epoch(self) -> None:
        """Close the current window: its per-task means become the latest history."""
        means = self._sums / self._counts.clamp(min=1)
        means[self._counts == 0] = math.nan
        self._history[1] = self._history[0]
        self._history[0] = means
        self._sums.zero_()
        self._counts.zero_()
        self._closed += 1

    def current_weights(self) -> dict[str, float]:
        """``{task: w_t}`` for every task, from the last two closed windows."""
        if int(self._closed) < 2:
            return dict.fromkeys(self.tasks, 1.0)
        ratios = self._history[0] / self._history[1]
        ratios = torch.where(torch.isfinite(ratios), ratios, torch.ones_like(ratios))
        weights = len(self.tasks) * torch.softmax(ratios / self.temperature, dim=0)
        return dict(zip(self.tasks, weights.tolist(), strict=True))

    def forward(self, losses: dict[str, torch.Tensor]) -> MultiTaskOutput:
        """Weight ``{task: scalar}`` (and record them when training); see the class docstring."""
        _require_losses(losses, self.tasks)
        if self.training:
            self.record(losses)
        return weighted_sum(losses, self.current_weights())


WEIGHTINGS = ("static", "uncertainty", "dwa")


def build_weighting(name: str, tasks: Sequence[str], **options: Any) -> nn.Module:
    """A weighting module by name.

    Args:
        name: ``"static"`` (options: ``weights``), ``"uncertainty"`` or ``"dwa"``
            (options: ``temperature``).
        tasks: every task the weighting may see (static: default weight 1.0 each).
        **options: passed to the module's constructor.

    Returns:
        A module whose ``forward({task: scalar})`` returns a :class:`MultiTaskOutput`.
    """
    if name == "static":
        weights = {task: 1.0 for task in tasks} | dict(options.pop("weights", None) or {})
        return StaticWeighting(weights, **options)
    if name == "uncertainty":
        return UncertaintyWeighting(tasks, **options)
    if name == "dwa":
        return DynamicWeightAverage(tasks, **options)
    raise ValueError(f"unknown weighting {name!r}; expected one of {list(WEIGHTINGS)}")


class LossDrivenTaskSampler:
    """Samples tasks with probability ``softmax(ema_loss / temperature)``.

    Each task's loss is tracked as an exponential moving average (the first value seeds it).
    A task not yet updated counts as the highest EMA seen, so it is explored; before any update
    the distribution is uniform. Draws use the sampler's own seeded generator, and
    :meth:`state_dict` captures it, so a resumed run draws exactly the same tasks.

    Args:
        tasks: the tasks to choose from.
        temperature: softmax temperature; larger is closer to uniform.
        momentum: EMA momentum, ``ema = momentum * ema + (1 - momentum) * loss``.
        seed: seed of the sampler's generator.
    """

    def __init__(
        self,
        tasks: Sequence[str],
        temperature: float = 1.0,
        momentum: float = 0.9,
        seed: int = 0,
    ):
        if not tasks:
            raise ValueError("LossDrivenTaskSampler needs at least one task")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.tasks = tuple(tasks)
        self.temperature, self.momentum = temperature, momentum
        self.ema: dict[str, float] = {}
        self.generator = torch.Generator().manual_seed(seed)

    def update(self, losses: dict[str, float]) -> None:
        """Fold ``{task: loss}`` into the EMAs."""
        unknown = sorted(set(losses) - set(self.tasks))
        if unknown:
            raise ValueError(f"unknown tasks {unknown}; this sampler knows {list(self.tasks)}")
        for task, loss in losses.items():
            previous = self.ema.get(task)
            value = float(loss)
            self.ema[task] = (
                value
                if previous is None
                else self.momentum * previous + (1 - self.momentum) * value
            )

    def probabilities(self) -> dict[str, float]:
        """``{task: p}``, ``softmax(ema / temperature)`` over all tasks (sums to 1)."""
        return dict(zip(self.tasks, self._probability_tensor().tolist(), strict=True))

    def _probability_tensor(self) -> torch.Tensor:
        """``[K]`` float64 probabilities in task order."""
        if not self.ema:
            return torch.full((len(self.tasks),), 1.0 / len(self.tasks), dtype=torch.float64)
        unseen = max(self.ema.values())
        ema = torch.tensor([self.ema.get(task, unseen) for task in self.tasks], dtype=torch.float64)
        return torch.softmax(ema / self.temperature, dim=0)

    def sample(self, k: int) -> list[str]:
        """Draw ``k`` distinct tasks (in draw order) from :meth:`probabilities`."""
        if not 1 <= k <= len(self.tasks):
            raise ValueError(f"k must be in [1, {len(self.tasks)}], got {k}")
        drawn = torch.multinomial(
            self._probability_tensor(), k, replacement=False, generator=self.generator
        )
        return [self.tasks[i] for i in drawn.tolist()]

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: tasks, EMAs and the generator state."""
        return {
            "tasks": list(self.tasks),
            "ema": dict(self.ema),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (the task list must match)."""
        if tuple(state["tasks"]) != self.tasks:
            raise ValueError(f"state is for tasks {state['tasks']}, this sampler has {self.tasks}")
        self.ema = {task: float(value) for task, value in state["ema"].items()}
        self.generator.set_state(state["generator"].clone())
