"""Which models are loaded, where, and what they cost: loading, unloading, version swaps.

Requests do not come here: they lease loaded models from `ModelManager.loaded`
(altlas.orchestrator.serving.LoadedModels), to which the manager publishes each model once it
is loaded and warmed up, and from which it withdraws it on unload. A request for a model that
is not loaded calls `load` (a failed load answers with its reason). Activating another version
of a loaded model loads and warms it up first, then publishes it in the old one's place; the
old one stops taking requests and finishes those it accepted.

GPU memory has one budget per card (its memory, or `gpu_memory_gb`); each loaded model accounts
for its weights and its largest batch's activations (altlas.orchestrator.memory). A load that
does not fit unloads idle, unpinned models, least recently used first; if it still does not
fit, `auto` goes to the CPU and an explicit GPU policy is refused (InsufficientMemoryError).
A model with `options.cpu_replica` loaded on a GPU also gets a CPU copy that serves its
overflow (altlas.scheduling.spillover). The command embedding model (the setting
`command_embedding_model`) loads from the folder the setting `embedding_model` names, if any.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from altlas.errors import (  # the memory, unavailable and wrong-task errors stay importable from here
    AltlasError,
    InsufficientMemoryError,
    InvalidInputError,
    ModelUnavailableError,
    NotFoundError,
    WrongTaskError,
)
from altlas.orchestrator.backends import REPLICA_TASKS, Backend, add_cpu_replica, build_backend
from altlas.orchestrator.memory import IDLE_AFTER_S, MemoryCounters, Resident, activation_reserve, plan_room
from altlas.orchestrator.placement import estimate_bytes
from altlas.orchestrator.registry import ModelSpec, Registry, resolve_source, source_allowed
from altlas.orchestrator.serving import Loaded, LoadedModels, unknown_model
from altlas.runtime.device import apply_memory_budget, describe_device, resolve_device
from altlas.scheduling.batcher import BatcherStats, BatchPolicy
from altlas.scheduling.spillover import SpillPolicy
from altlas.settings import Settings

__all__ = [
    "InsufficientMemoryError",
    "ModelManager",
    "ModelUnavailableError",
    "WrongTaskError",
    "describe_device",
]

log = logging.getLogger("altlas.orchestrator")


@dataclass
class _Entry:
    """A registered model as the manager keeps it; what is loaded of it is in `loaded`."""

    spec: ModelSpec
    status: str = "unloaded"  # unloaded | loading | loaded | failed
    error: str | None = None
    reserve_bytes: int = 0  # activations of its largest batch (estimated, or the warm-up's peak)
    load_ms: float | None = None
    warmup_ms: float | None = None


class ModelManager:
    """Loads, places, evicts, unloads and swaps the registered models; `loaded` is what requests
    lease them from."""

    def __init__(self, registry: Registry, settings: Settings) -> None:
        self.registry = registry
        self.settings = settings
        self.cache_dir = settings.data_dir / "cache" / "models"
        self.loaded = LoadedModels(self.load)  # what requests lease; this publishes to it
        self._entries: dict[str, _Entry] = {}
        for spec in registry.all():
            self._entries[spec.name] = _Entry(spec)
            self.loaded.add(spec.name, spec.task)
        self._lock = threading.Lock()  # guards _entries
        self._loading = threading.Lock()  # one load at a time: GPU bytes are attributed by difference
        self._placement: dict[str, str | None] = {}  # why a model sits where it does (or was unloaded)
        self.counters = MemoryCounters()  # changed only under _loading
        self._retired_oom_splits = 0  # of backends closed since start (counters only grow)
        self._retired_spillovers = 0
        self._capped: set[str] = set()  # GPUs whose allocator is held to gpu_memory_gb
        # ALTLAS_EMBEDDING_MODEL: the folder the command embedding model loads from, whatever
        # its registered versions say (relative to the working directory, as for `altlas embed`)
        self._sources: dict[str, str] = {}
        if settings.embedding_model:
            folder = Path(settings.embedding_model).expanduser().absolute()
            self._sources[settings.command_embedding_model] = str(folder)

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelManager:
        return cls(Registry(settings.data_dir / "models.yaml"), settings)

    # status

    def _entry(self, name: str) -> _Entry:
        with self._lock:
            entry = self._entries.get(name)
        if entry is None:
            raise unknown_model(name)
        return entry

    def status(self, name: str) -> dict[str, Any]:
        entry = self._entry(name)
        spec = self.registry.get(name)
        loaded, usage = self.loaded.get(name), self.loaded.usage(name)
        return {
            "name": name,
            "task": spec.task,
            "backend": spec.backend,
            "status": entry.status,
            "error": entry.error,
            "device": loaded.device if loaded is not None else None,
            "gpu_bytes": loaded.gpu_bytes if loaded is not None else 0,
            "loaded_version": loaded.version if loaded is not None else None,
            "active_version": spec.active,
            "versions": [
                {"version": v, "source": s, "active": v == spec.active} for v, s in spec.versions.items()
            ],
            "device_policy": spec.device,
            "placement": self._placement.get(name),
            "precision": spec.precision,
            "load_at_start": spec.load_at_start,
            "pinned": spec.pinned,
            "reserve_bytes": entry.reserve_bytes,
            **_backend_status(loaded.backend if loaded is not None else None),
            "load_ms": entry.load_ms,
            "warmup_ms": entry.warmup_ms,
            "last_used": usage.last_used,
            "requests": usage.requests,
        }

    def names(self) -> list[str]:
        with self._lock:
            return list(self._entries)

    def batchers(self) -> list[tuple[str, str, BatcherStats]]:
        """(model, device, stats) of every dynamic batcher of the loaded models (a CPU replica's too)."""
        return [
            (name, batcher.device.split(" ")[0], batcher.stats)
            for name, _, loaded in self._loaded_entries()
            for batcher in loaded.backend.batchers()
        ]

    def _loaded_entries(self) -> list[tuple[str, _Entry, Loaded]]:
        """(name, entry, what is loaded of it) of each loaded model."""
        with self._lock:
            entries = list(self._entries.items())
        held = [(name, entry, self.loaded.get(name)) for name, entry in entries]
        return [(name, entry, loaded) for name, entry, loaded in held if loaded is not None]

    def in_flight(self, name: str) -> int:
        """Requests queued or running on the model (0 when it is not loaded)."""
        loaded = self.loaded.get(name)
        return loaded.backend.in_flight() if loaded is not None else 0

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
            current = self.loaded.get(name)
            if current is not None and current.version == version:
                return self.status(name)
            if current is None:
                entry.status = "loading"
            try:
                built = self._build(replace(spec, active=version))
            except Exception as exc:  # the entry is left as it was, or failed if it held nothing
                if isinstance(exc, AltlasError):
                    reason = exc.message
                else:  # a fault of ours, not of the model: its trace goes to the log only
                    log.exception("model load failed", extra={"model": name, "version": version})
                    reason = "an internal error; the server's log has it"
                if current is None:
                    entry.status, entry.error = "failed", reason
                log.warning(
                    "model failed to load", extra={"model": name, "version": version, "reason": reason}
                )
                error = (
                    InsufficientMemoryError
                    if isinstance(exc, InsufficientMemoryError)
                    else ModelUnavailableError
                )
                raise error(f"model {name!r} failed to load: {reason}", field="model") from None
            old = self.loaded.publish(name, Loaded(built.backend, version, built.device, built.gpu_bytes))
            entry.reserve_bytes = built.reserve_bytes
            entry.load_ms, entry.warmup_ms = built.load_ms, built.warmup_ms
            entry.status, entry.error = "loaded", None
            self.counters.loads += 1
            if old is not None:  # a version swap: leases in flight keep the old backend until they end
                self._retire(old.backend)
            facts = {"model": name, "version": version, "device": built.device, "gpu_bytes": built.gpu_bytes,
                     "reserve_bytes": built.reserve_bytes, "replica": built.backend.replica_device(),
                     "load_ms": round(built.load_ms, 1), "warmup_ms": round(built.warmup_ms, 1)}  # fmt: skip
            if built.backend.decode_path is not None:
                facts["decode_path"] = built.backend.decode_path
            log.info("model loaded", extra=facts)
        return self.status(name)

    def _build(self, spec: ModelSpec) -> _Built:
        started = time.perf_counter()
        path = resolve_source(self._sources.get(spec.name, spec.source), self.settings.data_dir)
        policy = spec.device if spec.device != "auto" else self.settings.device
        try:
            device = resolve_device(policy)
        except InvalidInputError as exc:
            raise InvalidInputError(exc.message, field="device") from None
        spill = self.spill_policy(spec)
        placement, reserve = None, 0
        if device.type == "cuda":  # may unload idle models, or go to the CPU (auto), or refuse
            device, placement, reserve = self._place(spec, path, device, insist=policy != "auto")
        before = _allocated(device)
        backend = self._construct(spec, path, device)
        replica = None
        try:
            if spill is not None and device.type == "cuda":  # the same model in fp32 on the CPU
                replica = self._construct(replace(spec, precision="fp32"), path, torch.device("cpu"))
            loaded = time.perf_counter()
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            backend.warmup(list(spec.warmup))
            after = _allocated(device)
            if device.type == "cuda":  # what the warm-up's batch needed above the weights
                reserve = max(reserve, int(torch.cuda.max_memory_allocated(device)) - after)
            if replica is not None and spill is not None:
                replica.warmup(list(spec.warmup))
                add_cpu_replica(backend, replica, spill)
        except BaseException:
            for part in (backend, replica):
                if part is not None:
                    part.close()
            raise
        warmed = time.perf_counter()
        self._placement[spec.name] = placement
        return _Built(backend, describe_device(backend.device), max(0, after - before), reserve,
                      (loaded - started) * 1e3, (warmed - loaded) * 1e3)  # fmt: skip

    def _construct(self, spec: ModelSpec, path: Path, device: torch.device) -> Backend:
        """The backend on `device`, with loading failures told as input errors."""
        try:
            return build_backend(spec, path, device, self.cache_dir, self.batch_policy(spec, device))
        except torch.OutOfMemoryError:
            gc.collect()
            torch.cuda.empty_cache()
            raise InvalidInputError(f"out of GPU memory on {device} while loading", field="device") from None
        except AltlasError as exc:
            if exc.field != "source":
                raise
            raise _unreadable(spec, path, exc) from None
        except Exception as exc:  # a loader's own error, of whatever type: the file is no such model
            raise _unreadable(spec, path, exc) from None

    def _place(
        self, spec: ModelSpec, path: Path, device: torch.device, insist: bool
    ) -> tuple[torch.device, str, int]:
        """(where the model goes, why, its activation reserve) for a load headed to GPU `device`.

        Idle, unpinned models are unloaded if that makes room; without room, `insist` (an
        explicit GPU policy) refuses the load, otherwise it goes to the CPU."""
        budget = self._budget(device)
        self._cap_allocator(device)
        tokens = self.batch_policy(spec, device).max_batch_tokens
        reserve = activation_reserve(spec.task, path, tokens, budget)
        room = plan_room(estimate_bytes(path) + reserve, budget, self._residents(device, spec.name))
        for name in room.evict:
            self._evict(name, device, spec.name)
        if room.fits:
            return device, f"on {device}: {room.reason}", reserve
        if insist:
            self.counters.refusals += 1
            log.warning(
                "GPU load refused", extra={"model": spec.name, "device": str(device), "reason": room.reason}
            )
            raise InsufficientMemoryError(f"not enough GPU memory on {device}: {room.reason}", field="device")
        self.counters.cpu_fallbacks += 1
        return torch.device("cpu"), f"on the CPU: {room.reason}", 0

    def batch_policy(self, spec: ModelSpec, device: torch.device) -> BatchPolicy:
        """The settings' batching, queue bound and wait, overridden by the model's options."""
        base = BatchPolicy.from_settings(self.settings, device.type)
        options = spec.options
        try:
            return BatchPolicy(
                max_batch_tokens=int(options.get("max_batch_tokens", base.max_batch_tokens)),
                max_wait_ms=float(options.get("max_wait_ms", base.max_wait_ms)),
                max_queue=int(options.get("max_queue", base.max_queue)),
                enabled=bool(options.get("batching", base.enabled)),
            )
        except (TypeError, ValueError):
            raise InvalidInputError(
                "max_batch_tokens, max_wait_ms and max_queue must be positive numbers", field="options"
            ) from None

    def spill_policy(self, spec: ModelSpec) -> SpillPolicy | None:
        """The model's spill-over to a CPU replica (options cpu_replica, spill_queue_depth,
        spill_wait_ms), or None without one."""
        options = spec.options
        wanted = options.get("cpu_replica", False)
        if not isinstance(wanted, bool):
            raise InvalidInputError("must be true or false", field="options.cpu_replica")
        if not wanted:
            return None
        if spec.task not in REPLICA_TASKS:
            raise InvalidInputError(
                f"{spec.task} models take no CPU replica ({', '.join(REPLICA_TASKS)} models do)",
                field="options.cpu_replica",
            )
        default = SpillPolicy()
        try:
            return SpillPolicy(
                queue_depth=int(options.get("spill_queue_depth", default.queue_depth)),
                wait_ms=float(options.get("spill_wait_ms", default.wait_ms)),
            )
        except (TypeError, ValueError):
            raise InvalidInputError(
                "spill_queue_depth must be a positive number and spill_wait_ms >= 0", field="options"
            ) from None

    # GPU memory

    def _budget(self, device: torch.device) -> int:
        total = int(torch.cuda.get_device_properties(device).total_memory)
        cap = self.settings.gpu_memory_gb
        return min(total, int(cap * 1e9)) if cap > 0 else total

    def _cap_allocator(self, device: torch.device) -> None:
        """Hold PyTorch's allocator to `gpu_memory_gb` on this card (once), so that a batch
        past the budget runs out of memory there and is split, rather than taking the card."""
        if self.settings.gpu_memory_gb > 0 and str(device) not in self._capped:
            apply_memory_budget(device, self.settings.gpu_memory_gb)
            self._capped.add(str(device))

    def _residents(self, device: torch.device, loading: str | None = None) -> list[Resident]:
        """The models loaded on `device` as the budget sees them; `loading` (its old version,
        during a swap) is never idle."""
        now = time.time()
        residents = []
        for name, entry, loaded in self._loaded_entries():
            last_used = self.loaded.usage(name).last_used
            if not _on(loaded.device, device):
                continue
            recent = last_used is not None and now - last_used < IDLE_AFTER_S
            idle = name != loading and not recent and loaded.backend.in_flight() == 0
            residents.append(Resident(name, loaded.gpu_bytes + entry.reserve_bytes, entry.spec.pinned,
                                      idle, last_used or 0.0))  # fmt: skip
        return residents

    def _evict(self, name: str, device: torch.device, for_model: str) -> None:
        """Unload `name` to make room for `for_model` (under _loading)."""
        self._release(name)
        self._placement[name] = f"unloaded from {device} to make room for {for_model!r}"
        self.counters.evictions += 1
        log.info("model evicted", extra={"model": name, "device": str(device), "for_model": for_model})

    def memory_report(self) -> dict[str, Any]:
        """Per GPU: its budget, the bytes the loaded models account for and by whom; and the
        counters since start (evictions, refusals, CPU fallbacks, OOM batch splits, spill-overs)."""
        held_now = self._loaded_entries()
        cards = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
        models: dict[str, list[dict[str, Any]]] = {card: [] for card in cards}
        for name, entry, loaded in held_now:
            if loaded.device.startswith("cuda"):
                models.setdefault(loaded.device.split(" ")[0], []).append({
                    "name": name, "weights_bytes": loaded.gpu_bytes, "reserve_bytes": entry.reserve_bytes,
                    "pinned": entry.spec.pinned, "last_used": self.loaded.usage(name).last_used,
                })  # fmt: skip
        devices = []
        for card, held in models.items():
            accounted = sum(m["weights_bytes"] + m["reserve_bytes"] for m in held)
            devices.append({"device": card, "budget_bytes": self._budget(torch.device(card)),
                            "accounted_bytes": accounted, "models": held})  # fmt: skip
        backends = [loaded.backend for _, _, loaded in held_now]
        counters = {
            **asdict(self.counters),
            "oom_splits": self._retired_oom_splits + sum(b.oom_splits() for b in backends),
            "spillovers": self._retired_spillovers + sum(b.spillovers() for b in backends),
        }
        return {"devices": devices, "counters": counters}

    # unloading

    def unload(self, name: str) -> dict[str, Any]:
        """Let go of the model; reports the GPU memory allocated before and after."""
        self._entry(name)
        with self._loading:
            before, after = self._release(name)
        return {**self.status(name), "gpu_bytes_before": before, "gpu_bytes_after": after,
                "gpu_bytes_freed": max(0, before - after)}  # fmt: skip

    def _release(self, name: str) -> tuple[int, int]:
        """Unload (under _loading); (GPU bytes allocated before, after)."""
        entry, old = self._entry(name), self.loaded.withdraw(name)
        device = old.backend.device if old is not None else None
        before = _allocated(device)
        entry.status, entry.reserve_bytes = "unloaded", 0
        if old is not None:
            self._retire(old.backend)
            self.counters.unloads += 1
            del old
        gc.collect()
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)
            # cuBLAS keeps a workspace per stream a graph was captured on (32 MiB on Hopper)
            clear_workspaces = getattr(torch._C, "_cuda_clearCublasWorkspaces", None)
            if clear_workspaces is not None:
                clear_workspaces()
            torch.cuda.empty_cache()
        return before, _allocated(device)

    def _retire(self, backend: Backend) -> None:
        """Close a backend (it finishes what it accepted), keeping its counts in the totals."""
        backend.close()
        self._retired_oom_splits += backend.oom_splits()
        self._retired_spillovers += backend.spillovers()

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

    def register_from_client(self, data: Any, where: str = "body") -> dict[str, Any]:
        """Register a model a client sent (its JSON shape, checked whole first); its sources must
        lie under the model roots (`<data dir>/models`, `model_roots`: the same answer whether
        a file outside exists or not)."""
        spec = ModelSpec.from_dict(data, where=where)
        for version, source in spec.versions.items():
            try:
                allowed = source_allowed(source, self.settings.data_dir, self.settings.model_roots)
            except InvalidInputError as exc:  # a package that is not installed
                raise InvalidInputError(exc.message, field=f"{where}.versions.{version}") from None
            if not allowed:
                raise InvalidInputError(
                    "a model's files must lie under <data dir>/models or a folder of ALTLAS_MODEL_ROOTS "
                    "(symbolic links and '..' resolved)",
                    field=f"{where}.versions.{version}",
                )
        return self.register(spec)

    def register(self, spec: ModelSpec) -> dict[str, Any]:
        """Register a checked spec (or add its versions to the model of its name)."""
        spec = self.registry.register(spec)
        with self._lock:
            entry = self._entries.setdefault(spec.name, _Entry(spec))
            entry.spec = spec
        self.loaded.add(spec.name, spec.task)
        return self.status(spec.name)


