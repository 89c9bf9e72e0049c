"""GPU metrics: NVML readings of every GPU, sampled in the background, and this process's own
torch allocator.

A thread reads NVML every `interval_s` (utilisation is NVML's own average over its last
sample period, so a scrape between two readings sees the latest). Without NVML (no driver, no
GPU, as in CI) the sampler never starts and its series are absent, not zero; a reading a card
does not support (power on some boards) is left out for that card alone. The allocator's bytes
come from torch at scrape time, and only once this process has initialised CUDA (a scrape never
initialises it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from prometheus_client.core import GaugeMetricFamily

__all__ = ["GpuReading", "GpuSampler", "torch_allocator_metrics"]

log = logging.getLogger("altlas.metrics")


@dataclass(frozen=True, slots=True)
class GpuReading:
    index: int
    name: str
    values: dict[str, float] = field(default_factory=dict)  # series name -> value


# series name -> (help, how to read it from NVML: (nvml, handle) -> value in base units)
_SERIES: dict[str, tuple[str, Any]] = {
    "altlas_gpu_utilization_percent": (
        "GPU utilisation over NVML's last sample period, percent",
        lambda nvml, h: nvml.nvmlDeviceGetUtilizationRates(h).gpu,
    ),
    "altlas_gpu_memory_used_bytes": (
        "GPU memory in use (all processes), bytes",
        lambda nvml, h: nvml.nvmlDeviceGetMemoryInfo(h).used,
    ),
    "altlas_gpu_memory_total_bytes": (
        "GPU memory in total, bytes",
        lambda nvml, h: nvml.nvmlDeviceGetMemoryInfo(h).total,
    ),
    "altlas_gpu_temperature_celsius": (
        "GPU core temperature, degrees Celsius",
        lambda nvml, h: nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU),
    ),
    "altlas_gpu_power_watts": (
        "GPU board power draw, watts",
        lambda nvml, h: nvml.nvmlDeviceGetPowerUsage(h) / 1000.0,  # NVML: milliwatts
    ),
    "altlas_gpu_sm_clock_hertz": (
        "GPU streaming-multiprocessor clock, hertz",
        lambda nvml, h: nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_SM) * 1e6,  # NVML: MHz
    ),
}


def _load_nvml() -> ModuleType | None:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no library, no driver, no GPU: the series stay absent
        return None
    module: ModuleType = pynvml
    return module


class GpuSampler:
    """Background NVML readings; `collect()` yields them as Prometheus gauges (none without NVML)."""

    def __init__(self, interval_s: float = 1.0, nvml: Any = "load") -> None:
        self.interval_s = interval_s
        self._nvml = _load_nvml() if nvml == "load" else nvml
        self._readings: list[GpuReading] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def available(self) -> bool:
        return self._nvml is not None

    def start(self) -> None:
        if self._nvml is None or self._thread is not None:
            return
        self.sample()
        self._thread = threading.Thread(target=self._run, name="altlas-gpu-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> list[GpuReading]:
        """Read every GPU now (the thread does this every interval); keeps and returns the readings."""
        nvml = self._nvml
        if nvml is None:
            return []
        readings = []
        try:
            count = nvml.nvmlDeviceGetCount()
        except Exception as exc:
            log.warning("NVML failed", extra={"error": str(exc)[:200]})
            return self._readings
        for index in range(count):
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                name = nvml.nvmlDeviceGetName(handle)
            except Exception:
                continue
            values = {}
            for series, (_, read) in _SERIES.items():
                try:
                    values[series] = float(read(nvml, handle))
                except Exception:  # not supported on this card: that series is absent for it
                    continue
            readings.append(GpuReading(index, name if isinstance(name, str) else name.decode(), values))
        self._readings = readings
        return readings

    def collect(self) -> Iterator[GaugeMetricFamily]:
        readings = self._readings
        for series, (help_text, _) in _SERIES.items():
            held = [r for r in readings if series in r.values]
            if not held:
                continue
            family = GaugeMetricFamily(series, help_text, labels=["gpu", "name"])
            for reading in held:
                family.add_metric([str(reading.index), reading.name], reading.values[series])
            yield family


def torch_allocator_metrics() -> Iterator[GaugeMetricFamily]:
    """This process's torch CUDA allocator per device: allocated, reserved and peak bytes."""
    import torch

    if not torch.cuda.is_available() or not torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        return
    kinds = {
        "altlas_torch_allocated_bytes": ("Bytes live tensors hold", torch.cuda.memory_allocated),
        "altlas_torch_reserved_bytes": (
            "Bytes the allocator holds from the driver",
            torch.cuda.memory_reserved,
        ),
        "altlas_torch_peak_allocated_bytes": (
            "Most bytes live tensors held at once",
            torch.cuda.max_memory_allocated,
        ),
    }
    for series, (help_text, read) in kinds.items():
        family = GaugeMetricFamily(series, help_text, labels=["device"])
        for index in range(torch.cuda.device_count()):
            family.add_metric([f"cuda:{index}"], float(read(index)))
        yield family
