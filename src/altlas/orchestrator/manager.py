"""Which models are loaded, where, and what they cost: loading, unloading, version swaps, leases.

A request takes a *lease* on a model (`ModelManager.use`): the model is loaded if it is not
(a failed load answers with its reason), and the lease keeps that backend alive until the
request ends; the backend's own scheduler (a dynamic batcher, see altlas.scheduling) queues
and batches the work. So unloading or activating another version never breaks a request in
flight: the new version is loaded and warmed up first, then swapped in; the old one stops
taking requests and finishes those it accepted.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import torch

from altlas.errors import AltlasError, InvalidInputError, NotFoundError
from altlas.orchestrator.backends import Backend, build_backend
from altlas.orchestrator.placement import estimate_bytes, fits
from altlas.orchestrator.registry import ModelSpec, Registry, resolve_source
from altlas.runtime.device import resolve_device
from altlas.scheduling.batcher import BatchPolicy
from altlas.settings import Settings

__all__ = ["Lease", "ModelManager", "ModelUnavailableError", "WrongTaskError"]

log = logging.getLogger("altlas.orchestrator")


class ModelUnavailableError(AltlasError):
    """The model could not be loaded; the message says why."""


class WrongTaskError(InvalidInputError):
    """A model asked to do another task than its own."""


@dataclass
class _Entry:
    spec: ModelSpec
    backend: Backend | None = None
    version: str | None = None
    status: str = "unloaded"  # unloaded | loading | loaded | failed
    error: str | None = None
    device: str | None = None
    gpu_bytes: int = 0
    load_ms: float | None = None
    warmup_ms: float | None = None
    last_used: float | None = None
    requests: int = 0


@dataclass(frozen=True)
class Lease:
    """A loaded model held for one request."""

    name: str
    backend: Backend
    device: str  # e.g. "cuda:0 NVIDIA H100 80GB HBM3" or "cpu"
    gpu_bytes: int


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} {torch.cuda.get_device_name(device)}"
    return str(device)


class ModelManager:
    def __init__(self, registry: Registry, settings: Settings) -> None:
        self.registry = registry
        self.settings = settings
        self.cache_dir = settings.data_dir / "cache" / "models"
        self._entries = {spec.name: _Entry(spec) for spec in registry.all()}
        self._lock = threading.Lock()  # guards _entries
        self._loading = threading.Lock()  # one load at a time: GPU bytes are attributed by difference
        self._placement: dict[str, str | None] = {}  # why a model sits where it does (auto policy)

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelManager:
        return cls(Registry(settings.data_dir / "models.yaml"), settings)

    # status

    def _entry(self, name: str) -> _Entry:
        with self._lock:
            entry = self._entries.get(name)
        if entry is None:
            raise NotFoundError(f"no model named {name!r}; GET /v1/models lists them", field="model")
        return entry

    def status(self, name: str) -> dict[str, Any]:
        entry = self._entry(name)
        spec = self.registry.get(name)
        return {
            "name": name,
            "task": spec.task,
            "backend": spec.backend,
            "status": entry.status,
            "error": entry.error,
            "device": entry.device,
            "gpu_bytes": entry.gpu_bytes,
            "loaded_version": entry.version,
            "active_version": spec.active,
            "versions": [
                {"version": v, "source": s, "active": v == spec.active} for v, s in spec.versions.items()
            ],
            "device_policy": spec.device,
            "placement": self._placement.get(name),
            "precision": spec.precision,
            "load_at_start": spec.load_at_start,
            "load_ms": entry.load_ms,
            "warmup_ms": entry.warmup_ms,
            "last_used": entry.last_used,
            "requests": entry.requests,
        }

    def names(self) -> list[str]:
        with self._lock:
            return list(self._entries)

    # loading

    def start(self) -> threading.Thread:
        """Load the models marked load_at_start, in the background (the server answers meanwhile)."""
        names = [spec.name for spec in self.registry.all() if spec.load_at_start]

        def run() -> None:
            for name in names:
                with contextlib.suppress(AltlasError):  # a failure is recorded in the model's status
                    self.load(name)

        thread = threading.Thread(target=run, name="altlas-model-loader", daemon=True)
        thread.start()
        return thread

    def load(self, name: str, version: str | None = None) -> dict[str, Any]:
        """Load (and warm up) the active version, or `version`; a no-op if it is loaded already."""
        entry = self._entry(name)
        spec = self.registry.get(name)
        version = version or spec.active
        with self._loading:
            if entry.status == "loaded" and entry.version == version:
                return self.status(name)
            if entry.backend is None:
                entry.status = "loading"
            try:
                backend, device, gpu_bytes, load_ms, warmup_ms = self._build(replace(spec, active=version))
            except AltlasError as exc:
                if entry.backend is None:
                    entry.status, entry.error = "failed", exc.message
                log.warning(
                    "model failed to load", extra={"model": name, "version": version, "reason": exc.message}
                )
                raise ModelUnavailableError(
                    f"model {name!r} failed to load: {exc.message}", field="model"
                ) from None
            old = entry.backend
            entry.backend, entry.version, entry.device = backend, version, device
            entry.gpu_bytes, entry.load_ms, entry.warmup_ms = gpu_bytes, load_ms, warmup_ms
            entry.status, entry.error = "loaded", None
            if old is not None:  # a version swap: leases in flight keep the old backend until they end
                old.close()
            facts = {"model": name, "version": version, "device": device, "gpu_bytes": gpu_bytes,
                     "load_ms": round(load_ms, 1), "warmup_ms": round(warmup_ms, 1)}  # fmt: skip
            log.info("model loaded", extra=facts)
        return self.status(name)

    def _build(self, spec: ModelSpec) -> tuple[Backend, str, int, float, float]:
        started = time.perf_counter()
        path = resolve_source(spec.source, self.settings.data_dir)
        policy = spec.device if spec.device != "auto" else self.settings.device
        try:
            device = resolve_device(policy)
        except InvalidInputError as exc:
            raise InvalidInputError(exc.message, field="device") from None
        placement = None
        if policy == "auto" and device.type == "cuda":  # only an explicit policy insists on the GPU
            room, placement = fits(estimate_bytes(path), self._gpu_bytes_used(device), self._budget(device))
            if not room:
                device, placement = torch.device("cpu"), "on the CPU: " + placement
        before = _allocated(device)
        try:
            backend = build_backend(spec, path, device, self.cache_dir, self.batch_policy(spec, device))
        except torch.OutOfMemoryError:
            gc.collect()
            torch.cuda.empty_cache()
            raise InvalidInputError(f"out of GPU memory on {device} while loading", field="device") from None
        except (OSError, RuntimeError) as exc:
            raise InvalidInputError(f"{type(exc).__name__}: {str(exc)[:300]}", field="source") from None
        loaded = time.perf_counter()
        backend.warmup(list(spec.warmup))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        warmed = time.perf_counter()
        gpu_bytes = max(0, _allocated(device) - before)
        self._placement[spec.name] = placement
        return (
            backend,
            describe_device(backend.device),
            gpu_bytes,
            (loaded - started) * 1e3,
            (warmed - loaded) * 1e3,
        )

    def batch_policy(self, spec: ModelSpec, device: torch.device) -> BatchPolicy:
        """The settings' batching, queue bound and wait, overridden by the model's options."""
        settings = self.settings
        tokens = settings.batch_max_tokens or (32_768 if device.type == "cuda" else 4_096)
        options = spec.options
        try:
            return BatchPolicy(
                max_batch_tokens=int(options.get("max_batch_tokens", tokens)),
                max_wait_ms=float(options.get("max_wait_ms", settings.batch_max_wait_ms)),
                max_queue=int(options.get("max_queue", settings.queue_max)),
                enabled=bool(options.get("batching", settings.batching)),
            )
        except (TypeError, ValueError):
            raise InvalidInputError(
                "max_batch_tokens, max_wait_ms and max_queue must be positive numbers", field="options"
            ) from None

    def _budget(self, device: torch.device) -> int:
        total = int(torch.cuda.get_device_properties(device).total_memory)
        cap = self.settings.gpu_memory_gb
        return min(total, int(cap * 1e9)) if cap > 0 else total

    def _gpu_bytes_used(self, device: torch.device) -> int:
        with self._lock:
            entries = list(self._entries.values())
        return sum(e.gpu_bytes for e in entries if e.device and e.device.split(" ")[0] == str(device))

    def unload(self, name: str) -> dict[str, Any]:
        """Let go of the model; reports the GPU memory allocated before and after."""
        entry = self._entry(name)
        with self._loading:
            backend = entry.backend
            device = backend.device if backend is not None else None
            before = _allocated(device)
            entry.backend, entry.version, entry.status, entry.device, entry.gpu_bytes = (
                None,
                None,
                "unloaded",
                None,
                0,
            )
            if backend is not None:
                backend.close()
                del backend
            gc.collect()
            if device is not None and device.type == "cuda":
                torch.cuda.synchronize(device)
                # cuBLAS keeps a workspace per stream a graph was captured on (32 MiB on Hopper)
                clear_workspaces = getattr(torch._C, "_cuda_clearCublasWorkspaces", None)
                if clear_workspaces is not None:
                    clear_workspaces()
                torch.cuda.empty_cache()
            after = _allocated(device)
        return {**self.status(name), "gpu_bytes_before": before, "gpu_bytes_after": after,
                "gpu_bytes_freed": max(0, before - after)}  # fmt: skip

    def activate(self, name: str, version: str) -> dict[str, Any]:
        """Make `version` the active one; a loaded model swaps to it (loaded and warmed up first)."""
        spec = self.registry.get(name)
        if version not in spec.versions:
            raise NotFoundError(f"model {name!r} has no version {version!r}", field="version")
        entry = self._entry(name)
        if entry.status == "loaded":
            self.load(name, version)
        spec = self.registry.activate(name, version)
        entry.spec = spec
        return self.status(name)

    def register(self, spec: ModelSpec) -> dict[str, Any]:
        spec = self.registry.register(spec)
        with self._lock:
            entry = self._entries.setdefault(spec.name, _Entry(spec))
            entry.spec = spec
        return self.status(spec.name)

    # requests

    @contextmanager
    def use(self, name: str, task: str) -> Iterator[Lease]:
        """The model, loaded, for one request of `task` (its backend queues the work)."""
        yield self.lease(name, task)

    def lease_if_loaded(self, name: str, task: str) -> Lease | None:
        """The lease, if the model is loaded; None if taking it would mean loading (a worker
        thread's job). Lets the event loop skip a thread hop on the hot path."""
        entry = self._entry(name)
        if entry.backend is None or entry.status != "loaded":
            return None
        return self.lease(name, task)

    def lease(self, name: str, task: str) -> Lease:
        """The model, loaded (here, if it is not: call from a worker thread), for one request."""
        entry = self._entry(name)
        spec = self.registry.get(name)
        if spec.task != task:
            raise WrongTaskError(f"model {name!r} does {spec.task}, not {task}", field="model")
        if entry.backend is None:
            self.load(name)
        backend = entry.backend
        if backend is None:  # unloaded meanwhile
            raise ModelUnavailableError(f"model {name!r} was unloaded; load it again", field="model")
        with self._lock:
            entry.requests += 1
            entry.last_used = time.time()
        return Lease(name, backend, entry.device or str(backend.device), entry.gpu_bytes)


def _allocated(device: torch.device | None) -> int:
    if device is None or device.type != "cuda":
        return 0
    torch.cuda.synchronize(device)
    return int(torch.cuda.memory_allocated(device))
