"""Building the embedded world on disk: plan scenes, render and speak them in parallel, summarize.

Layout of a world directory::

    world.json        the arguments and format version (written last: marks a complete world)
    manifest.jsonl    one scene a line (image, spoken caption, caption, questions, scene graph)
    summary.json      counts, answer balance, caption overlap, timings, size on disk
    images/NNNNNN.png
    audio/NNNNNN_caption.wav, audio/NNNNNN_question.wav
    videos/NNNNNN.mp4 (only with ``video_frames``: the clip, in which objects move)

Planning (scene graphs, captions, balanced questions, voices) is cheap and sequential, which
keeps the result independent of the worker count; rendering and speech synthesis are the
expensive part and run in worker processes.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import soundfile
from tqdm import tqdm

from trimodal.io import atomic_write_text, write_jsonl_atomic
from trimodal.locks import FolderLock
from trimodal.modalities.video import write_clip
from trimodal.world.channel import TRAIN_VOICES, SpeechStyle, hear
from trimodal.world.language import (
    CAPTION_TEMPLATES,
    QUESTION_FAMILIES,
    Question,
    QuestionBalancer,
    caption,
)
from trimodal.world.motion import (
    MOTION_FAMILIES,
    MotionBalancer,
    motion_clause,
    render_clip,
    sample_motions,
)
from trimodal.world.phrasing import caption_templates, check_phrasing, rephrase
from trimodal.world.render import RenderStyle, render_scene
from trimodal.world.scene import HOLDOUT_PAIRS, SPLITS, Scene, sample_scene, split_of
from trimodal.world.speech import Synthesizer, VoiceSettings, add_noise

FORMAT_VERSION = 1
SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class WorldConfig:
    """Arguments that fully determine a world's bytes."""

    scenes: int = 10_000
    seed: int = 0
    image_size: int = 64
    noise_snr: float | None = None
    questions_per_scene: int = 4
    video_frames: int = 0
    """Frames of each scene's clip (0: no video); the first question is then a motion one."""
    phrasing: str = "canonical"
    """How captions and questions are worded (see :mod:`trimodal.world.phrasing`)."""
    render: RenderStyle = field(default_factory=RenderStyle)
    speech: SpeechStyle = field(default_factory=SpeechStyle)
    split: str | None = None
    """Only scenes of this split (``scenes`` of them, the first ones in index order): the same
    scene graphs as that split of a full world with this seed, for measuring shifts."""

    def validate(self) -> None:
        """Raise ValueError naming the bad argument."""
        if self.scenes < 1:
            raise ValueError(f"--scenes must be at least 1, got {self.scenes}")
        if not 16 <= self.image_size <= 1024:
            raise ValueError(f"--image-size must be in [16, 1024], got {self.image_size}")
        if not 3 <= self.questions_per_scene <= 5:
            raise ValueError(
                f"questions_per_scene must be in [3, 5], got {self.questions_per_scene}"
            )
        if self.video_frames and not 2 <= self.video_frames <= 64:
            raise ValueError(f"--video-frames must be 0 or in [2, 64], got {self.video_frames}")
        check_phrasing(self.phrasing)
        self.render.validate()
        self.speech.validate()
        if self.split is not None and self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} or None, got {self.split!r}")

    def recorded(self) -> dict[str, Any]:
        """The arguments as ``world.json`` records them: options at their defaults that the
        default world predates (video, phrasing, styles, split) are left out, so a world without
        them keeps its bytes."""
        values = asdict(self)
        defaults = asdict(WorldConfig())
        for name in ("video_frames", "phrasing", "render", "speech", "split"):
            if values[name] == defaults[name]:
                del values[name]
        return values


VARIED_SPEECH = SpeechStyle(
    voices=TRAIN_VOICES,
    rate=(90, 260),
    pitch=(10, 90),
    noises=("none", "none", "white", "pink", "babble"),
    snr=(5.0, 30.0),
    channels=("clean", "clean", "clean", "telephone"),
)
"""The varied world's speech: every training voice, a wide range of rates and pitches, three in
five utterances noisy (white, pink or babble at 5-30 dB), one in four over a telephone line."""

VARIED_RENDER = RenderStyle(
    turn=(0.0, 45.0), backgrounds=("flat", "gradient", "texture"), lighting=0.3
)
"""The varied world's drawing: shapes turned up to 45 degrees either way, flat, gradient or
textured backgrounds, brightness 0.7-1.3."""


VARIED_PARTS = ("phrasing", "speech", "drawing")
"""What ``--varied`` can vary: the question and caption forms, the speech, the drawing."""


