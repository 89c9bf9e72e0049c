"""POST /v1/embed: texts in, vectors out."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from altlas.embeddings.service import MAX_TEXTS_PER_REQUEST, EmbeddingService

__all__ = ["embeddings_router"]


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
    async def embed(body: EmbedRequest) -> dict[str, Any]:
        return await run_in_threadpool(
            service.embed, body.texts, normalize=body.normalize, encoding=body.encoding
        )

    return router
