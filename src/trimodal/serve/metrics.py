"""Prometheus metrics of the server: requests, latencies, batch sizes, errors (``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class ServeMetrics:
    """One registry per server (tests run several in a process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "trimodal_requests",
            "HTTP requests by route and status code",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "trimodal_request_latency_seconds",
            "Time from request to response start, by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "trimodal_errors",
            "Error responses by route and OpenAI error type",
            ["route", "type"],
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "trimodal_batch_size",
            "Items per dynamic batch, by queue",
            ["queue"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        """Count one request and its latency."""
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def observe_error(self, route: str, kind: str) -> None:
        """Count one error response."""
        self.errors.labels(route, kind).inc()

    def observe_batch(self, queue: str, size: int) -> None:
        """Record one batch's size."""
        self.batch_size.labels(queue).observe(size)

    def exposition(self) -> bytes:
        """The Prometheus text format."""
        return generate_latest(self.registry)