def varied(config: WorldConfig, parts: Sequence[str] = VARIED_PARTS) -> WorldConfig:
    """``config`` with the varied world's ``parts`` (:data:`VARIED_PARTS`; ``--varied``)."""
    if unknown := [part for part in parts if part not in VARIED_PARTS]:
        raise ValueError(f"cannot vary {unknown[0]!r}; choose from {', '.join(VARIED_PARTS)}")
    changes: dict[str, Any] = {
        "phrasing": {"phrasing": "varied"},
        "speech": {"speech": VARIED_SPEECH},
        "drawing": {"render": VARIED_RENDER},
    }
    for part in parts:
        config = replace(config, **changes[part])
    return config


@dataclass(frozen=True)
class SceneJob:
    """Everything a worker needs to write one scene's files."""

    scene: Scene
    caption: str
    questions: tuple[Question, ...]
    caption_voice: VoiceSettings
    question_voice: VoiceSettings
    motions: tuple[str, ...] = ()
    """Each object's motion in the clip (empty: the world has no video)."""
    talkers: tuple[str, ...] = ()
    """Other scenes' captions, spoken as babble behind this scene's speech (styles with
    babble only)."""


@dataclass
class WorldSummary:
    """What ``trimodal world`` reports."""

    path: str
    config: dict[str, Any]
    scenes_per_split: dict[str, int]
    questions_per_family: dict[str, dict[str, int]]
    answer_balance: dict[str, dict[str, Any]]
    test_captions_in_train: dict[str, Any]
    holdout_pairs: list[list[str]]
    audio_seconds: dict[str, float]
    timings: dict[str, float]
    size_on_disk_bytes: int
    cached: bool = False
    notes: list[str] = field(default_factory=list)


def scene_indices(config: WorldConfig) -> list[int]:
    """The scene indices a world holds: ``0 .. scenes - 1``, or the first ``scenes`` indices of
    ``config.split``."""
    if config.split is None:
        return list(range(config.scenes))
    found: list[int] = []
    index = 0
    while len(found) < config.scenes:
        if split_of(index, config.seed) == config.split:
            found.append(index)
        index += 1
    return found


def plan_world(config: WorldConfig) -> list[SceneJob]:
    """Scene graphs, captions, balanced questions and voices for every scene, in index order."""
    balancer = QuestionBalancer(seed=config.seed)
    motion_balancer = MotionBalancer(seed=config.seed)
    jobs = []
    for index in scene_indices(config):
        scene = sample_scene(index, config.seed)
        templates = caption_templates(
            len(scene.objects), config.phrasing, CAPTION_TEMPLATES[len(scene.objects)]
        )
        text = caption(scene, np.random.default_rng([config.seed, index, 1]), templates)
        motions: tuple[str, ...] = ()
        if config.video_frames:
            motions = sample_motions(scene, config.seed)
            text = f"{text}; {motion_clause(scene, motions)}"
            first = motion_balancer.choose(scene, motions)
            rest = balancer.choose(scene, config.questions_per_scene - (first is not None))
            questions = tuple([first] if first is not None else []) + tuple(rest)
        else:
            questions = tuple(balancer.choose(scene, config.questions_per_scene))
        wording = np.random.default_rng([config.seed, index, 13])
        questions = tuple(rephrase(q, config.phrasing, wording) for q in questions)
        voice_rng = np.random.default_rng([config.seed, index, 3])
        voices = config.speech.voice(voice_rng), config.speech.voice(voice_rng)
        jobs.append(SceneJob(scene, text, questions, *voices, motions=motions))
    return _with_talkers(jobs, config) if config.speech.needs_babble else jobs


def _with_talkers(jobs: list[SceneJob], config: WorldConfig) -> list[SceneJob]:
    """Each job with the captions of other scenes to speak as its babble."""
    captions = [job.caption for job in jobs]
    out = []
    for position, job in enumerate(jobs):
        rng = np.random.default_rng([config.seed, job.scene.index, 14])
        others = [i for i in range(len(jobs)) if i != position] or [position]
        picked = rng.choice(len(others), size=min(4, len(others)), replace=False)
        out.append(replace(job, talkers=tuple(captions[others[int(i)]] for i in picked)))
    return out


def _media_paths(index: int) -> tuple[str, str, str]:
    stem = f"{index:06d}"
    return f"images/{stem}.png", f"audio/{stem}_caption.wav", f"audio/{stem}_question.wav"


def _video_path(index: int) -> str:
    return f"videos/{index:06d}.mp4"


_WORKER: dict[str, Any] = {}


