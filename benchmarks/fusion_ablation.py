"""Fusion ablation: the same recipe trained once per fusion module, VQA accuracy side by side.

A last row trains the default fusion with the patch-ViT image stem instead of the conv stem,
so the two image tokenizers are compared at the same budget too.

Every run uses the recipe given (default: configs/ablation.yaml, a shortened default recipe so
that six runs fit in well under an hour on 2 cores) with only ``model.fusion`` changed, the
same seed, data order and budget. Writes a Markdown table (default docs/fusion_ablation.md)
and prints it.

    python benchmarks/fusion_ablation.py --world worlds/default [--fusions concat gated ...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from trimodal.config import load_config
from trimodal.inference import Model
from trimodal.io import atomic_write_text
from trimodal.train.loop import manifest_path_of, train

FUSIONS = {
    "cross_attention": "{query: text, depth: 1}",
    "concat": "{}",
    "gated": "{}",
    "bilinear": "{}",
    "tensor": "{}",
    "low_rank_tensor": "{}",
}
FAMILIES = ("color", "shape", "size", "count", "exist", "relation", "compare")


def run_one(
    recipe: str, world: str, label: str, overrides: list[str], out: Path
) -> dict[str, object]:
    """Train the recipe with ``overrides`` and evaluate on the test split."""
    config = load_config(recipe, overrides)
    started = time.perf_counter()
    summary = train(config, world, out, progress=False)
    seconds = time.perf_counter() - started
    evaluated = Model.from_pretrained(out).evaluate(
        manifest_path_of(world), split="test", robustness=False, examples=0
    )
    metrics = evaluated["splits"]["test"]
    return {
        "fusion": label,
        "train_seconds": seconds,
        "steps": summary["global_step"],
        "metrics": metrics,
    }


def variants(fusions: list[str], with_patch_stem: bool) -> list[tuple[str, list[str]]]:
    """(label, overrides) per run: each fusion, plus the ViT patch stem with the default fusion."""
    runs = [
        (name, [f"model.fusion.name={name}", f"model.fusion.options={FUSIONS[name]}"])
        for name in fusions
    ]
    if with_patch_stem:
        runs.append(("cross_attention, patch-ViT image stem", ["model.image.kind=patch"]))
    return runs


def table(results: list[dict[str, object]], recipe: str) -> str:
    """Markdown table of VQA accuracy per fusion (typed, spoken, typed per family)."""
    header = "| fusion | VQA typed | VQA spoken | " + " | ".join(FAMILIES) + " | train s |"
    lines = [
        f"Recipe: `{recipe}` (same seed, data order and steps for every row); test split of the",
        "default world. Produced by `python benchmarks/fusion_ablation.py`.",
        "",
        header,
        "|" + "---|" * (4 + len(FAMILIES)),
    ]
    for result in results:
        vqa = result["metrics"]["vqa"]  # type: ignore[index]
        families = " | ".join(
            f"{vqa.get(f'typed/{f}', {}).get('accuracy', 0):.3f}" for f in FAMILIES
        )
        lines.append(
            f"| {result['fusion']} | {vqa['typed']['accuracy']:.3f} | {vqa['spoken']['accuracy']:.3f} | "
            f"{families} | {result['train_seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run every fusion and write the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--world", required=True)
    parser.add_argument("--recipe", default="configs/ablation.yaml")
    parser.add_argument("--fusions", nargs="+", default=list(FUSIONS))
    parser.add_argument("--out", default="docs/fusion_ablation.md")
    parser.add_argument("--runs", default=None, help="folder for the runs (default: temporary)")
    parser.add_argument("--no-patch-stem", action="store_true", help="skip the patch-ViT stem row")
    args = parser.parse_args()
    root = Path(args.runs or tempfile.mkdtemp(prefix="trimodal-ablation-"))
    results = []
    for index, (label, overrides) in enumerate(variants(args.fusions, not args.no_patch_stem)):
        result = run_one(args.recipe, args.world, label, overrides, root / f"run{index}")
        results.append(result)
        vqa = result["metrics"]["vqa"]  # type: ignore[index]
        print(
            f"{label}: typed {vqa['typed']['accuracy']:.3f} spoken {vqa['spoken']['accuracy']:.3f}",
            flush=True,
        )
        atomic_write_text(root / "results.json", json.dumps(results, indent=2))
    text = table(results, args.recipe)
    atomic_write_text(args.out, "# Fusion ablation\n\n" + text)
    print(text)


if __name__ == "__main__":
    main()
