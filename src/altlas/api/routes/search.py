"""POST /v1/search and its collections: add documents (embedded by an embedding model), search by meaning."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from altlas.api.cost import request_cost
from altlas.errors import TimedOutError
from altlas.orchestrator.backends import EmbeddingBackend
from altlas.orchestrator.manager import Lease, ModelManager
from altlas.search.collections import Collections, Document

__all__ = ["SearchRequest", "run_search", "search_router"]

DEFAULT_MODEL = "all-minilm-l6-v2"


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: StrictStr = Field(min_length=1, max_length=256)
    text: StrictStr = Field(min_length=1, max_length=20_000)


class AddRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: StrictStr = DEFAULT_MODEL
    documents: list[DocumentIn] = Field(min_length=1, max_length=4096)


class RemoveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[StrictStr] = Field(min_length=1)


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: StrictStr
    query: StrictStr | list[StrictStr]
    k: StrictInt = Field(default=10, ge=1, le=1024)


class _Embedder:
    """Texts to unit vectors with a registered embedding model; remembers the lease for the cost."""

    def __init__(self, manager: ModelManager, model: str) -> None:
        self.manager = manager
        self.model = model
        self.lease: Lease | None = None
        self.queue_ms = 0.0
        self.served_on = ""  # the device of the last batch (a CPU replica may take overflow)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        lease = self.manager.lease(self.model, "embedding")
        backend = lease.backend
        assert isinstance(backend, EmbeddingBackend)
        self.lease = lease
        timeout_s = self.manager.settings.request_timeout_s
        try:
            served = backend.encode(list(texts), timeout_s or None)
        except TimeoutError:
            raise TimedOutError(
                f"embedding took longer than the {timeout_s:g} s limit", field="timeout"
            ) from None
        self.queue_ms += served.queue_ms
        self.served_on = served.device
        return served.value


def run_search(
    manager: ModelManager, collections: Collections, body: SearchRequest
) -> tuple[dict[str, Any], dict[str, str]]:
    """(response body, cost headers) of one search request."""
    queries = [body.query] if isinstance(body.query, str) else body.query
    model = collections.model_of(body.index)
    embed = _Embedder(manager, model)
    started = time.perf_counter()
    results = collections.search(body.index, queries, body.k, embed)
    processing_ms = (time.perf_counter() - started) * 1e3
    assert embed.lease is not None
    headers, cost = request_cost(
        embed.lease, processing_ms, embed.queue_ms, batch_size=len(queries), served_on=embed.served_on
    )
    rows = [[{"id": h.id, "text": h.text, "score": h.score} for h in hits] for hits in results]
    return {"index": body.index, "model": model, "results": rows, "altlas": cost}, headers


def search_router(manager: ModelManager, collections: Collections) -> APIRouter:
    router = APIRouter(prefix="/v1/search", tags=["search"])

    def add(name: str, body: AddRequest) -> dict[str, Any]:
        documents = [Document(d.id, d.text) for d in body.documents]
        size = collections.add(name, documents, body.model, _Embedder(manager, body.model))
        return {"index": name, "model": body.model, "added": len(documents), "documents": size}

    def search(body: SearchRequest) -> JSONResponse:
        result, headers = run_search(manager, collections, body)
        return JSONResponse(result, headers=headers)

    @router.get("/indexes", summary="The collections: name, embedding model, number of documents")
    def list_indexes() -> dict[str, Any]:
        return {"data": collections.names()}

    @router.post("/indexes/{name}/documents", summary="Add (or replace) documents; embedded with `model`")
    async def add_documents(name: str, body: AddRequest) -> dict[str, Any]:
        return await run_in_threadpool(add, name, body)

    @router.post("/indexes/{name}/remove", summary="Remove documents by id")
    async def remove_documents(name: str, body: RemoveRequest) -> dict[str, Any]:
        removed = await run_in_threadpool(collections.remove, name, body.ids)
        return {"index": name, "removed": removed}

    @router.post("", summary="The k documents closest in meaning to each query (cosine)")
    async def search_documents(body: SearchRequest) -> JSONResponse:
        return await run_in_threadpool(search, body)

    return router
