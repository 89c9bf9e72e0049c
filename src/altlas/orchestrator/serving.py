"""The request path: the loaded models as requests find them, and the leases requests take.

A request takes a *lease* on a model (`LoadedModels.lease_if_loaded`: a dict read and a task
check), then submits its work to the backend's own scheduler (a dynamic batcher, see
altlas.scheduling). The lease keeps that backend alive until the request ends. Loading,
placement, eviction and version swaps are the model manager's (altlas.orchestrator.manager):
it publishes a model here once it is loaded and warmed up, publishes the new version in its
place on a swap, and withdraws it on unload. So a request for a loaded model never walks
through that code, and unloading or activating another version never breaks a request in
flight: the old backend stops taking requests and finishes those it accepted.

A model that is not loaded is loaded for the request that asks for it (`lease`, from a worker
thread: loading takes seconds), through the loader the manager gives.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from altlas.errors import ModelUnavailableError, NotFoundError, WrongTaskError

if TYPE_CHECKING:
    from altlas.orchestrator.backends import Backend

__all__ = ["Lease", "Loaded", "LoadedModels", "Usage", "unknown_model"]


@dataclass(frozen=True, slots=True)
class Loaded:
    """A loaded model as the manager publishes it."""

    backend: Backend
    version: str
    device: str  # described, e.g. "cuda:0 NVIDIA H100 80GB HBM3" or "cpu"
    gpu_bytes: int  # weights and buffers, measured after warm-up


@dataclass(frozen=True)
class Lease:
    """A loaded model held for one request."""

    name: str
    backend: Backend
    device: str  # e.g. "cuda:0 NVIDIA H100 80GB HBM3" or "cpu"
    gpu_bytes: int


@dataclass
class Usage:
    """A registered model's requests (leases taken) and its last use, counted over the server's
    life across loads and unloads; the manager leaves recently used models loaded."""

    requests: int = 0
    last_used: float | None = None  # time.time() of the last lease


@dataclass
class _Slot:
    """One registered model: its task, what is loaded of it (None when nothing is), its usage."""

    task: str
    loaded: Loaded | None = None
    usage: Usage = field(default_factory=Usage)


def unknown_model(name: str) -> NotFoundError:
    """The answer to a request for a model that is not registered."""
    return NotFoundError(f"no model named {name!r}; GET /v1/models lists them", field="model")


class LoadedModels:
    """name -> the loaded model (backend, version, device), for every registered model.

    `load(name)` loads a model that a request asked for while it was not loaded (the manager's
    `load`); it raises with the reason when the model cannot be loaded."""

    def __init__(self, load: Callable[[str], object]) -> None:
        self._load = load
        self._slots: dict[str, _Slot] = {}
        self._lock = threading.Lock()  # guards the usage counts and the set of names

    # what the manager publishes

    def add(self, name: str, task: str) -> None:
        """Know a registered model (not loaded); a name known already stays as it is."""
        with self._lock:
            if name not in self._slots:
                self._slots[name] = _Slot(task)

    def publish(self, name: str, loaded: Loaded) -> Loaded | None:
        """Serve `loaded` for `name` from now on; what it served before (a swap's old version,
        for the manager to close), or None."""
        slot = self._slot(name)
        old, slot.loaded = slot.loaded, loaded
        return old

    def withdraw(self, name: str) -> Loaded | None:
        """Serve nothing for `name` from now on; what it served, or None."""
        slot = self._slot(name)
        old, slot.loaded = slot.loaded, None
        return old

    # what the manager reads

    def get(self, name: str) -> Loaded | None:
        """The loaded model of `name`, or None; NotFoundError for a name never registered."""
        return self._slot(name).loaded

    def usage(self, name: str) -> Usage:
        """The model's requests and last use, which its leases count (whether loaded or not)."""
        return self._slot(name).usage

    # requests

    def lease_if_loaded(self, name: str, task: str) -> Lease | None:
        """The lease, if the model is loaded; None if taking it would mean loading (a worker
        thread's job). Lets the event loop skip a thread hop on the hot path."""
        slot = self._slot(name)
        loaded = slot.loaded
        if loaded is None:
            return None
        _check_task(name, slot.task, task)
        return self._take(name, slot, loaded)

    def lease(self, name: str, task: str) -> Lease:
        """The model, loaded (here, if it is not: call from a worker thread), for one request."""
        slot = self._slot(name)
        _check_task(name, slot.task, task)
        if slot.loaded is None:
            self._load(name)
        loaded = slot.loaded
        if loaded is None:  # unloaded meanwhile
            raise ModelUnavailableError(f"model {name!r} was unloaded; load it again", field="model")
        return self._take(name, slot, loaded)

    def _take(self, name: str, slot: _Slot, loaded: Loaded) -> Lease:
        with self._lock:
            slot.usage.requests += 1
            slot.usage.last_used = time.time()
        return Lease(name, loaded.backend, loaded.device, loaded.gpu_bytes)

    def _slot(self, name: str) -> _Slot:
        slot = self._slots.get(name)
        if slot is None:
            raise unknown_model(name)
        return slot


def _check_task(name: str, has: str, wanted: str) -> None:
    if has != wanted:
        raise WrongTaskError(f"model {name!r} does {has}, not {wanted}", field="model")
