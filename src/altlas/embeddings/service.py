"""The embedding service's core, free of HTTP: one engine, loaded on first use, shared by requests
through a dynamic batcher (altlas.embeddings.batched): requests share forward passes, a large one
runs in pieces that take turns with the others, and one whose caller gives up stops."""

from __future__ import annotations

import base64
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np

from altlas.embeddings.batched import TextBatcher, text_batcher, text_request
from altlas.embeddings.engine import Embedder
from altlas.errors import InputTooLargeError
from altlas.scheduling.batcher import BatchPolicy, Served
from altlas.settings import Settings

__all__ = ["MAX_TEXTS_PER_REQUEST", "EmbeddingService", "encode_base64"]

MAX_TEXTS_PER_REQUEST = 4096


def encode_base64(vector: np.ndarray) -> str:
    """A vector as base64 of little-endian float32 (what OpenAI's encoding_format=base64 sends)."""
    return base64.b64encode(np.ascontiguousarray(vector, dtype="<f4").tobytes()).decode("ascii")


class EmbeddingService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._embedder: Embedder | None = None
        self._batcher: TextBatcher | None = None
        self._load_lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the engine is loaded (submitting then costs no wait)."""
        return self._batcher is not None

    def embedder(self) -> Embedder:
        self._batched()
        assert self._embedder is not None
        return self._embedder

    def _batched(self) -> TextBatcher:
        if self._batcher is None:
            with self._load_lock:
                if self._batcher is None:
                    embedder = Embedder.from_settings(self.settings)
                    embedder.warmup()
                    policy = BatchPolicy.from_settings(self.settings, embedder.device.type)
                    # unnormalised: each request normalises its own vectors, if it asks to
                    batcher = text_batcher(embedder, embedder.name, policy, normalize=False)
                    self._embedder, self._batcher = embedder, batcher
        return self._batcher

    def submit(self, texts: Sequence[str]) -> Future[Served[np.ndarray]]:
        """Queue one request's texts (at most MAX_TEXTS_PER_REQUEST) for their unnormalised
        vectors; loads the engine on first use. Cancelling the future drops what has not run."""
        if len(texts) > MAX_TEXTS_PER_REQUEST:
            raise InputTooLargeError(
                f"has {len(texts):,} texts; the limit is {MAX_TEXTS_PER_REQUEST:,} per request", field="texts"
            )
        return self._batched().submit(text_request(texts, "texts"))

    def encode(self, texts: Sequence[str], field: str = "texts") -> np.ndarray:
        """Unit vectors of any number of texts, waiting in this thread (they take turns with
        requests, piece by piece); `field` names the texts in errors."""
        return _unit(self._batched().submit(text_request(texts, field)).result().value)

    def answer(
        self, vectors: np.ndarray, *, normalize: bool = True, encoding: str = "float"
    ) -> dict[str, Any]:
        """The body of one request's answer, from its vectors (as `submit` gave them)."""
        embedder = self.embedder()
        if normalize:
            vectors = _unit(vectors)
        data: list[Any] = [encode_base64(v) for v in vectors] if encoding == "base64" else vectors.tolist()
        return {
            "model": embedder.name,
            "dimension": embedder.dimension,
            "count": len(vectors),
            "encoding": encoding,
            "device": embedder.describe(),
            "embeddings": data,
        }


def _unit(vectors: np.ndarray) -> np.ndarray:
    """Rows L2-normalised (as torch.nn.functional.normalize: a zero row stays zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: np.ndarray = vectors / np.maximum(norms, 1e-12)
    return unit
