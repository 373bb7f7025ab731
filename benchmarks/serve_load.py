"""Load on ``trimodal serve`` over loopback: dynamic batching against one-at-a-time, one run.

The same checkpoint is served twice, by a server started for each measurement as a separate
process (``trimodal serve``): **batched** (``--max-batch 32 --batch-wait-ms 5``, the default)
and **one at a time** (``--max-batch 1 --batch-wait-ms 0``). At each concurrency (1, 4, 16, 64
clients) every client sends over its own keep-alive connection, back to back, alternately an image + typed question chat and an
embeddings request (one text and one image), for a bounded number of requests and seconds.
Reported: throughput (requests/s), p50 / p99 latency, errors (any non-200), and the batching
gain per concurrency, per server thread count (``--threads``: torch's 2 threads spin against the
event loop on 2 cores, which makes one-at-a-time serving slower than with 1 thread) and
between the best thread count of each mode (the honest ratio). The two servers alternate level by level (batched, one at a time, batched,
...) and each level repeats ``--repeats`` times (median, min, max of throughput). The load
generator shares the machine's cores with the server (loopback; no second machine).

    python benchmarks/serve_load.py --checkpoint runs/default --world runs/world
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from trimodal.data.manifest import load_manifest


def payloads(world: Path, name: str, count: int = 64) -> list[tuple[str, bytes]]:
    """Alternating chat and embeddings request bodies (encoded once) over ``count`` test scenes."""
    samples = load_manifest(world / "manifest.jsonl", check_files="none").split("test")[:count]
    out = []
    for index, sample in enumerate(samples):
        assert sample.image is not None
        url = "data:image/png;base64," + base64.b64encode(sample.image.read_bytes()).decode()
        image = {"type": "image_url", "image_url": {"url": url}}
        if index % 2 == 0:
            text = {"type": "text", "text": sample.questions[-1].question}
            body = {"model": name, "messages": [{"role": "user", "content": [text, image]}]}
            out.append(("/v1/chat/completions", json.dumps(body).encode()))
        else:
            body = {"model": name, "input": [sample.text, image], "encoding_format": "base64"}
            out.append(("/v1/embeddings", json.dumps(body).encode()))
    return out


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """``trimodal serve`` in a child process."""

    def __init__(self, checkpoint: str, name: str, batched: bool, threads: int):
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
                "--threads",
                str(threads),
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


class Connection:
    """One keep-alive HTTP/1.1 connection sending pre-encoded JSON bodies: a load generator
    lean enough not to be what it measures (httpx spends about a millisecond of CPU a request,
    on the same two cores as the server)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str):
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, url: str) -> Connection:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        return cls(reader, writer, f"{host}:{port}")

    async def post(self, path: str, body: bytes) -> int:
        """Send one request and read its whole response; returns the status code."""
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return int(status_line.split()[1])

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def load(
    url: str, requests: list[tuple[str, bytes]], clients: int, total: int, seconds: float
) -> dict[str, Any]:
    """``clients`` concurrent senders until ``total`` requests or ``seconds`` have passed."""
    latencies: list[float] = []
    errors = 0
    sent = 0
    connections = [await Connection.open(url) for _ in range(clients)]
    for path, body in requests[:2]:  # warm-up: one of each kind
        await connections[0].post(path, body)
    start = time.perf_counter()

    async def client(number: int) -> None:
        nonlocal errors, sent
        step = number
        while sent < total and time.perf_counter() - start < seconds:
            sent += 1
            path, body = requests[step % len(requests)]
            step += clients
            began = time.perf_counter()
            status = await connections[number].post(path, body)
            latencies.append(time.perf_counter() - began)
            errors += status != 200

    await asyncio.gather(*(client(n) for n in range(clients)))
    elapsed = time.perf_counter() - start
    for connection in connections:
        await connection.close()
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
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[2, 1], help="torch threads of the server"
    )
    args = parser.parse_args()
    requests = payloads(Path(args.world), "bench")
    results: dict[tuple[int, str, int], list[dict[str, Any]]] = {}
    for repeat in range(args.repeats):
        for threads in args.threads:
            for mode in ("batched", "one at a time"):
                server = Server(args.checkpoint, "bench", mode == "batched", threads)
                try:
                    for clients in args.clients:
                        outcome = asyncio.run(
                            load(server.url, requests, clients, args.requests, args.seconds)
                        )
                        results.setdefault((threads, mode, clients), []).append(outcome)
                        print(
                            f"# {repeat} {threads} threads {mode} {clients}: {outcome}", flush=True
                        )
                finally:
                    server.stop()
    print("| threads | server | clients | requests/s median (min-max) | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|---|")
    for (threads, mode, clients), runs in results.items():
        rates = [r["throughput"] for r in runs]
        p50 = statistics.median(r["p50"] for r in runs)
        p99 = statistics.median(r["p99"] for r in runs)
        errors = sum(r["errors"] for r in runs)
        print(
            f"| {threads} | {mode} | {clients} | {statistics.median(rates):.1f} "
            f"({min(rates):.1f}-{max(rates):.1f}) | {p50:.0f} | {p99:.0f} | {errors} |"
        )
    rate = {key: statistics.median(r["throughput"] for r in runs) for key, runs in results.items()}
    for clients in args.clients:
        for threads in args.threads:
            gain = rate[(threads, "batched", clients)] / rate[(threads, "one at a time", clients)]
            print(f"batching gain at {clients} clients, {threads} threads: {gain:.2f}x")
        best_single = max(rate[(t, "one at a time", clients)] for t in args.threads)
        best_batched = max(rate[(t, "batched", clients)] for t in args.threads)
        print(
            f"batching gain at {clients} clients, best thread count of each: "
            f"{best_batched / best_single:.2f}x"
        )


if __name__ == "__main__":
    main()
