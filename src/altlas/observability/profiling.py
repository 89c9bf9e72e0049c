"""Hotspot analysis: run a workload under the torch profiler and cProfile, and say where time goes.

`profile_workload` runs one workload (segment, embed, search or generate over a list of texts)
once to warm up on a small slice, then whole under both profilers. It writes, into `out_dir`:
- `trace.json`: the Chrome trace (chrome://tracing or https://ui.perfetto.dev), with CPU and
  CUDA activity and the NVTX ranges altlas puts around its steps;
- `report.md`: the verdict, the top operations by self time on the CPU and on the GPU,
  host-device transfers (time, bytes) and the top Python functions (cProfile);
- `cprofile.txt`: cProfile's own listing.

The verdict compares, over the profiled run's wall time, the GPU's busy time (kernels) and the
transfer time (memcpy): GPU-bound when kernels cover most of it, transfer-bound when copies do,
else CPU-bound (the host is what the GPU waits for), naming the costliest host operations.
"""

from __future__ import annotations

import cProfile
import io
import json
import pstats
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from altlas.errors import InvalidInputError
from altlas.settings import Settings

__all__ = ["WORKLOADS", "ProfileReport", "profile_workload"]

WORKLOADS = ("segment", "embed", "search", "generate")


@dataclass
class ProfileReport:
    workload: str
    items: int
    device: str
    wall_s: float
    gpu_busy_s: float
    transfer_s: float
    transfer_bytes: int
    verdict: str
    cpu_ops: list[tuple[str, float, int]] = field(default_factory=list)  # name, self seconds, calls
    gpu_ops: list[tuple[str, float, int]] = field(default_factory=list)
    python: list[tuple[str, float, int]] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)

    def markdown(self) -> str:
        lines = [
            f"# altlas profile: {self.workload}, {self.items:,} inputs on {self.device}",
            "",
            self.verdict,
            "",
            f"Wall time {self.wall_s:.3f} s; GPU kernels busy {self.gpu_busy_s:.3f} s; "
            f"host-device transfers {self.transfer_s:.3f} s, {self.transfer_bytes:,} bytes.",
        ]
        for title, rows in (
            ("Top operations by self time on the CPU", self.cpu_ops),
            ("Top operations by self time on the GPU", self.gpu_ops),
            ("Top Python functions by own time (cProfile)", self.python),
        ):
            lines += ["", f"## {title}", "", "| # | operation | self ms | calls |", "|---:|---|---:|---:|"]
            if not rows:
                lines.append("| | (none) | | |")
            lines += [f"| {i} | `{name[:90]}` | {s * 1e3:,.2f} | {calls:,} |"
                      for i, (name, s, calls) in enumerate(rows, 1)]  # fmt: skip
        return "\n".join(lines) + "\n"


def profile_workload(
    workload: str,
    texts: Sequence[str],
    settings: Settings,
    out_dir: Path,
    *,
    model: str | None = None,
    top: int = 15,
) -> ProfileReport:
    """Profile `workload` over `texts` (see module docs); files go to `out_dir`."""
    if workload not in WORKLOADS:
        raise InvalidInputError(f"must be one of {', '.join(WORKLOADS)}", field="workload")
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise InvalidInputError("holds no text", field="input")
    out_dir.mkdir(parents=True, exist_ok=True)
    run, device = _workload(workload, texts, settings, model)
    run(texts[: min(len(texts), 64)])  # warm-up: kernels chosen, caches filled, before measuring
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    python = cProfile.Profile()
    with profile(activities=activities) as torch_profile:
        started = time.perf_counter()
        python.enable()
        run(texts)
        if cuda:
            torch.cuda.synchronize()
        python.disable()
        wall_s = time.perf_counter() - started
    trace = out_dir / "trace.json"
    torch_profile.export_chrome_trace(str(trace))
    gpu_busy_s, transfer_s, transfer_bytes = _device_time(trace)
    averages = torch_profile.key_averages()
    cpu_ops = sorted(
        ((e.key, e.self_cpu_time_total / 1e6, e.count) for e in averages if e.self_cpu_time_total > 0),
        key=lambda row: -row[1],
    )[:top]
    gpu_ops = sorted(
        ((e.key, _self_device_us(e) / 1e6, e.count) for e in averages if _self_device_us(e) > 0),
        key=lambda row: -row[1],
    )[:top]
    listing = io.StringIO()
    stats = pstats.Stats(python, stream=listing).sort_stats("tottime")
    stats.print_stats(40)
    (out_dir / "cprofile.txt").write_text(listing.getvalue())
    functions = sorted(
        ((name if file == "~" else f"{Path(file).name}:{line}({name})", tottime, calls)
         for (file, line, name), (_, calls, tottime, _, _) in stats.stats.items()),  # type: ignore[attr-defined]
        key=lambda row: -row[1],
    )[:top]  # fmt: skip
    report = ProfileReport(
        workload, len(texts), device, wall_s, gpu_busy_s, transfer_s, transfer_bytes,
        _verdict(wall_s, gpu_busy_s, transfer_s, cuda, cpu_ops, functions),
        cpu_ops, gpu_ops, functions,
    )  # fmt: skip
    markdown = out_dir / "report.md"
    markdown.write_text(report.markdown())
    report.files = {"trace": trace, "report": markdown, "cprofile": out_dir / "cprofile.txt"}
    return report


