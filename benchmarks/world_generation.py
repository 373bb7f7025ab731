"""Time building the embedded world (default: 10,000 scenes with speech) from scratch.

Target (issue 2): at most 180 s on a 2-core machine. Prints wall time, scenes/s, the split of
CPU time between rendering and speech, and the size on disk.

    python benchmarks/world_generation.py [--scenes 10000] [--out DIR] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

from trimodal.world.generate import WorldConfig, build_world, format_summary

TARGET_SECONDS = 180.0


def main() -> None:
    """Build a fresh world, then print the measurements."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenes", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--out", default=None, help="world folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the world afterwards")
    args = parser.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="trimodal-world-bench-")
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    summary = build_world(
        out, WorldConfig(scenes=args.scenes, seed=args.seed), workers=args.workers
    )
    wall = time.perf_counter() - started
    print(format_summary(summary))
    print(
        f"\nworld_generation: {args.scenes} scenes in {wall:.1f}s wall "
        f"({args.scenes / wall:.1f} scenes/s) on {os.cpu_count()} cores; "
        f"size on disk {summary.size_on_disk_bytes / 1e9:.2f} GB; "
        f"target <= {TARGET_SECONDS:.0f}s for 10,000: "
        f"{'met' if wall * 10_000 / args.scenes <= TARGET_SECONDS else 'NOT met'}"
    )
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
