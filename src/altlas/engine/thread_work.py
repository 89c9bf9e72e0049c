"""Requests answered once, from a worker thread (altlas.engine.messages.OnThread), wherever the
models live: the search collections' (altlas.engine.search_work) and the registry's
(altlas.engine.admin_work)."""

from __future__ import annotations

import threading

from altlas.engine import messages as wire
from altlas.engine.admin_work import admin_work
from altlas.engine.search_work import collection_work
from altlas.orchestrator.manager import ModelManager
from altlas.orchestrator.serving import LoadedModels
from altlas.search.collections import Collections

__all__ = ["thread_work"]


def thread_work(
    message: wire.OnThread, models: LoadedModels, collections: Collections | None,
    manager: ModelManager | None, gone: threading.Event | None,
) -> wire.Reply:  # fmt: skip
    """`message`'s reply; `gone` set (the client left) stops a collection's work (ClientGone)."""
    if isinstance(message, wire.Admin):
        return admin_work(message, manager)
    return collection_work(message, models, collections, gone)
