"""Load on ``trimodal serve`` over loopback: dynamic batching against one-at-a-time, one run.

The same checkpoint is served twice, by a server started for each measurement as a separate
process (``trimodal serve``): **batched** (``--max-batch 32 --batch-wait-ms 5``, the default)
and **one at a time** (``--max-batch 1 --batch-wait-ms 0``). At each concurrency (1, 4, 16, 64
clients) every client sends, back to back, alternately an image + typed question chat and an
embeddings request (one text and one image), for a bounded number of requests and seconds.
Reported: throughput (requests/s), p50 / p99 latency, errors (any non-200), and the batching
gain at 16 clients. The two servers alternate level by level (batched, one at a time, batched,
...) and each level repeats ``--repeats`` times (median, min, max of throughput). The load
generator shares the machine's cores with the server (loopback; no second machine).

    python benchmarks/serve_load.py --checkpoint runs/default --world runs/world
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from trimodal.data.manifest import load_manifest


def payloads(world: Path, name: str, count: int = 64) -> list[tuple[str, dict[str, Any]]]:
    """Alternating chat and embeddings requests over ``count`` test scenes."""
    samples = load_manifest(world / "manifest.jsonl", check_files="none").split("test")[:count]
    out = []
    for index, sample in enumerate(samples):
        assert sample.image is not None
        url = "data:image/png;base64," + base64.b64encode(sample.image.read_bytes()).decode()
        image = {"type": "image_url", "image_url": {"url": url}}
        if index % 2 == 0:
            text = {"type": "text", "text": sample.questions[-1].question}
            body = {"model": name, "messages": [{"role": "user", "content": [text, image]}]}
            out.append(("/v1/chat/completions", body))
        else:
            out.append(
                (
                    "/v1/embeddings",
                    {"model": name, "input": [sample.text, image], "encoding_format": "base64"},
                )
            )
    return out


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """``trimodal serve`` in a child process."""

    def __init__(self, checkpoint: str, name: str, batched: bool):
        self.port = free_port()
        batching = (
            ["--max-batch", "32", "--batch-wait-ms", "5"]
            if batched
            else ["--max-batch", "1", "--batch-wait-ms", "0"]
        )
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trimodal.cli.main",
                "serve",
                "--checkpoint",
                checkpoint,
                "--name",
                name,
                "--port",
                str(self.port),
                *batching,
            ],
            stdout=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("the server did not start")
            time.sleep(0.2)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


async def load(
    url: str, requests: list[tuple[str, dict[str, Any]]], clients: int, total: int, seconds: float
) -> dict[str, Any]:
    """``clients`` concurrent senders until ``total`` requests or ``seconds`` have passed."""
    latencies: list[float] = []
    errors = 0
    sent = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        # warm-up: one of each kind
        for path, body in requests[:2]:
            await http.post(path, json=body)
        start = time.perf_counter()

        async def client(number: int) -> None:
            nonlocal errors, sent
            step = number
            while sent < total and time.perf_counter() - start < seconds:
                sent += 1
                path, body = requests[step % len(requests)]
                step += clients
                began = time.perf_counter()
                reply = await http.post(path, json=body)
                latencies.append(time.perf_counter() - began)
                errors += reply.status_code != 200

        await asyncio.gather(*(client(n) for n in range(clients)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "throughput": len(latencies) / elapsed,
        "p50": latencies[len(latencies) // 2] * 1000,
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "errors": errors,
        "requests": len(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--world", required=True)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--requests", type=int, default=192, help="requests per level (at most)")
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds per level (at most)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    requests = payloads(Path(args.world), "bench")
    results: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for repeat in range(args.repeats):
        for mode in ("batched", "one at a time"):
            server = Server(args.checkpoint, "bench", mode == "batched")
            try:
                for clients in args.clients:
                    outcome = asyncio.run(
                        load(server.url, requests, clients, args.requests, args.seconds)
                    )
                    results.setdefault((mode, clients), []).append(outcome)
                    print(f"# repeat {repeat} {mode} {clients} clients: {outcome}", flush=True)
            finally:
                server.stop()
    print("| server | clients | requests/s median (min-max) | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|")
    for (mode, clients), runs in results.items():
        rates = [r["throughput"] for r in runs]
        p50 = statistics.median(r["p50"] for r in runs)
        p99 = statistics.median(r["p99"] for r in runs)
        errors = sum(r["errors"] for r in runs)
        print(
            f"| {mode} | {clients} | {statistics.median(rates):.1f} ({min(rates):.1f}-{max(rates):.1f}) | {p50:.0f} | {p99:.0f} | {errors} |"
        )
    for clients in args.clients:
        batched = statistics.median(r["throughput"] for r in results[("batched", clients)])
        single = statistics.median(r["throughput"] for r in results[("one at a time", clients)])
        print(f"batching gain at {clients} clients: {batched / single:.2f}x")


if __name__ == "__main__":
    main()
