"""How fast a recipe's frozen image tower reads images: folded against the plain network.

``model.image.tower: efficientnet`` reads each training image once through EfficientNet-Lite0
(channels-last, at ``tower_scale`` times the world's 64 px). The recipe's copy has its batch
norms folded into its convolutions (``tower_image.frozen_copy``); this times that
copy against the plain network loaded from the package, on the same random batch, interleaved
(``--rounds`` rounds, one call of each per round), and prints images a second (median, min-max)
and the ratio of medians. It also prints the largest difference between the two maps.

    python benchmarks/image_tower_speed.py [--batch 64] [--size 128] [--rounds 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from trimodal.modules.encoders.tower_image import frozen_copy
from trimodal.towers.efficientnet import load_efficientnet_lite0


def images_per_second(read: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor) -> float:
    start = time.perf_counter()
    read(batch)
    return len(batch) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=128, help="input side in pixels")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    batch = torch.randn(args.batch, 3, args.size, args.size, generator=generator)
    batch = batch.contiguous(memory_format=torch.channels_last)
    plain = load_efficientnet_lite0().eval().requires_grad_(False)
    folded = frozen_copy(plain)  # the recipe's reading copy (folded, channels-last)
    plain.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    readers = {"plain": plain, "folded": folded}
    speeds: dict[str, list[float]] = {name: [] for name in readers}
    with torch.no_grad():
        gap = float((folded.feature_map(batch) - plain.feature_map(batch)).abs().max())
        for _ in range(args.rounds):
            for name, network in readers.items():
                speeds[name].append(images_per_second(network.feature_map, batch))
    print(f"batch {args.batch} at {args.size} px, {args.threads} threads, {args.rounds} rounds")
    for name, values in speeds.items():
        print(
            f"{name:>7}: {statistics.median(values):.1f} images/s "
            f"({min(values):.1f}-{max(values):.1f})"
        )
    ratio = statistics.median(speeds["folded"]) / statistics.median(speeds["plain"])
    print(f"folded / plain: {ratio:.2f}x; largest map difference {gap:.2e}")


if __name__ == "__main__":
    main()
