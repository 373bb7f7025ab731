"""The most dynamic batching can gain for serve_load.py's request mix: model time alone.

For the mix that ``benchmarks/serve_load.py`` sends (image + typed question chats answered by the
answer head, alternating with caption + image embeddings), the model's own time per request one
at a time against in batches of 4, 8 and 16 of each kind, with no HTTP, JSON or decoding. The
ratio bounds what any server can gain by batching this model on this CPU. Each figure is the
median of 5 rounds (sizes interleaved), each the median of 3 runs.

    python benchmarks/batching_ceiling.py --checkpoint runs/default --world runs/world [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image

from trimodal.data.manifest import load_manifest
from trimodal.inference import Model, Question


def median_ms(work: Callable[[], object], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--world", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precision", default="fp32", help="auto, fp32, bf16 (as the server)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = Model.from_pretrained(args.checkpoint, precision=args.precision)
    samples = load_manifest(Path(args.world) / "manifest.jsonl", check_files="none").split("test")
    samples = samples[:16]
    images = [Image.open(s.image).convert("RGB") for s in samples if s.image is not None]
    questions = [
        Question(i, text=s.questions[-1].question) for i, s in zip(images, samples, strict=True)
    ]
    captions = [s.text or "" for s in samples]

    def per_request(size: int) -> float:
        chat = median_ms(lambda: model.ask_batch(questions[:size]))
        embed = median_ms(lambda: model.embed_images(images[:size]))
        embed += median_ms(lambda: model.embed_texts(captions[:size]))
        return (chat + embed) / (2 * size)

    sizes = (1, 4, 8, 16)
    rounds: dict[int, list[float]] = {size: [] for size in sizes}
    with torch.no_grad():
        per_request(1)  # warm-up
        for _ in range(5):  # sizes interleaved round by round
            for size in sizes:
                rounds[size].append(per_request(size))
    alone = statistics.median(rounds[1])
    print(f"{args.threads} torch thread(s); one at a time: {alone:.2f} ms of model a request")
    for size in sizes[1:]:
        batched = statistics.median(rounds[size])
        low, high = min(rounds[size]), max(rounds[size])
        print(
            f"batches of {size} of each: {batched:.2f} ms a request ({low:.2f}-{high:.2f}); "
            f"ceiling {alone / batched:.2f}x"
        )


if __name__ == "__main__":
    main()
