"""An Engine (altlas.engine.core) serving on a thread of the test's process."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from altlas.embeddings import default_model_path
from altlas.engine.core import Engine
from altlas.engine.thread_work import Keeps
from altlas.orchestrator.backends import EmbeddingBackend
from altlas.orchestrator.serving import Loaded, LoadedModels
from altlas.scheduling.batcher import BatchPolicy

from .embedding_cases import model_path


@contextmanager
def serving(models: LoadedModels, address: str, keeps: Keeps | None = None) -> Iterator[Engine]:
    """An Engine over `models` (and what it `keeps`) listening at `address` until the block ends."""
    engine = Engine(models, address, keeps=keeps)
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


@contextmanager
def minilm_on_cpu() -> Iterator[EmbeddingBackend]:
    """The real all-MiniLM-L6-v2 as a loaded embedding model's backend on the CPU (name "minilm")."""
    served = EmbeddingBackend(
        "minilm", model_path() or default_model_path(), torch.device("cpu"), "fp32", BatchPolicy()
    )
    try:
        yield served
    finally:
        served.close()
