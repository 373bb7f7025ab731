"""The robustness suite: the same scenes, worded, spoken and drawn a little differently.

Each :class:`Shift` re-renders the first ``scenes`` scene graphs of a world's test split with one
thing changed — held-out phrasings, held-out voices, slow or fast speech, noise of a kind at
10 dB, a telephone channel, turned shapes, textured or gradient backgrounds, lighting — and the
model is measured on it and on an in-distribution *control* made from the same scene graphs
(:class:`~trimodal.world.generate.WorldConfig` with ``split="test"``, nothing changed). A shift's
relative drop on a metric is ``1 - shifted / control``. The phrasings and voices of the shifts
are disjoint from every training world's (see :mod:`trimodal.world.phrasing` and
:data:`~trimodal.world.channel.HELDOUT_VOICES`).

Shift worlds are built once into a folder and reused (like any world).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from trimodal.eval.harness import load_inputs
from trimodal.eval.robustness import measure
from trimodal.inference import Model
from trimodal.world.channel import HELDOUT_VOICES, SpeechStyle
from trimodal.world.generate import WorldConfig, build_world
from trimodal.world.render import RenderStyle

TYPED, SPOKEN = "vqa_typed", "vqa_spoken"
TEXT_IMAGE, AUDIO_TEXT = "text->image R@1", "audio->text R@1"
METRICS: tuple[str, ...] = (TYPED, SPOKEN, TEXT_IMAGE, AUDIO_TEXT)
SPEECH_METRICS = (SPOKEN, AUDIO_TEXT)
VISION_METRICS = (TYPED, TEXT_IMAGE)


@dataclass(frozen=True)
class Shift:
    """One way the suite changes the control world.

    Attributes:
        name: the key in reports.
        description: what changes, for a reader.
        change: the :class:`WorldConfig` fields it sets (the rest are the control's).
        targets: the metrics it is meant to move (all four are measured).
    """

    name: str
    description: str
    change: dict[str, Any] = field(default_factory=dict)
    targets: tuple[str, ...] = METRICS


def _noise(kind: str) -> dict[str, Any]:
    return {"speech": SpeechStyle(noises=(kind,), snr=(10.0, 10.0))}


SHIFTS: tuple[Shift, ...] = (
    Shift(
        "phrasing",
        "held-out question and caption forms, same content words",
        {"phrasing": "heldout"},
        (TYPED, SPOKEN, TEXT_IMAGE, AUDIO_TEXT),
    ),
    Shift(
        "voices",
        "six held-out eSpeak voices",
        {"speech": SpeechStyle(voices=HELDOUT_VOICES)},
        SPEECH_METRICS,
    ),
    Shift(
        "rate_100",
        "speech at 100 words a minute",
        {"speech": SpeechStyle(rate=(100, 100))},
        SPEECH_METRICS,
    ),
    Shift(
        "rate_240",
        "speech at 240 words a minute",
        {"speech": SpeechStyle(rate=(240, 240))},
        SPEECH_METRICS,
    ),
    Shift("white_10db", "white noise at 10 dB SNR", _noise("white"), SPEECH_METRICS),
    Shift("pink_10db", "pink noise at 10 dB SNR", _noise("pink"), SPEECH_METRICS),
    Shift("babble_10db", "three other talkers at 10 dB SNR", _noise("babble"), SPEECH_METRICS),
    Shift(
        "telephone",
        "300-3400 Hz band, 8 kHz, mu-law",
        {"speech": SpeechStyle(channels=("telephone",))},
        SPEECH_METRICS,
    ),
    Shift(
        "rotation",
        "each shape turned a further 10-40 degrees",
        {"render": RenderStyle(turn=(10.0, 40.0))},
        VISION_METRICS,
    ),
    Shift(
        "texture",
        "textured backgrounds",
        {"render": RenderStyle(backgrounds=("texture",))},
        VISION_METRICS,
    ),
    Shift(
        "gradient",
        "gradient backgrounds",
        {"render": RenderStyle(backgrounds=("gradient",))},
        VISION_METRICS,
    ),
    Shift(
        "lighting",
        "brightness scaled by 0.7-1.3",
        {"render": RenderStyle(lighting=0.3)},
        VISION_METRICS,
    ),
)
"""The suite's shifts, in report order."""


def shift_names() -> list[str]:
    """Every shift's name."""
    return [shift.name for shift in SHIFTS]


def control_config(seed: int, scenes: int, image_size: int = 64) -> WorldConfig:
    """The in-distribution control: the first ``scenes`` test scenes of the world ``seed``."""
    return WorldConfig(scenes=scenes, seed=seed, image_size=image_size, split="test")


def relative_drops(control: dict[str, float], shifted: dict[str, float]) -> dict[str, float]:
    """``1 - shifted / control`` per metric both have (a control of 0 gives no drop)."""
    return {
        name: 1.0 - shifted[name] / control[name]
        for name in control
        if name in shifted and control[name] > 0
    }


def run_shift_suite(
    model: Model,
    folder: Path,
    seed: int,
    scenes: int = 300,
    names: Sequence[str] | None = None,
    workers: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Build (or reuse) the control and each shift's world under ``folder`` and measure the model.

    Returns:
        ``{"seed", "scenes", "control": metrics, "shifts": {name: {"description", "targets",
        "metrics", "drop", "worst_target_drop"}}}``.
    """
    say = progress or (lambda message: None)
    chosen = _chosen(names)
    base = control_config(seed, scenes)
    say(f"... shift suite: control ({scenes} test scenes of world seed {seed})")
    control = _measure(model, folder / "control", base, workers)
    results: dict[str, Any] = {}
    for shift in chosen:
        say(f"... shift suite: {shift.name} ({shift.description})")
        metrics = _measure(model, folder / shift.name, replace(base, **shift.change), workers)
        drops = relative_drops(control, metrics)
        targeted = [drops[name] for name in shift.targets if name in drops]
        results[shift.name] = {
            "description": shift.description,
            "targets": list(shift.targets),
            "metrics": metrics,
            "drop": drops,
            "worst_target_drop": max(targeted) if targeted else None,
        }
    return {"seed": seed, "scenes": scenes, "control": control, "shifts": results}


def _chosen(names: Sequence[str] | None) -> list[Shift]:
    if names is None:
        return list(SHIFTS)
    unknown = [name for name in names if name not in shift_names()]
    if unknown:
        raise ValueError(f"unknown shift(s) {unknown}; choose from {shift_names()}")
    return [shift for shift in SHIFTS if shift.name in names]


def _measure(
    model: Model, world: Path, config: WorldConfig, workers: int | None
) -> dict[str, float]:
    build_world(world, config, workers=workers)
    inputs = load_inputs(model, world / "manifest.jsonl")
    model.network.eval()
    return measure(model, inputs.tensors, METRICS)


def shift_rows(suite: dict[str, Any]) -> list[list[str]]:
    """The suite as table rows: ``[name, cell per metric of METRICS]``, the control first. A
    shift's cell is its value and relative change against the control, ``*`` where the shift
    targets the metric, ``-`` where the metric was not measured."""
    control = suite["control"]
    rows = [["control", *[f"{control.get(m, float('nan')):.3f}" for m in METRICS]]]
    for name, result in suite["shifts"].items():
        cells = [name]
        for metric in METRICS:
            value, drop = result["metrics"].get(metric), result["drop"].get(metric)
            text = "-" if value is None else f"{value:.3f}"
            if value is not None and drop is not None:
                text += f" ({-100 * drop:+.0f}%)"
            cells.append(text + (" *" if metric in result["targets"] else ""))
        rows.append(cells)
    return rows


def format_shift_table(suite: dict[str, Any]) -> str:
    """The suite as a text table: each shift's metrics and relative drops against the control."""
    lines = [
        f"robustness suite: {suite['scenes']} test scenes of world seed {suite['seed']}, "
        "value (relative drop vs control); * marks the metrics a shift targets",
        f"{'shift':<13}" + "".join(f"{name:>22}" for name in METRICS),
    ]
    for name, *cells in shift_rows(suite):
        lines.append(f"{name:<13}" + "".join(f"{cell:>22}" for cell in cells))
    return "\n".join(lines)
