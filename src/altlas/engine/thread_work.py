"""Requests answered once, from a worker thread (altlas.engine.messages.OnThread), wherever the
models live: the search collections' (altlas.engine.search_work), the registry's
(altlas.engine.admin_work), command similarity's (altlas.search.service.CommandSimilarity) and
the models' metrics, each over what the serving process keeps (`Keeps`)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from altlas.engine import messages as wire
from altlas.engine.admin_work import admin_work
from altlas.engine.search_work import collection_work
from altlas.errors import ModelUnavailableError
from altlas.observability.metrics import Collected
from altlas.orchestrator.manager import ModelManager
from altlas.orchestrator.serving import LoadedModels
from altlas.search.collections import Collections
from altlas.search.service import CommandSimilarity
from altlas.settings import Settings

__all__ = ["Keeps", "thread_work"]


@dataclass(frozen=True)
class Keeps:
    """What a process serving models keeps beside them, each if it has one: the search
    collections, the manager that loads the models (the registry's operations), the index of
    stored commands (command similarity), the models' metrics."""

    collections: Collections | None = None
    manager: ModelManager | None = None
    similarity: CommandSimilarity | None = None
    metrics: Collected | None = None

    @classmethod
    def of(cls, settings: Settings, manager: ModelManager) -> Keeps:
        """All of them, as a server keeps them under `settings.data_dir`, for `manager`'s models
        (the stored commands embedded with settings.command_embedding_model)."""
        from altlas.observability.models import model_side_metrics
        from altlas.orchestrator.command_model import CommandEmbedder
        from altlas.runtime.device import resolve_device
        from altlas.storage.plan_store import PlanStore

        collections = Collections(
            settings.data_dir / "collections", device=str(resolve_device(settings.device))
        )
        embedder = CommandEmbedder(manager.loaded, settings.command_embedding_model)
        similarity = CommandSimilarity(PlanStore(settings.data_dir), embedder)
        return cls(collections, manager, similarity, model_side_metrics(manager))


def thread_work(
    message: wire.OnThread, models: LoadedModels, keeps: Keeps, gone: threading.Event | None
) -> wire.Reply:
    """`message`'s reply; `gone` set (the client left) stops a collection's work (ClientGone)."""
    if isinstance(message, wire.Admin):
        return admin_work(message, keeps.manager)
    if isinstance(message, wire.Stats):
        return wire.Result(message.id, b"" if keeps.metrics is None else keeps.metrics.exposition())
    if isinstance(message, wire.SimilarCommands | wire.Dedupe):
        similarity = keeps.similarity
        if similarity is None:
            raise ModelUnavailableError("this engine keeps no index of stored commands", field="command")
        if isinstance(message, wire.SimilarCommands):
            return wire.Result(message.id, similarity.similar(message.command, message.k))
        return wire.Result(message.id, similarity.dedupe(message.commands, message.threshold))
    return collection_work(message, models, keeps.collections, gone)
