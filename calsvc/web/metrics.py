"""Prometheus metrics of one process: requests and latency by route and status, pool use."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _PoolCollector:
    def __init__(self, read: Callable[[], tuple[int, int] | None]) -> None:
        self._read = read

    def collect(self):
        sizes = self._read()
        if sizes is None:
            return
        in_use, size = sizes
        gauge = GaugeMetricFamily("calsvc_db_pool_connections", "Connections of this process's pool", labels=["state"])
        gauge.add_metric(["in_use"], in_use)
        gauge.add_metric(["open"], size)
        yield gauge


class Metrics:
    def __init__(self, pool_sizes: Callable[[], tuple[int, int] | None]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "calsvc_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "calsvc_http_request_duration_seconds",
            "Time to answer a request",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_PoolCollector(pool_sizes))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        code = str(status)
        self.requests.labels(method, route, code).inc()
        self.latency.labels(method, route, code).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
