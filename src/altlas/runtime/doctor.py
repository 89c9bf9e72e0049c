"""`altlas doctor`: the device report as text a user can paste into a bug report."""

from __future__ import annotations

import platform

from altlas.runtime.device import DeviceReport

__all__ = ["format_report"]


def format_report(report: DeviceReport) -> str:
    lines = [
        "altlas doctor",
        f"  python         {platform.python_version()} on {platform.machine()} ({platform.system()})",
        f"  torch          {report.torch_version or 'not installed'}",
        f"  torch CUDA     {report.torch_cuda_build or 'none (CPU build)'}",
        f"  CUDA available {'yes' if report.cuda_available else 'no'}",
        f"  driver         {report.driver_version or 'not found'}",
        f"  NVML           {report.nvml}",
        f"  CPU threads    {report.cpu_threads}",
    ]
    for gpu in report.gpus:
        free = f", {gpu.free_memory_bytes / 2**30:.1f} GiB free" if gpu.free_memory_bytes is not None else ""
        precisions = "/".join(p for p, ok in (("fp16", gpu.fp16), ("bf16", gpu.bf16)) if ok) or "fp32 only"
        lines.append(
            f"  GPU {gpu.index}          {gpu.name}, compute {gpu.compute_capability}, "
            f"{gpu.total_memory_bytes / 2**30:.1f} GiB{free}, {gpu.multiprocessors} SMs, {precisions}"
        )
        if gpu.temperature_c is not None:
            lines.append(f"                 {gpu.temperature_c} °C, {gpu.utilization_pct}% busy")
    lines.append(f"  test kernel    {report.kernel_check}")
    lines.append("")
    lines.append(("GPU path: yes — " if report.suitable else "GPU path: no — ") + report.verdict)
    return "\n".join(lines)
