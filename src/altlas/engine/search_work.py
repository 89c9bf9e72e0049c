"""The search collections' model-side work, wherever it runs (an engine process, or the API's own
process): a Search, AddDocuments, RemoveDocuments or ListIndexes message in, its reply out.

It runs on a worker thread: adding and searching embed texts with a registered embedding model
(its batcher, at most the message's time limit), stopping at the next check once `gone` is set
(the client left: ClientGone).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, TimeoutError
from typing import Any, cast

import numpy as np

from altlas.engine import messages as wire
from altlas.errors import InvalidInputError, TimedOutError
from altlas.orchestrator.backends import EmbeddingBackend
from altlas.orchestrator.serving import Lease, LoadedModels
from altlas.scheduling.waiting import ClientGone
from altlas.search.collections import Collections, Document

__all__ = ["collection_work"]

_CHECK_S = 0.25  # how often a waiting embedding looks whether its client left


def collection_work(
    message: wire.Collecting,
    models: LoadedModels,
    collections: Collections | None,
    gone: threading.Event | None,
) -> wire.Reply:
    """`message`'s reply (see the module's docs)."""
    if collections is None:
        raise InvalidInputError("this engine keeps no search collections", field="index")
    if isinstance(message, wire.ListIndexes):
        names = [(str(c["name"]), str(c["model"]), cast(int, c["documents"])) for c in collections.names()]
        return wire.Indexes(message.id, names)
    if isinstance(message, wire.RemoveDocuments):
        return wire.Done(message.id, collections.remove(message.index, message.ids))
    if isinstance(message, wire.AddDocuments):
        documents = [Document(ident, text) for ident, text in message.documents]
        embed = _Embedder(models, message.model, message.timeout_s, gone)
        size = collections.add(message.index, documents, message.model, embed)
        return wire.Done(message.id, len(documents), size)
    model = collections.model_of(message.index)
    embed = _Embedder(models, model, message.timeout_s, gone)
    started = time.perf_counter()
    results = collections.search(message.index, message.queries, message.k, embed)
    processing_ms = (time.perf_counter() - started) * 1e3
    lease = embed.lease
    assert lease is not None
    served = wire.Served(
        processing_ms, embed.queue_ms, len(message.queries), 1, embed.served_on or lease.device, lease.device,
        lease.gpu_bytes,
    )  # fmt: skip
    hits = [[(hit.id, hit.text, hit.score) for hit in row] for row in results]
    return wire.Hits(message.id, model, hits, served)


class _Embedder:
    """Texts to unit vectors with a registered embedding model; remembers the lease for the cost.
    Its embedding stops (what has not run is dropped) past the time limit, or once `gone` is
    set: the client left."""

    def __init__(
        self, models: LoadedModels, model: str, timeout_s: float, gone: threading.Event | None
    ) -> None:
        self.models = models
        self.model = model
        self.timeout_s = timeout_s
        self.gone = gone
        self.lease: Lease | None = None
        self.queue_ms = 0.0
        self.served_on = ""  # the device of the last batch (a CPU replica may take overflow)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        lease = self.models.lease(self.model, "embedding")
        backend = lease.backend
        assert isinstance(backend, EmbeddingBackend)
        self.lease = lease
        future, _request = backend.submit(list(texts))
        try:
            served = self._wait(future, self.timeout_s)
        finally:
            future.cancel()  # nothing once it is done
        self.queue_ms += served.queue_ms
        self.served_on = served.device
        return served.value  # type: ignore[no-any-return]

    def _wait(self, future: Future[Any], timeout_s: float) -> Any:
        deadline = time.monotonic() + timeout_s if timeout_s > 0 else math.inf
        while True:
            wait = min(deadline - time.monotonic(), _CHECK_S if self.gone is not None else math.inf)
            try:
                return future.result(None if wait == math.inf else max(0.0, wait))
            except TimeoutError:
                if self.gone is not None and self.gone.is_set():
                    raise ClientGone() from None
                if time.monotonic() >= deadline:
                    raise TimedOutError(
                        f"embedding took longer than the {timeout_s:g} s limit", field="timeout"
                    ) from None