def _self_device_us(event: Any) -> float:
    """Self time on the device of a profiler average (the attribute's name moved across torch)."""
    for name in ("self_device_time_total", "self_cuda_time_total"):
        value = getattr(event, name, None)
        if value is not None:
            return float(value)
    return 0.0


def _device_time(trace: Path) -> tuple[float, float, int]:
    """(kernel busy seconds, memcpy seconds, memcpy bytes) from a Chrome trace: intervals on the
    GPU merged, so that overlapping kernels on several streams count once."""
    events = json.loads(trace.read_text()).get("traceEvents", [])
    kernels: list[tuple[float, float]] = []
    transfer_us = 0.0
    transfer_bytes = 0
    for event in events:
        category = event.get("cat", "")
        if event.get("ph") != "X":
            continue
        if category == "kernel":
            kernels.append((float(event["ts"]), float(event["ts"]) + float(event.get("dur", 0))))
        elif category == "gpu_memcpy":
            transfer_us += float(event.get("dur", 0))
            transfer_bytes += int((event.get("args") or {}).get("bytes", 0))
    busy_us, end = 0.0, float("-inf")
    for start, stop in sorted(kernels):
        if stop <= end:
            continue
        busy_us += stop - max(start, end)
        end = stop
    return busy_us / 1e6, transfer_us / 1e6, transfer_bytes


def _verdict(
    wall_s: float,
    gpu_busy_s: float,
    transfer_s: float,
    cuda: bool,
    cpu_ops: list[tuple[str, float, int]],
    functions: list[tuple[str, float, int]],
) -> str:
    top_ops = ", ".join(f"`{name}`" for name, _, _ in cpu_ops[:3]) or "none recorded"
    top_python = ", ".join(f"`{name}`" for name, _, _ in functions[:3]) or "none recorded"
    if not cuda:
        return (
            f"**CPU-bound** (no GPU in use): all {wall_s:.3f} s ran on the host. The costliest "
            f"operations by self time were {top_ops}; in Python, {top_python}."
        )
    busy, copies = gpu_busy_s / wall_s if wall_s else 0.0, transfer_s / wall_s if wall_s else 0.0
    share = f"the GPU ran kernels {busy:.0%} of the {wall_s:.3f} s and copied data {copies:.0%} of it"
    if busy >= 0.6:
        return (
            f"**GPU-bound**: {share}. Faster kernels (fusion, lower precision, better batching of "
            f"the heaviest operations) would pay; the host keeps up."
        )
    if copies >= 0.3:
        return (
            f"**Transfer-bound**: {share}. Fewer, larger or pinned and asynchronous copies, or keeping "
            f"data on the device between steps, would pay."
        )
    return (
        f"**CPU-bound**: {share}, so the device mostly waited for the host. The costliest host "
        f"operations by self time were {top_ops}; in Python, {top_python}. Larger batches, fewer "
        f"launches (CUDA graphs) or moving that host work off the critical path would pay."
    )


def _workload(
    workload: str, texts: Sequence[str], settings: Settings, model: str | None
) -> tuple[Callable[[Sequence[str]], object], str]:
    """The callable that runs the workload over texts, and the device it runs on."""
    if workload == "segment":
        from altlas.segmentation.bulk import segment_lines

        def segment(lines: Sequence[str]) -> object:
            return list(segment_lines(lines, workers=1, expected=len(lines)))

        return segment, "cpu"
    if workload == "generate":
        return _generation(settings, model)
    from altlas.embeddings.engine import Embedder

    embedder = Embedder.from_settings(settings, model)
    device = str(embedder.device)
    if workload == "embed":
        return (lambda lines: embedder.encode(list(lines))), device
    from altlas.search.index import VectorIndex

    index = VectorIndex(embedder.dimension, device=device)
    index.add([str(i) for i in range(len(texts))], embedder.encode(list(texts)))

    def search(lines: Sequence[str]) -> object:
        return index.search(embedder.encode(list(lines)), k=10)

    return search, device


def _generation(settings: Settings, model: str | None) -> tuple[Callable[[Sequence[str]], object], str]:
    """Greedy 16-token answers to the first 8 texts, with the shipped SmolLM2 (or `model`: a
    transformers folder or a .gguf file)."""
    import yaml

    from altlas.generation.convert import model_folder
    from altlas.generation.engine import TextGenerator
    from altlas.generation.sampling import SamplingParams
    from altlas.orchestrator.registry import default_registry_text, resolve_source
    from altlas.runtime.device import resolve_device

    if model is None:
        registry = yaml.safe_load(default_registry_text())
        spec = next(m for m in registry["models"] if m["task"] == "generation")
        model = str(spec["versions"][spec["active"]])
    source = resolve_source(model, settings.data_dir)
    folder = model_folder(source, settings.data_dir / "cache" / "models")
    device = resolve_device(settings.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    generator = TextGenerator(folder, device, dtype)
    params = SamplingParams(max_tokens=16, temperature=0.0)

    def generate(prompts: Sequence[str]) -> object:
        return [generator.complete(generator.text_ids(p), params) for p in prompts[:8]]

    return generate, str(device)
