"""The device layer: what the machine has, and which device, precision and memory budget to use."""

from altlas.runtime.device import (
    DeviceReport,
    GpuInfo,
    apply_memory_budget,
    probe,
    resolve_device,
    resolve_dtype,
)

__all__ = ["DeviceReport", "GpuInfo", "apply_memory_budget", "probe", "resolve_device", "resolve_dtype"]
