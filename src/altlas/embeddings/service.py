"""The embedding service's core, free of HTTP: one engine, loaded on first use, shared by requests."""

from __future__ import annotations

import base64
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from altlas.embeddings.engine import Embedder
from altlas.errors import InputTooLargeError
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
        self._load_lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._embedder is not None

    def embedder(self) -> Embedder:
        if self._embedder is None:
            with self._load_lock:
                if self._embedder is None:
                    embedder = Embedder.from_settings(self.settings)
                    embedder.warmup()
                    self._embedder = embedder
        return self._embedder

    def embed(
        self, texts: Sequence[str], *, normalize: bool = True, encoding: str = "float"
    ) -> dict[str, Any]:
        if len(texts) > MAX_TEXTS_PER_REQUEST:
            raise InputTooLargeError(
                f"has {len(texts):,} texts; the limit is {MAX_TEXTS_PER_REQUEST:,} per request", field="texts"
            )
        embedder = self.embedder()
        vectors = embedder.encode(texts, normalize=normalize)
        data: list[Any] = [encode_base64(v) for v in vectors] if encoding == "base64" else vectors.tolist()
        return {
            "model": embedder.name,
            "dimension": embedder.dimension,
            "count": len(texts),
            "encoding": encoding,
            "device": embedder.describe(),
            "embeddings": data,
        }
