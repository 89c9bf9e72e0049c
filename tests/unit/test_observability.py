"""GPU and model metric families: NVML readings (a fake NVML with two cards, one without power
readings), absent series without NVML, and the model manager's state as gauges and counters."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from altlas.observability.distribution import Distribution
from altlas.observability.gpu import GpuSampler
from altlas.observability.metrics import Metrics
from altlas.observability.models import model_metrics
from altlas.scheduling.batcher import BatcherStats


class FakeNvml:
    NVML_TEMPERATURE_GPU = 0
    NVML_CLOCK_SM = 1

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> bytes:
        return b"NVIDIA Fake"

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Any:
        return SimpleNamespace(gpu=37 + handle)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:
        return SimpleNamespace(used=2 * 1024**3, total=80 * 1024**3)

    def nvmlDeviceGetTemperature(self, handle: int, kind: int) -> int:
        return 51

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        if handle == 1:
            raise RuntimeError("not supported")
        return 123_456  # milliwatts

    def nvmlDeviceGetClockInfo(self, handle: int, kind: int) -> int:
        return 1980  # MHz


def families(metrics: Metrics) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(metrics.exposition().decode())}


def test_nvml_readings_become_gauges_in_base_units() -> None:
    sampler = GpuSampler(nvml=FakeNvml())
    metrics = Metrics()
    metrics.add_collector(sampler.collect)
    assert "altlas_gpu_utilization_percent" not in families(metrics)  # nothing read yet
    sampler.sample()
    found = families(metrics)
    utilization = {s.labels["gpu"]: s.value for s in found["altlas_gpu_utilization_percent"].samples}
    assert utilization == {"0": 37.0, "1": 38.0}
    assert found["altlas_gpu_memory_total_bytes"].samples[0].value == 80 * 1024**3
    assert found["altlas_gpu_temperature_celsius"].samples[0].value == 51
    assert found["altlas_gpu_sm_clock_hertz"].samples[0].value == 1.98e9
    power = found["altlas_gpu_power_watts"].samples
    assert [(s.labels["gpu"], s.value) for s in power] == [("0", 123.456)]  # card 1 cannot tell: absent
    assert {s.labels["name"] for s in found["altlas_gpu_memory_used_bytes"].samples} == {"NVIDIA Fake"}


def test_without_nvml_the_series_are_absent_and_nothing_starts() -> None:
    sampler = GpuSampler(nvml=None)
    sampler.start()
    assert not sampler.available and sampler.sample() == [] and list(sampler.collect()) == []
    sampler.stop()


def test_the_sampler_thread_refreshes_readings() -> None:
    sampler = GpuSampler(interval_s=0.01, nvml=FakeNvml())
    sampler.start()
    try:
        assert len(list(sampler.collect())) == 6
    finally:
        sampler.stop()


class FakeManager:
    def names(self) -> list[str]:
        return ["embedder", "llm", "vad"]

    def status(self, name: str) -> dict[str, Any]:
        loaded = name != "vad"
        device = {"embedder": "cuda:0 NVIDIA H100 80GB HBM3", "llm": "cuda:0 NVIDIA H100 80GB HBM3"}
        return {
            "name": name, "status": "loaded" if loaded else "unloaded",
            "device": device.get(name), "gpu_bytes": 45_000_000 if name == "embedder" else 270_000_000,
            "requests": {"embedder": 10, "llm": 3, "vad": 0}[name],
        }  # fmt: skip

    def in_flight(self, name: str) -> int:
        return 4 if name == "embedder" else 0

    def batchers(self) -> list[tuple[str, str, BatcherStats]]:
        stats = BatcherStats()
        for size in (1, 3, 3, 200):
            stats.batch_requests.observe(size)
        stats.queue_wait_s.observe(0.004)
        return [("embedder", "cuda:0", stats)]

    def memory_report(self) -> dict[str, Any]:
        return {
            "counters": {"evictions": 2, "refusals": 1, "cpu_fallbacks": 0, "oom_splits": 5, "spillovers": 7}
        }


def test_model_metrics_from_the_manager() -> None:
    metrics = Metrics()
    metrics.add_collector(lambda: model_metrics(FakeManager()))
    found = families(metrics)
    assert [(s.labels, s.value) for s in found["altlas_models_loaded"].samples] == [({"device": "cuda:0"}, 2)]
    gpu_bytes = {s.labels["model"]: s.value for s in found["altlas_model_gpu_bytes"].samples}
    assert gpu_bytes == {"embedder": 45e6, "llm": 270e6}
    assert {s.labels["model"]: s.value for s in found["altlas_model_queue_depth"].samples}["embedder"] == 4
    assert found["altlas_model_oom_splits"].type == "counter"
    assert found["altlas_model_oom_splits"].samples[0].value == 5
    assert found["altlas_model_spillovers"].samples[0].value == 7
    text = metrics.exposition().decode()
    assert "altlas_model_evictions_total 2.0" in text and "altlas_model_requests_total" in text
    assert generate_latest(metrics.registry) == metrics.exposition()
    sizes = found["altlas_model_batch_requests"]
    assert sizes.type == "histogram"
    buckets = {s.labels["le"]: s.value for s in sizes.samples if s.name.endswith("_bucket")}
    assert buckets["1.0"] == 1 and buckets["2.0"] == 1 and buckets["4.0"] == 3 and buckets["+Inf"] == 4
    assert [s.value for s in sizes.samples if s.name.endswith("_sum")] == [207]
    assert {s.labels["device"] for s in found["altlas_model_queue_wait_seconds"].samples} == {"cuda:0"}


def test_distribution_counts_at_or_under_each_bound() -> None:
    distribution = Distribution((1, 10))
    for value in (0.5, 1, 1.5, 10, 11):
        distribution.observe(value)
    assert distribution.cumulative() == [("1.0", 2), ("10.0", 4), ("+Inf", 5)]
    assert distribution.sum == 24


def test_nvtx_ranges_wrap_without_changing_results() -> None:
    from altlas.observability.nvtx import nvtx_range, ranged

    @ranged("test.double")
    def double(x: int) -> int:
        """Twice x."""
        return 2 * x

    with nvtx_range("test.block"):
        assert double(21) == 42
    assert double.__name__ == "double" and double.__doc__ == "Twice x."
    try:
        with nvtx_range("test.error"):
            raise KeyError("inside")
    except KeyError:
        pass  # the range is popped and the error passes through
