"""Prometheus metrics of one server: HTTP requests, and collectors that read state at scrape time.

Names carry the `altlas_` prefix and base units (seconds, bytes). Labels stay bounded: a
request's route is its template (`/v1/jobs/{job_id}`, never the id), and a path no route
matches is `unmatched`; no request ids or texts ever become labels.

Each app owns one `Metrics` (its own registry, so that two apps in one process, as in tests,
never share counts). Requests are counted where their log line is written
(altlas.api.admission.log_request), which every request passes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE_LATEST", "LATENCY_BUCKETS_S", "Collected", "Metrics"]

# Fine enough for p50/p95/p99 from 1 ms to 60 s (histogram_quantile interpolates in a bucket).
LATENCY_BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3,
    0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
)  # fmt: skip

UNMATCHED = "unmatched"


class Collected:
    """A registry of collectors that read state at scrape time (a process serving models keeps
    one of its models' series: altlas.engine.thread_work.Keeps)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)

    def add_collector(self, collect: Callable[[], Iterable[object]]) -> None:
        """A function yielding metric families, called at each scrape."""
        self.registry.register(_FunctionCollector(collect))

    def exposition(self) -> bytes:
        """The text format a scrape gets."""
        return bytes(generate_latest(self.registry))


class Metrics(Collected):
    """The registry of one server and its HTTP series."""

    def __init__(self) -> None:
        super().__init__()
        self.http_requests = Counter(
            "altlas_http_requests", "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"], registry=self.registry,
        )  # fmt: skip
        self.http_duration = Histogram(
            "altlas_http_request_duration_seconds",
            "Time from a request's arrival to its answer, by route template and method",
            ["route", "method"], buckets=LATENCY_BUCKETS_S, registry=self.registry,
        )  # fmt: skip

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.http_requests.labels(route, method, str(status)).inc()
        self.http_duration.labels(route, method).observe(seconds)


class _FunctionCollector(Collector):
    def __init__(self, collect: Callable[[], Iterable[object]]) -> None:
        self._collect = collect

    def collect(self):  # type: ignore[no-untyped-def]
        yield from self._collect()

    def describe(self):  # type: ignore[no-untyped-def]
        return []  # unknown until collected: registered without a name check
