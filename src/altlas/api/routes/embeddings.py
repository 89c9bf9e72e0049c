"""POST /v1/embed: texts in, vectors of the command embedding model out."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from altlas.api.vectors import MAX_TEXTS_PER_REQUEST, encode_base64
from altlas.embeddings.engine import Embedder
from altlas.errors import InputTooLargeError
from altlas.orchestrator.command_model import CommandEmbedder
from altlas.scheduling.waiting import wait_for

__all__ = ["embeddings_router"]

_SMALL_INPUT = 32  # texts whose answer is built right on the event loop


class EmbedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    texts: list[StrictStr] = Field(min_length=1, description=f"1 to {MAX_TEXTS_PER_REQUEST} texts")
    normalize: StrictBool = Field(default=True, description="L2-normalise (cosine = dot product)")
    encoding: Literal["float", "base64"] = Field(
        default="float", description="float lists, or base64 of little-endian float32 per vector"
    )


def embeddings_router(embedder: CommandEmbedder, timeout_s: float) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["embeddings"])

    @router.post("/embed", summary="Embed texts with the sentence-embedding model")
    async def embed(body: EmbedRequest, request: Request) -> dict[str, Any]:
        """Through the model's batcher: 504 past the request time limit, and a client that
        leaves (or times out) stops its request's work that has not run."""
        texts = body.texts
        if len(texts) > MAX_TEXTS_PER_REQUEST:
            raise InputTooLargeError(
                f"has {len(texts):,} texts; the limit is {MAX_TEXTS_PER_REQUEST:,} per request", field="texts"
            )
        backend = embedder.leased_if_loaded()
        if backend is None:  # loading takes seconds: on a worker thread
            backend = await run_in_threadpool(embedder.leased)
        future, _ = backend.submit(texts, "texts", normalize=body.normalize)
        served = await wait_for(future, timeout_s, request.receive, f"embedding {len(texts)} texts")
        if len(texts) <= _SMALL_INPUT:  # a worker-thread hop costs more than a small answer
            return _answer(backend.embedder, served.value, body.encoding)
        return await run_in_threadpool(_answer, backend.embedder, served.value, body.encoding)

    return router


def _answer(embedder: Embedder, vectors: np.ndarray, encoding: str) -> dict[str, Any]:
    """The body of one request's answer, from its vectors."""
    data: list[Any] = [encode_base64(v) for v in vectors] if encoding == "base64" else vectors.tolist()
    return {
        "model": embedder.name,
        "dimension": embedder.dimension,
        "count": len(vectors),
        "encoding": encoding,
        "device": embedder.describe(),
        "embeddings": data,
    }
