"""An Engine (altlas.engine.core) serving on a thread of the test's process."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from altlas.engine.core import Engine
from altlas.orchestrator.manager import ModelManager
from altlas.orchestrator.serving import Loaded, LoadedModels
from altlas.search.collections import Collections


@contextmanager
def serving(
    models: LoadedModels,
    address: str,
    collections: Collections | None = None,
    manager: ModelManager | None = None,
) -> Iterator[Engine]:
    """An Engine over `models` (keeping `collections`; Admin requests to `manager`) listening at
    `address` until the block ends."""
    engine = Engine(models, address, collections=collections, manager=manager)
    stop = threading.Event()
    thread = threading.Thread(target=engine.serve, args=(stop,), daemon=True)
    thread.start()
    try:
        assert engine.bound.wait(30), "the engine did not bind"
        yield engine
    finally:
        stop.set()
        thread.join(30)


def preloaded(backends: dict[str, tuple[str, object]], **registered: str) -> LoadedModels:
    """LoadedModels serving `backends` (name -> (task, backend)) as loaded and knowing
    `registered` (name=task) as not loaded; loading one fails the test."""

    def refuse(name: str) -> None:
        raise AssertionError(f"tried to load {name!r}")

    models = LoadedModels(refuse)
    for name, (task, backend) in backends.items():
        models.add(name, task)
        models.publish(name, Loaded(backend, "1", "cpu", 0))  # type: ignore[arg-type]
    for name, task in registered.items():
        models.add(name, task)
    return models