def _init_worker(root: str, config: WorldConfig) -> None:
    _WORKER["root"] = Path(root)
    _WORKER["config"] = config
    _WORKER["synth"] = Synthesizer()


def _speak_to_file(
    path: Path, text: str, voice: VoiceSettings, seed: list[int], talkers: tuple[str, ...] = ()
) -> float:
    config: WorldConfig = _WORKER["config"]
    speech_seed = int(np.random.default_rng(seed).integers(2**31))
    wave = _WORKER["synth"].speak(text, voice, SAMPLE_RATE, seed=speech_seed)
    if config.noise_snr is not None:
        wave = add_noise(wave, config.noise_snr, np.random.default_rng([*seed, 9]))
    if not config.speech.is_clean:
        heard = np.random.default_rng([*seed, 10])
        wave = hear(wave, config.speech, SAMPLE_RATE, heard, lambda: _babble(talkers, heard))
    write_wav(path, wave)
    return len(wave) / SAMPLE_RATE


def write_wav(path: Path, wave: np.ndarray) -> None:
    """Write 16-bit PCM at the world's rate; a failed write (libsndfile says only "System
    error", e.g. on a full disk) becomes an ``OSError`` naming the file and the free space."""
    try:
        soundfile.write(path, wave, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    except soundfile.LibsndfileError as error:
        try:
            free = f"{shutil.disk_usage(path.parent).free / 1e6:.1f} MB free there"
        except OSError:
            free = "its folder is not readable"
        raise OSError(f"cannot write {path}: {error.error_string} ({free})") from None


def _babble(texts: tuple[str, ...], rng: np.random.Generator) -> list[np.ndarray]:
    """Other scenes' captions spoken in voices of the world's style (babble talkers)."""
    config: WorldConfig = _WORKER["config"]
    synth: Synthesizer = _WORKER["synth"]
    return [
        synth.speak(text, config.speech.voice(rng), SAMPLE_RATE, seed=int(rng.integers(2**31)))
        for text in texts
    ]


def _write_scene(job: SceneJob) -> SceneTiming:
    """Render and speak one scene. Returns (index, render s, speech s, caption s, question s)."""
    root: Path = _WORKER["root"]
    config: WorldConfig = _WORKER["config"]
    image_path, caption_path, question_path = _media_paths(job.scene.index)
    start = time.perf_counter()
    render_scene(job.scene, config.image_size, config.render).save(root / image_path, format="PNG")
    if config.video_frames:
        clip = render_clip(job.scene, job.motions, config.video_frames, config.image_size)
        write_clip(root / _video_path(job.scene.index), clip)
    rendered = time.perf_counter()
    seed = [config.seed, job.scene.index, 4]
    caption_seconds = _speak_to_file(
        root / caption_path, job.caption, job.caption_voice, [*seed, 0], job.talkers
    )
    question_text = job.questions[0].question
    question_seconds = _speak_to_file(
        root / question_path, question_text, job.question_voice, [*seed, 1], job.talkers
    )
    spoken = time.perf_counter()
    return job.scene.index, rendered - start, spoken - rendered, caption_seconds, question_seconds


def _manifest_row(job: SceneJob) -> dict[str, Any]:
    image_path, caption_path, question_path = _media_paths(job.scene.index)
    questions: list[dict[str, Any]] = []
    for position, question in enumerate(job.questions):
        entry: dict[str, Any] = asdict(question)
        if position == 0:
            entry["spoken_question"] = question_path
        questions.append(entry)
    row: dict[str, Any] = {
        "id": f"scene-{job.scene.index:06d}",
        "split": job.scene.split,
        "image": image_path,
        "audio": caption_path,
        "text": job.caption,
        "questions": questions,
        "scene": job.scene.to_dict(),
        "meta": {
            "caption_voice": asdict(job.caption_voice),
            "question_voice": asdict(job.question_voice),
        },
    }
    if job.motions:
        row["video"] = _video_path(job.scene.index)
        row["scene"]["motions"] = list(job.motions)
    return row


SceneTiming = tuple[int, float, float, float, float]

J = TypeVar("J")
R = TypeVar("R")

CHUNK_SCENES = 32
"""Scenes synthesized by one fresh process: the unit of reproducibility (see world.speech)."""


def _apply_to_chunk(write_one: Callable[[J], R], jobs: Sequence[J]) -> list[R]:
    return [write_one(job) for job in jobs]


def map_in_fresh_processes(
    write_one: Callable[[J], R],
    jobs: Sequence[J],
    chunk: int,
    workers: int,
    initializer: Callable[..., None],
    initargs: tuple[Any, ...],
    progress: tqdm | None = None,
) -> list[R]:
    """``[write_one(job) for job in jobs]``, each fixed chunk of jobs in a newly forked process.

    ``maxtasksperchild=1`` gives every chunk a pristine eSpeak state, so a file's bytes depend
    only on its chunk, never on the worker count or on which worker ran what before. Results
    come back sorted. ``write_one`` and ``initializer`` must be module-level functions.
    """
    results: list[R] = []
    context = multiprocessing.get_context("fork")
    pool = context.Pool(
        max(1, workers), initializer=initializer, initargs=initargs, maxtasksperchild=1
    )
    chunks = (jobs[start : start + chunk] for start in range(0, len(jobs), chunk))
    with pool:
        for chunk_results in pool.imap_unordered(partial(_apply_to_chunk, write_one), chunks):
            results.extend(chunk_results)
            if progress is not None:
                progress.update(len(chunk_results))
    return sorted(results)  # type: ignore[type-var]


def _run_workers(
    root: Path, config: WorldConfig, jobs: list[SceneJob], workers: int, progress: bool
) -> list[SceneTiming]:
    """Write every scene's files (see :func:`map_in_fresh_processes`)."""
    bar = tqdm(total=len(jobs), desc="world", unit="scene", disable=not progress, leave=False)
    results = map_in_fresh_processes(
        _write_scene, jobs, CHUNK_SCENES, workers, _init_worker, (str(root), config), bar
    )
    bar.close()
    return results


def _directory_size(root: Path) -> int:
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())


