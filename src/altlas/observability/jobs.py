"""Job metrics read at scrape time: jobs by kind and status, the queue's depth, and how long the
jobs this process ran took."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

__all__ = ["job_metrics"]


def job_metrics(store: Any, runner: Any) -> Iterator[GaugeMetricFamily | HistogramMetricFamily]:
    """Families for a JobStore and its JobRunner (altlas.jobs)."""
    jobs = GaugeMetricFamily("altlas_jobs", "Jobs kept, by kind and status", labels=["kind", "status"])
    for (kind, status), count in sorted(store.counts_by_kind().items()):
        jobs.add_metric([kind, status], count)
    yield jobs
    depth = GaugeMetricFamily("altlas_jobs_queue_depth", "Jobs queued, waiting for a worker")
    depth.add_metric([], store.queue_depth())
    yield depth
    duration = HistogramMetricFamily(
        "altlas_job_duration_seconds", "Run time of the jobs this process ran, by kind", labels=["kind"]
    )
    for kind, distribution in sorted(dict(runner.durations).items()):
        duration.add_metric([kind], [(le, float(n)) for le, n in distribution.cumulative()], distribution.sum)
    yield duration
