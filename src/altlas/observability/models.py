"""Model metrics read from the model manager at scrape time: what is loaded where, GPU bytes,
queue depths, and the manager's counters (loads refused, evictions, OOM splits, spill-overs)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from altlas.observability.gpu import torch_allocator_metrics
from altlas.observability.metrics import Collected

__all__ = ["model_metrics", "model_side_metrics"]


_HISTOGRAMS = (
    ("queue_wait_s", "altlas_model_queue_wait_seconds", "Time a request waited for its batch to start"),
    ("run_s", "altlas_model_inference_seconds", "Time a batch ran on its device (forward passes)"),
    ("batch_requests", "altlas_model_batch_requests", "Requests per batch"),
    ("batch_tokens", "altlas_model_batch_tokens", "Tokens per batch (texts: their tokens; else 1 a request)"),
    ("tokenize_s", "altlas_model_tokenize_seconds", "Time tokenizing a batch's texts"),
    (
        "request_s",
        "altlas_model_request_seconds",
        "A request's time in the model: queue wait and its batch's run",
    ),
)


def model_side_metrics(manager: Any) -> Collected:
    """The metrics a process serving models keeps (altlas.engine.thread_work.Keeps): `manager`'s
    models (model_metrics) and the process's torch CUDA allocator."""
    collected = Collected()
    collected.add_collector(lambda: model_metrics(manager))
    collected.add_collector(torch_allocator_metrics)
    return collected


def model_metrics(manager: Any) -> Iterator[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]:
    """Families for `manager` (an altlas.orchestrator.manager.ModelManager)."""
    statuses = [manager.status(name) for name in manager.names()]
    loaded = [s for s in statuses if s["status"] == "loaded"]
    count = GaugeMetricFamily("altlas_models_loaded", "Models loaded, by device", labels=["device"])
    by_device: dict[str, int] = {}
    for status in loaded:
        device = _device(status)
        by_device[device] = by_device.get(device, 0) + 1
    for device, n in sorted(by_device.items()):
        count.add_metric([device], n)
    yield count
    gpu_bytes = GaugeMetricFamily(
        "altlas_model_gpu_bytes", "GPU bytes a loaded model's weights took", labels=["model", "device"]
    )
    queued = GaugeMetricFamily(
        "altlas_model_queue_depth", "Requests queued or running on a loaded model", labels=["model"]
    )
    requests = CounterMetricFamily(
        "altlas_model_requests", "Requests that took a model's lease", labels=["model"]
    )
    for status in loaded:
        gpu_bytes.add_metric([status["name"], _device(status)], float(status["gpu_bytes"]))
        queued.add_metric([status["name"]], float(manager.in_flight(status["name"])))
    for status in statuses:
        requests.add_metric([status["name"]], float(status["requests"]))
    yield gpu_bytes
    yield queued
    yield requests
    counters = manager.memory_report()["counters"]
    for key, help_text in (
        ("loads", "Models loaded (a version swap counts one)"),
        ("unloads", "Models unloaded, by request or to make room"),
        ("evictions", "Models unloaded to make room for another"),
        ("refusals", "GPU loads refused for want of room"),
        ("cpu_fallbacks", "Loads sent to the CPU for want of GPU room"),
        ("oom_splits", "Batches split in halves after running out of GPU memory"),
        ("spillovers", "Requests served by a CPU replica when the GPU queue was saturated"),
    ):
        family = CounterMetricFamily(f"altlas_model_{key}", help_text)
        family.add_metric([], float(counters.get(key, 0)))
        yield family
    batchers = manager.batchers()
    real = CounterMetricFamily(
        "altlas_model_real_tokens", "Tokens of the inputs a model computed", labels=["model", "device"]
    )
    computed = CounterMetricFamily(
        "altlas_model_computed_tokens",
        "Tokens a model computed, padding included",
        labels=["model", "device"],
    )
    efficiency = GaugeMetricFamily(
        "altlas_model_padding_efficiency", "Real tokens / computed tokens since start (1: no padding)",
        labels=["model", "device"],
    )  # fmt: skip
    for model, device, stats in batchers:
        if stats.computed_tokens:
            real.add_metric([model, device], float(stats.real_tokens))
            computed.add_metric([model, device], float(stats.computed_tokens))
            efficiency.add_metric([model, device], stats.real_tokens / stats.computed_tokens)
    yield real
    yield computed
    yield efficiency
    for attribute, series, help_text in _HISTOGRAMS:
        histogram = HistogramMetricFamily(series, help_text, labels=["model", "device"])
        for model, device, stats in batchers:
            distribution = getattr(stats, attribute)
            histogram.add_metric(
                [model, device], [(le, float(n)) for le, n in distribution.cumulative()], distribution.sum
            )
        yield histogram


def _device(status: dict[str, Any]) -> str:
    device = str(status.get("device") or "unknown")
    return device.split(" ")[0]  # "cuda:0 NVIDIA H100 ..." -> "cuda:0": a bounded label
