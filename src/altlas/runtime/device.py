"""The one place that knows the machine: which device and precision to use, and how much GPU memory.

Everything here degrades to CPU without errors: no torch CUDA build, no driver, no
NVML, or a GPU that is too old all lead to a report that says why and a CPU device.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from altlas.errors import InvalidInputError

if TYPE_CHECKING:
    import torch

__all__ = [
    "MIN_COMPUTE_CAPABILITY",
    "DeviceReport",
    "GpuInfo",
    "apply_memory_budget",
    "describe_device",
    "probe",
    "resolve_device",
    "resolve_dtype",
]

MIN_COMPUTE_CAPABILITY = (7, 0)  # Volta: the oldest with the fp16 tensor cores the fast path relies on


@dataclass(frozen=True, slots=True)
class GpuInfo:
    index: int
    name: str
    compute_capability: str
    total_memory_bytes: int
    free_memory_bytes: int | None
    multiprocessors: int
    bf16: bool
    fp16: bool
    uuid: str | None = None
    temperature_c: int | None = None
    utilization_pct: int | None = None


@dataclass(frozen=True, slots=True)
class DeviceReport:
    """What `altlas doctor` prints: enough for a bug report, and a verdict."""

    torch_version: str | None
    torch_cuda_build: str | None  # CUDA version torch was built for, None for a CPU build
    cuda_available: bool
    driver_version: str | None
    nvml: str  # "ok", or why NVML is not usable
    gpus: list[GpuInfo] = field(default_factory=list)
    kernel_check: str = "not run"  # result of running a tiny kernel on each GPU
    suitable: bool = False
    verdict: str = ""
    cpu_threads: int = 1
    probe_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _nvml() -> tuple[str, str | None, dict[int, dict[str, Any]]]:
    """(status, driver version, per-GPU extras) from NVML, or why it is unavailable."""
    try:
        import pynvml
    except ImportError:
        return "nvidia-ml-py is not installed", None, {}
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return f"unavailable: {exc}", None, {}
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        extras: dict[int, dict[str, Any]] = {}
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            info: dict[str, Any] = {"uuid": pynvml.nvmlDeviceGetUUID(handle)}
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            info["free"] = int(memory.free)
            try:
                info["temperature"] = int(
                    pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)
                )
                info["utilization"] = int(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            except pynvml.NVMLError:
                pass  # not every board reports these
            extras[index] = info
        return "ok", str(driver), extras
    except Exception as exc:
        return f"error: {exc}", None, {}
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


def _kernel_check(torch_module: Any, count: int) -> str:
    """Run a small matrix product on each GPU and compare with the CPU: proves CUDA really works."""
    try:
        for index in range(count):
            device = f"cuda:{index}"
            a = torch_module.arange(64 * 64, dtype=torch_module.float32).reshape(64, 64) / 4096
            expected = a @ a
            got = (a.to(device) @ a.to(device)).cpu()
            torch_module.cuda.synchronize(device)
            if not torch_module.allclose(got, expected, rtol=1e-3, atol=1e-3):
                return f"wrong result on {device}"
        return "ok"
    except Exception as exc:
        return f"failed: {type(exc).__name__}: {exc}"


def probe(run_kernel: bool = True) -> DeviceReport:
    """Inspect torch, CUDA and NVML. Never raises: what is missing goes into the report."""
    started = time.perf_counter()
    try:
        import torch
    except ImportError:
        return _finish(
            DeviceReport(None, None, False, None, "not checked", verdict="torch is not installed: CPU only"),
            started,
        )
    nvml_status, driver, extras = _nvml()
    cuda_build = torch.version.cuda
    available = bool(torch.cuda.is_available())
    gpus: list[GpuInfo] = []
    if available:
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            extra = extras.get(index, {})
            major, minor = props.major, props.minor
            gpus.append(
                GpuInfo(
                    index=index,
                    name=props.name,
                    compute_capability=f"{major}.{minor}",
                    total_memory_bytes=int(props.total_memory),
                    free_memory_bytes=extra.get("free"),
                    multiprocessors=int(props.multi_processor_count),
                    bf16=major >= 8,
                    fp16=(major, minor) >= (5, 3),
                    uuid=extra.get("uuid"),
                    temperature_c=extra.get("temperature"),
                    utilization_pct=extra.get("utilization"),
                )
            )
    kernel = _kernel_check(torch, len(gpus)) if (available and run_kernel and gpus) else "not run"
    report = DeviceReport(
        torch_version=torch.__version__,
        torch_cuda_build=cuda_build,
        cuda_available=available,
        driver_version=driver,
        nvml=nvml_status,
        gpus=gpus,
        kernel_check=kernel,
        cpu_threads=torch.get_num_threads(),
    )
    suitable, verdict = _verdict(report, run_kernel)
    return _finish(replace(report, suitable=suitable, verdict=verdict), started)


def _finish(report: DeviceReport, started: float) -> DeviceReport:
    return replace(report, probe_ms=round((time.perf_counter() - started) * 1000, 1))


def _verdict(report: DeviceReport, kernel_ran: bool) -> tuple[bool, str]:
    if report.torch_cuda_build is None:
        return False, f"torch {report.torch_version} is a CPU build: the GPU path needs a CUDA build of torch"
    if not report.cuda_available:
        if report.driver_version is None:
            return False, f"no usable NVIDIA GPU or driver found (NVML: {report.nvml}); running on CPU"
        return False, (
            f"driver {report.driver_version} is present but CUDA is unavailable to torch "
            f"(built for CUDA {report.torch_cuda_build}); the driver may be too old for this build"
        )
    usable = [g for g in report.gpus if _cc(g) >= MIN_COMPUTE_CAPABILITY]
    if not usable:
        names = ", ".join(f"{g.name} (compute {g.compute_capability})" for g in report.gpus)
        minimum = ".".join(map(str, MIN_COMPUTE_CAPABILITY))
        return False, f"{names}: compute capability below {minimum}; running on CPU"
    if kernel_ran and report.kernel_check != "ok":
        return False, f"CUDA is visible but a test kernel {report.kernel_check}; running on CPU"
    best = max(usable, key=lambda g: g.total_memory_bytes)
    precision = "bf16 and fp16" if best.bf16 else "fp16"
    return True, (
        f"suitable for the GPU path: {len(usable)} GPU(s), e.g. {best.name} with "
        f"{best.total_memory_bytes / 2**30:.1f} GiB, {precision}"
    )


def _cc(gpu: GpuInfo) -> tuple[int, int]:
    major, minor = gpu.compute_capability.split(".")
    return int(major), int(minor)


def resolve_device(setting: str = "auto") -> torch.device:
    """The torch device for `auto|cpu|cuda|cuda:N`, with a readable error for bad or absent ids."""
    import torch

    value = setting.strip().lower()
    if value == "auto":
        if torch.cuda.is_available() and any(
            torch.cuda.get_device_capability(i) >= MIN_COMPUTE_CAPABILITY
            for i in range(torch.cuda.device_count())
        ):
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")
    if value == "cpu":
        return torch.device("cpu")
    if value == "cuda" or value.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise InvalidInputError(f"{setting!r} asked for, but CUDA is not available here", field="device")
        index_text = value.partition(":")[2] or str(torch.cuda.current_device())
        if not index_text.isdigit() or int(index_text) >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise InvalidInputError(
                f"{setting!r}: there are {count} GPU(s), cuda:0..cuda:{count - 1}", field="device"
            )
        return torch.device("cuda", int(index_text))
    raise InvalidInputError(f"must be auto, cpu, cuda or cuda:N, got {setting!r}", field="device")


def describe_device(device: torch.device) -> str:
    """How responses and statuses name a device: "cuda:0 NVIDIA H100 80GB HBM3", or "cpu"."""
    import torch

    if device.type == "cuda":
        return f"{device} {torch.cuda.get_device_name(device)}"
    return str(device)


_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def resolve_dtype(setting: str, device: torch.device) -> torch.dtype:
    """`auto` is fp16 on CUDA (fastest, and within tolerance for encoders) and fp32 on CPU."""
    import torch

    value = setting.strip().lower()
    if value == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if value not in _DTYPES:
        raise InvalidInputError(f"must be auto, fp32, fp16 or bf16, got {setting!r}", field="precision")
    dtype: torch.dtype = getattr(torch, _DTYPES[value])
    if device.type == "cuda" and dtype is torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise InvalidInputError(
            f"bf16 is not supported on {torch.cuda.get_device_name(device)}", field="precision"
        )
    return dtype


def apply_memory_budget(device: torch.device, gigabytes: float | None) -> float | None:
    """Cap this process's share of the GPU at `gigabytes` (caching allocator); returns the fraction set."""
    if gigabytes is None or device.type != "cuda":
        return None
    import torch

    if gigabytes <= 0:
        raise InvalidInputError(f"must be a positive number of GB, got {gigabytes}", field="gpu_memory_gb")
    total = torch.cuda.get_device_properties(device).total_memory
    # The cap binds torch's caching allocator only; the CUDA context and loaded kernel modules
    # sit outside it, so they are taken off first (else the process would hold ~0.5-1 GB more
    # than asked), with some headroom for modules that load later.
    limit = gigabytes * 1e9 - _held_outside_allocator(device) - _MODULE_HEADROOM
    fraction = max(0.01, min(1.0, limit / total))
    torch.cuda.set_per_process_memory_fraction(fraction, device)
    return fraction


_MODULE_HEADROOM = 640 * 2**20  # kernel modules and library handles that load after the cap is set


def _held_outside_allocator(device: torch.device) -> int:
    """GPU bytes held beyond this process's caching allocator: the card's used memory minus what
    the allocator has reserved (the CUDA context and loaded modules; on a shared card, other
    processes too, which only makes the cap safer)."""
    import torch

    free, total = torch.cuda.mem_get_info(device)
    return max(0, int(total) - int(free) - int(torch.cuda.memory_reserved(device)))
