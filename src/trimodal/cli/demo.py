"""``trimodal demo``: the main job, end to end, on the embedded default world.

Builds (or reuses) the default world, trains the default recipe (or resumes / reuses a finished
run), runs the evaluation harness on the test split and the compositional hold-out, and prints
a compact results table and three examples (a typed question, a spoken question, a text->image
retrieval) answered through the public :class:`trimodal.Model` API. Everything lands under
``--out``; the report folder's path is printed, with the wall time and peak memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path
from typing import Any

import torch

from trimodal.cli.world import add_world_arguments, world_config
from trimodal.config import load_config, to_dict
from trimodal.data.manifest import Sample, load_manifest
from trimodal.data.tensors import content_key
from trimodal.eval.harness import HarnessSettings, evaluate_checkpoint
from trimodal.eval.report import write_report
from trimodal.eval.shifts import format_shift_table, run_shift_suite
from trimodal.eval.summary import summary_table
from trimodal.inference import Model
from trimodal.train.loop import train
from trimodal.world.generate import build_world, format_summary
from trimodal.world.preview import preview_grid


def register(verbs: Any) -> None:
    """Add the ``demo`` verb."""
    parser = verbs.add_parser(
        "demo", help="the main job: build the default world, train, evaluate, report"
    )
    parser.add_argument("--out", default="runs/demo", help="output folder")
    parser.add_argument("--config", default="configs/default.yaml", help="training recipe")
    parser.add_argument(
        "--robustness-scenes", type=int, default=300, help="test scenes for robustness curves"
    )
    parser.add_argument(
        "--shift-scenes",
        type=int,
        default=150,
        help="test scenes per world of the robustness suite (eval --shifts; 0: skip it)",
    )
    add_world_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """World -> training -> evaluation -> table and examples."""
    started = time.perf_counter()
    out = Path(args.out)
    world_dir, run_dir, report_dir = out / "world", out / "run", out / "report"
    config = load_config(args.config)

    print(f"[1/4] building the default world in {world_dir} ...", flush=True)
    summary = build_world(world_dir, world_config(args), workers=args.workers, progress=True)
    print(format_summary(summary))
    print(f"preview of the first scenes: {preview_grid(world_dir, out / 'world_preview.png')}")
    mark = _lap("world", started)

    print(f"[2/4] training {args.config} into {run_dir} ...", flush=True)
    train_summary = _train_or_reuse(config, world_dir, run_dir)
    print(f"trained {train_summary}")
    mark = _lap("training", mark)

    print(
        "[3/4] evaluating on the test split, the compositional hold-out and the robustness "
        "suite ...",
        flush=True,
    )
    model = Model.from_pretrained(run_dir)
    settings = HarnessSettings(robustness_scenes=args.robustness_scenes, examples=4)
    with torch.no_grad():
        metrics = evaluate_checkpoint(
            model, world_dir / "manifest.jsonl", settings, progress=lambda m: print(f"  {m}")
        )
        if args.shift_scenes > 0:
            metrics["shifts"] = run_shift_suite(
                model,
                out / "shift-worlds",
                int(summary.config.get("seed", 0)),
                args.shift_scenes,
                workers=args.workers,
                progress=lambda m: print(f"  {m}"),
            )
    report = write_report(metrics, report_dir, title="trimodal demo: default recipe")
    mark = _lap("evaluation", mark)

    print("[4/4] results (test = 10% of the world, holdout = unseen colour-shape pairs)")
    print(summary_table(metrics))
    if "shifts" in metrics:
        print(format_shift_table(metrics["shifts"]))
    print()
    for line in examples(model, world_dir):
        print(line)
    print()
    print(f"report: {report} (with robustness.png and examples.png beside it)")
    print(f"demo finished in {time.perf_counter() - started:.1f}s; {peak_memory()}")
    return 0


def _lap(name: str, since: float) -> float:
    now = time.perf_counter()
    print(f"  {name} took {now - since:.1f}s", flush=True)
    return now


def _train_or_reuse(config: Any, world_dir: Path, run_dir: Path) -> str:
    """Train, resume an interrupted run, or reuse a finished one with the same recipe."""
    if not (run_dir / "checkpoint").is_dir():
        result = train(config, world_dir, run_dir, progress=True)
        return f"in {result['train_seconds']:.1f}s ({result['global_step']} steps)"
    saved = json.loads((run_dir / "config.json").read_text())
    if saved != json.loads(json.dumps(to_dict(config))):
        raise ValueError(
            f"{run_dir} holds a run of a different recipe; remove it or pass another --out"
        )
    result = train(config, world_dir, run_dir, resume=True, progress=True)
    return f"(resumed or reused) {result['global_step']} steps"


def examples(model: Model, world_dir: Path) -> list[str]:
    """Three worked examples from the test split, through the public Model API."""
    manifest = load_manifest(world_dir / "manifest.jsonl", check_files="none")
    test = [s for s in manifest.samples if s.split == "test"]
    scene = next(s for s in test if s.image and any(q.spoken_question for q in s.questions))
    assert scene.image is not None
    typed = scene.questions[1] if len(scene.questions) > 1 else scene.questions[0]
    spoken = next(q for q in scene.questions if q.spoken_question)
    assert spoken.spoken_question is not None
    (typed_answer, typed_p), *_ = model.ask(scene.image, text=typed.question)
    (spoken_answer, spoken_p), *_ = model.ask(scene.image, audio=spoken.spoken_question)
    lines = [
        f"example 1, typed question about {scene.image}:",
        f'  "{typed.question}" -> {typed_answer} (p={typed_p:.2f}; truth: {typed.answer})',
        f"example 2, spoken question {spoken.spoken_question}:",
        f'  (it says "{spoken.question}") -> {spoken_answer} (p={spoken_p:.2f}; '
        f"truth: {spoken.answer})",
    ]
    return lines + _retrieval_example(model, test, scene)


def _retrieval_example(model: Model, test: list[Sample], query: Sample) -> list[str]:
    gallery = [s for s in test if s.image is not None]
    images = model.embed_images([s.image for s in gallery if s.image is not None])
    assert query.text is not None
    scores = model.embed_texts([query.text]) @ images.T  # (1, G)
    best = gallery[int(scores.argmax())]
    same = content_key(best) == content_key(query)
    verdict = "its own image" if best.id == query.id else ("same content" if same else "a miss")
    return [
        f"example 3, text->image retrieval over {len(gallery)} test images:",
        f'  "{query.text}"',
        f'  -> {best.image} ({verdict}; that image\'s caption: "{best.text}")',
    ]


def peak_memory() -> str:
    """Peak resident memory of this process and of its largest child (world workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return f"peak RSS {own:.0f} MiB (largest child process {children:.0f} MiB)"
