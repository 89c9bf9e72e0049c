"""POST /v1/embed: texts in, vectors of the command embedding model out."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from altlas.api.vectors import MAX_TEXTS_PER_REQUEST, encode_base64
from altlas.engine.service import Embedded, ModelService
from altlas.errors import InputTooLargeError, NotFoundError, command_model_missing
from altlas.logs import request_id_var

__all__ = ["embeddings_router"]

_SMALL_INPUT = 32  # texts whose answer is built right on the event loop


class EmbedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    texts: list[StrictStr] = Field(min_length=1, description=f"1 to {MAX_TEXTS_PER_REQUEST} texts")
    normalize: StrictBool = Field(default=True, description="L2-normalise (cosine = dot product)")
    encoding: Literal["float", "base64"] = Field(
        default="float", description="float lists, or base64 of little-endian float32 per vector"
    )


def embeddings_router(service: ModelService, model: str, timeout_s: float) -> APIRouter:
    """The route, over the models' `service`: `model` is the command embedding model (settings
    command_embedding_model); `timeout_s` the request time limit (0: none)."""
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
        try:
            got = await service.embed(
                model, texts, timeout_s, request_id_var.get() or "", normalize=body.normalize,
                receive=request.receive, field="texts",
            )  # fmt: skip
        except NotFoundError as exc:
            raise command_model_missing(model) from exc
        if len(texts) <= _SMALL_INPUT:  # a worker-thread hop costs more than a small answer
            return _answer(model, got, body.encoding)
        return await run_in_threadpool(_answer, model, got, body.encoding)

    return router


def _answer(model: str, got: Embedded, encoding: str) -> dict[str, Any]:
    """The body of one request's answer, from its vectors."""
    vectors = got.vectors
    data: list[Any] = [encode_base64(v) for v in vectors] if encoding == "base64" else vectors.tolist()
    return {
        "model": model,
        "dimension": got.header.dim,
        "count": len(vectors),
        "encoding": encoding,
        "device": got.header.served.model_device,
        "embeddings": data,
    }
