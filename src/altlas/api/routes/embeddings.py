"""POST /v1/embed: texts in, vectors out."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from altlas.embeddings.service import MAX_TEXTS_PER_REQUEST, EmbeddingService
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


def embeddings_router(service: EmbeddingService) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["embeddings"])

    @router.post("/embed", summary="Embed texts with the sentence-embedding model")
    async def embed(body: EmbedRequest, request: Request) -> dict[str, Any]:
        """Through the service's batcher: 504 past the request time limit, and a client that
        leaves (or times out) stops its request's work that has not run."""
        texts = body.texts
        if service.loaded:
            future = service.submit(texts)
        else:  # loading takes seconds: on a worker thread
            future = await run_in_threadpool(service.submit, texts)
        timeout_s = service.settings.request_timeout_s
        served = await wait_for(future, timeout_s, request.receive, f"embedding {len(texts)} texts")
        if len(texts) <= _SMALL_INPUT:  # a worker-thread hop costs more than a small answer
            return service.answer(served.value, normalize=body.normalize, encoding=body.encoding)
        return await run_in_threadpool(
            service.answer, served.value, normalize=body.normalize, encoding=body.encoding
        )

    return router
