"""Motion for the world's video clips: which way each object moves, the clip's frames, and the
captions and questions motion adds.

An object either stays still or travels :data:`TRAVEL` of the image side in one of four
directions over the clip, never leaving the image. Frame ``k`` of ``T`` shows every object
``k / (T - 1)`` of the way along its path, so frame 0 is the scene graph's still image. Motion
is drawn from its own seeded generator, so a scene's objects and still image are the same as
in a world without video.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace

import numpy as np

from trimodal.world.language import Question, QuestionBalancer
from trimodal.world.render import render_scene
from trimodal.world.scene import COLORS, Scene, SceneObject

DIRECTIONS: dict[str, tuple[float, float]] = {
    "left": (-1.0, 0.0),
    "right": (1.0, 0.0),
    "up": (0.0, -1.0),
    "down": (0.0, 1.0),
}
STILL = "none"
TRAVEL = 0.3
"""How far a moving object travels over the clip, as a fraction of the image side."""
MOTION_CLASSES: tuple[str, ...] = (STILL, *DIRECTIONS)
"""Every motion an object can have, in the order scene tensors index them."""
STILL_PROBABILITY = 0.3
_EDGE = 0.01

MOTION_FAMILIES: dict[str, tuple[str, ...]] = {
    "motion": (*DIRECTIONS, STILL),
    "mover": tuple(COLORS),
    "moves": ("yes", "no"),
}
"""The motion question families and their possible answers."""


def _fits(obj: SceneObject, direction: str) -> bool:
    dx, dy = DIRECTIONS[direction]
    x, y = obj.x + dx * TRAVEL, obj.y + dy * TRAVEL
    low, high = obj.radius + _EDGE, 1.0 - obj.radius - _EDGE
    return low <= x <= high and low <= y <= high


def sample_motions(scene: Scene, seed: int) -> tuple[str, ...]:
    """One motion per object (a direction of :data:`DIRECTIONS` or :data:`STILL`), drawn from
    the generator ``[seed, scene.index, 11]``; a direction is only chosen if the object stays
    inside the image all along its path."""
    rng = np.random.default_rng([seed, scene.index, 11])
    motions = []
    for obj in scene.objects:
        feasible = [d for d in DIRECTIONS if _fits(obj, d)]
        if rng.random() < STILL_PROBABILITY or not feasible:
            motions.append(STILL)
        else:
            motions.append(feasible[int(rng.integers(len(feasible)))])
    return tuple(motions)


def motion_offsets() -> list[tuple[float, float]]:
    """Each of :data:`MOTION_CLASSES`' whole-clip displacement ``(dx, dy)`` as fractions of the
    image side (zero for :data:`STILL`)."""
    return [
        (DIRECTIONS[m][0] * TRAVEL, DIRECTIONS[m][1] * TRAVEL) if m in DIRECTIONS else (0.0, 0.0)
        for m in MOTION_CLASSES
    ]


def moved(scene: Scene, motions: tuple[str, ...], fraction: float) -> Scene:
    """``scene`` with every object ``fraction`` (0..1) of the way along its path."""
    objects = []
    for obj, motion in zip(scene.objects, motions, strict=True):
        dx, dy = DIRECTIONS.get(motion, (0.0, 0.0))
        step = TRAVEL * fraction
        objects.append(replace(obj, x=obj.x + dx * step, y=obj.y + dy * step))
    return replace(scene, objects=tuple(objects))


def render_clip(scene: Scene, motions: tuple[str, ...], frames: int, image_size: int) -> np.ndarray:
    """The clip's RGB frames ``[frames, image_size, image_size, 3]`` uint8."""
    last = max(1, frames - 1)
    return np.stack(
        [
            np.asarray(render_scene(moved(scene, motions, k / last), image_size), np.uint8)
            for k in range(frames)
        ]
    )


def motion_name(obj: SceneObject, objects: tuple[SceneObject, ...]) -> str:
    """How motion captions and questions name an object: its colour and shape ("red circle"),
    with its size too when another object shares both ("small red circle"). Motion questions
    ask about motion, so they name what a clip shows best (colour) beside the shape, rather
    than the shortest unique phrase of the still questions ("circle")."""
    same = sum(o.color == obj.color and o.shape == obj.shape for o in objects)
    return f"{obj.color} {obj.shape}" if same == 1 else obj.phrase()


def motion_clause(scene: Scene, motions: tuple[str, ...]) -> str:
    """What moves, e.g. ``"the red circle moves left and the star moves up"``, or
    ``"nothing moves"``."""
    parts = [
        f"the {motion_name(obj, scene.objects)} moves {motion}"
        for obj, motion in zip(scene.objects, motions, strict=True)
        if motion != STILL
    ]
    return " and ".join(parts) if parts else "nothing moves"


def motion_questions(scene: Scene, motions: tuple[str, ...]) -> dict[str, list[Question]]:
    """Every motion question about the clip, by family: ``motion`` (which way does the red
    circle move?), ``mover`` (what colour is the object that moves up? — only when one object
    does) and ``moves`` (does the red circle move?); objects are named by
    :func:`motion_name`."""
    found: dict[str, list[Question]] = defaultdict(list)
    objects = scene.objects
    for obj, motion in zip(objects, motions, strict=True):
        name = motion_name(obj, objects)
        found["motion"].append(Question(f"which way does the {name} move?", motion, "motion"))
        answer = "no" if motion == STILL else "yes"
        found["moves"].append(Question(f"does the {name} move?", answer, "moves"))
    for direction in DIRECTIONS:
        movers = [obj for obj, m in zip(objects, motions, strict=True) if m == direction]
        if len(movers) == 1:
            text = f"what color is the object that moves {direction}?"
            found["mover"].append(Question(text, movers[0].color, "mover"))
    return dict(found)


@dataclass
class MotionBalancer:
    """Picks one motion question a scene, in scene order: a family drawn among those the scene
    supports, then (as :class:`QuestionBalancer` does) the answer that family has given least
    often so far (ties drawn), then a question with that answer."""

    seed: int
    answers: QuestionBalancer = field(init=False)

    def __post_init__(self) -> None:
        self.answers = QuestionBalancer(seed=self.seed)

    @property
    def counts(self) -> dict[str, Counter[str]]:
        """Answers given so far, per motion family."""
        return self.answers.counts

    def choose(self, scene: Scene, motions: tuple[str, ...]) -> Question | None:
        """The scene's motion question (None for a scene without objects)."""
        candidates = motion_questions(scene, motions)
        if not candidates:
            return None
        rng = np.random.default_rng([self.seed, scene.index, 12])
        families = sorted(candidates)
        family = families[int(rng.integers(len(families)))]
        return self.answers._pick(family, candidates[family], rng)
