"""The command embedding model: the registered sentence-embedding model (settings
`command_embedding_model`, all-minilm-l6-v2 by default) that POST /v1/embed, command similarity
(/v1/similar-commands, /v1/dedupe) and the bulk segmentation job's type prototypes use.

They lease it from the loaded models like any other request, so it has one owner, the model
manager: its GPU budget and eviction, its batcher (their requests share forward passes with
/v1/embeddings), its metrics. A model that is not loaded is loaded by the first lease that
needs it (`leased`, from a worker thread: loading takes seconds).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

from altlas.errors import NotFoundError, command_model_missing
from altlas.orchestrator.backends import EmbeddingBackend
from altlas.orchestrator.serving import Lease, LoadedModels

__all__ = ["CommandEmbedder"]

T = TypeVar("T")


class CommandEmbedder:
    """Leases of the command embedding model `name` from `models`."""

    def __init__(self, models: LoadedModels, name: str) -> None:
        self.models = models
        self.name = name

    def leased(self) -> EmbeddingBackend:
        """The model's backend for one request, loaded here if it is not (call from a worker thread)."""
        return _embedding(self._registered(self.models.lease))

    def encode(self, texts: Sequence[str], field: str) -> np.ndarray:
        """Unit vectors of any number of texts, waiting in this thread (a large input runs in
        pieces that take turns with other requests); `field` names the texts in errors."""
        return self.leased().encode(list(texts), field=field).value

    def _registered(self, lease: Callable[[str, str], T]) -> T:
        try:
            return lease(self.name, "embedding")
        except NotFoundError:  # the server's configuration, not the client's request, is at fault
            raise command_model_missing(self.name) from None


def _embedding(lease: Lease) -> EmbeddingBackend:
    backend = lease.backend
    assert isinstance(backend, EmbeddingBackend)  # the lease checked its task
    return backend