def _unreadable(spec: ModelSpec, path: Path, exc: Exception) -> InvalidInputError:
    """A load failure as the client hears it: that the file is no such model, never the
    loader's words (they may quote the file or name other files); those go to the log."""
    log.warning(
        "model file unreadable",
        extra={"model": spec.name, "path": str(path), "reason": f"{type(exc).__name__}: {str(exc)[:500]}"},
    )
    return InvalidInputError(
        f"{path.name} could not be loaded as a {spec.backend} {spec.task} model; the server's log says why",
        field="source",
    )


def _allocated(device: torch.device | None) -> int:
    if device is None or device.type != "cuda":
        return 0
    torch.cuda.synchronize(device)
    return int(torch.cuda.memory_allocated(device))


@dataclass(frozen=True)
class _Built:
    backend: Backend
    device: str  # described, e.g. "cuda:0 NVIDIA H100 80GB HBM3"
    gpu_bytes: int
    reserve_bytes: int
    load_ms: float
    warmup_ms: float


def _on(described: str | None, device: torch.device) -> bool:
    return described is not None and described.split(" ")[0] == str(device)


def _backend_status(backend: Backend | None) -> dict[str, Any]:
    """What a model's backend adds to its status: its CPU replica, spill-overs and OOM splits,
    and for a generation model how it decodes (None and zeros when it is not loaded)."""
    if backend is None:
        return {"replica": None, "spillovers": 0, "oom_splits": 0, "decode_path": None,
                "decode_fallback": None, "decoding": None}  # fmt: skip
    return {
        "replica": backend.replica_device(),
        "spillovers": backend.spillovers(),
        "oom_splits": backend.oom_splits(),
        "decode_path": backend.decode_path,
        "decode_fallback": backend.decode_fallback,
        "decoding": backend.decoding(),
    }