def _is_complete(root: Path, config: WorldConfig) -> bool:
    marker = root / "world.json"
    if not marker.is_file() or not (root / "summary.json").is_file():
        return False
    try:
        recorded = json.loads(marker.read_text())
    except json.JSONDecodeError:
        return False
    expected = {"format_version": FORMAT_VERSION, **config.recorded()}
    return bool(recorded == json.loads(json.dumps(expected)))  # tuples read back as lists


def build_world(
    out: str | os.PathLike[str],
    config: WorldConfig,
    workers: int | None = None,
    progress: bool = False,
) -> WorldSummary:
    """Generate the world into ``out`` (or reuse it if it was built with the same config).

    Args:
        out: world directory; created if absent.
        config: the arguments that determine the world's bytes.
        workers: processes for rendering and speech (default: CPU count).
        progress: show a tqdm progress bar on stderr.

    Returns:
        the world's summary (``cached=True`` when an identical world was already there).
    """
    config.validate()
    root = Path(out)
    with FolderLock(root, "world generation"):
        return _build_world(root, config, workers, progress)


def _build_world(
    root: Path, config: WorldConfig, workers: int | None, progress: bool
) -> WorldSummary:
    """:func:`build_world` once the folder is locked."""
    if _is_complete(root, config):
        summary = WorldSummary(**json.loads((root / "summary.json").read_text()))
        summary.cached = True
        return summary
    if (root / "world.json").exists():
        # A world built with other arguments: clear its media so no stale file survives.
        (root / "world.json").unlink()
        for sub in ("images", "audio", "videos"):
            shutil.rmtree(root / sub, ignore_errors=True)
    for sub in ("images", "audio", "videos") if config.video_frames else ("images", "audio"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    jobs = plan_world(config)
    planned = time.perf_counter()
    worker_count = workers or os.cpu_count() or 1
    results = _run_workers(root, config, jobs, worker_count, progress)
    written = time.perf_counter()
    write_jsonl_atomic(root / "manifest.jsonl", [_manifest_row(job) for job in jobs])
    timings = {
        "plan_s": planned - started,
        "render_cpu_s": sum(r[1] for r in results),
        "speech_cpu_s": sum(r[2] for r in results),
        "media_wall_s": written - planned,
        "total_wall_s": time.perf_counter() - started,
        "workers": float(worker_count),
    }
    summary = summarize(root, config, jobs, results, timings)
    atomic_write_text(root / "summary.json", json.dumps(asdict(summary), indent=2))
    atomic_write_text(
        root / "world.json",
        json.dumps({"format_version": FORMAT_VERSION, **config.recorded()}, indent=2),
    )
    return summary


def _families(config: WorldConfig) -> dict[str, tuple[str, ...]]:
    """The world's question families and their answers (motion ones only with video)."""
    return QUESTION_FAMILIES | (MOTION_FAMILIES if config.video_frames else {})


def _answer_balance(
    counts: dict[str, Counter[str]], families: dict[str, tuple[str, ...]]
) -> dict[str, dict[str, Any]]:
    balance = {}
    for family, possible in families.items():
        counter = counts.get(family, Counter())
        per_answer = {answer: counter.get(answer, 0) for answer in possible}
        values = list(per_answer.values())
        ratio = (min(values) / max(values)) if max(values) > 0 else 0.0
        balance[family] = {"counts": per_answer, "min_over_max": round(ratio, 3)}
    return balance


def summarize(
    root: Path,
    config: WorldConfig,
    jobs: Sequence[SceneJob],
    results: Sequence[SceneTiming],
    timings: dict[str, float],
) -> WorldSummary:
    """Counts per split and family, answer balance, caption overlap, audio length, timings."""
    per_split: Counter[str] = Counter(job.scene.split for job in jobs)
    family_counts: dict[str, Counter[str]] = defaultdict(Counter)
    answers: dict[str, Counter[str]] = defaultdict(Counter)
    for job in jobs:
        for question in job.questions:
            family_counts[question.family][job.scene.split] += 1
            answers[question.family][question.answer] += 1
    train_captions = {job.caption for job in jobs if job.scene.split == "train"}
    test_jobs = [job for job in jobs if job.scene.split == "test"]
    repeated = [job for job in test_jobs if job.caption in train_captions]
    test_captions = [job.caption for job in test_jobs]
    overlapping = len(repeated)
    single_object = sum(len(job.scene.objects) == 1 for job in repeated)
    durations = [r[3] for r in results] + [r[4] for r in results]
    return WorldSummary(
        path=str(root),
        config=config.recorded(),
        scenes_per_split={split: per_split.get(split, 0) for split in SPLITS},
        questions_per_family={f: dict(family_counts[f]) for f in _families(config)},
        answer_balance=_answer_balance(answers, _families(config)),
        test_captions_in_train={
            "test_captions": len(test_captions),
            "verbatim_in_train": overlapping,
            "of_which_single_object": single_object,
            "fraction": round(overlapping / max(1, len(test_captions)), 4),
        },
        holdout_pairs=[list(pair) for pair in HOLDOUT_PAIRS],
        audio_seconds={
            "mean": round(float(np.mean(durations)), 3) if durations else 0.0,
            "total": round(float(np.sum(durations)), 1),
        },
        timings={k: round(v, 2) for k, v in timings.items()},
        size_on_disk_bytes=_directory_size(root),
    )


def format_summary(summary: WorldSummary) -> str:
    """A human-readable multi-line summary."""
    lines = [f"world at {summary.path}" + (" (cached)" if summary.cached else "")]
    cfg = summary.config
    lines.append(
        f"  scenes {cfg['scenes']}  seed {cfg['seed']}  image {cfg['image_size']}px  "
        f"noise SNR {cfg['noise_snr']}  questions/scene {cfg['questions_per_scene']}"
    )
    lines.append(
        "  scenes per split: " + ", ".join(f"{k} {v}" for k, v in summary.scenes_per_split.items())
    )
    lines.append("  questions per family (per split) and answer balance (min/max count):")
    for family, per_split in summary.questions_per_family.items():
        balance = summary.answer_balance[family]
        split_text = " ".join(f"{s}={per_split.get(s, 0)}" for s in SPLITS)
        answers_text = " ".join(f"{a}:{n}" for a, n in balance["counts"].items())
        lines.append(
            f"    {family:<9} {split_text}  balance {balance['min_over_max']:.2f}  [{answers_text}]"
        )
    overlap = summary.test_captions_in_train
    lines.append(
        f"  test captions verbatim in train: {overlap['verbatim_in_train']}/{overlap['test_captions']} "
        f"({overlap['fraction']:.1%}; {overlap['of_which_single_object']} single-object scenes)"
    )
    lines.append(
        f"  held-out colour-shape pairs: {', '.join(' '.join(p) for p in summary.holdout_pairs)}"
    )
    lines.append(
        f"  speech: {summary.audio_seconds['total']:.0f} s total, {summary.audio_seconds['mean']:.2f} s mean"
    )
    t = summary.timings
    lines.append(
        f"  timings: plan {t.get('plan_s', 0):.1f}s, media {t.get('media_wall_s', 0):.1f}s wall "
        f"(render {t.get('render_cpu_s', 0):.1f}s + speech {t.get('speech_cpu_s', 0):.1f}s cpu on "
        f"{int(t.get('workers', 1))} workers), total {t.get('total_wall_s', 0):.1f}s"
    )
    lines.append(f"  size on disk: {summary.size_on_disk_bytes / 1e6:.1f} MB")
    return "\n".join(lines)
