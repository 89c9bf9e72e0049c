"""POST /v1/search and its collections: add documents (embedded by an embedding model), search by meaning."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

import numpy as np
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationInfo, field_validator

from altlas.api.cost import request_cost
from altlas.errors import TimedOutError
from altlas.orchestrator.backends import EmbeddingBackend
from altlas.orchestrator.serving import Lease, LoadedModels
from altlas.scheduling.batcher import Served
from altlas.scheduling.waiting import ClientGone
from altlas.search.collections import Collections, Document

__all__ = ["MAX_SEARCH_QUERIES", "MAX_SEARCH_RESULTS", "SearchRequest", "run_search", "search_router"]

DEFAULT_MODEL = "all-minilm-l6-v2"
MAX_SEARCH_QUERIES = 1024  # queries of one request
MAX_SEARCH_RESULTS = 16_384  # hits one request may ask for: queries x k (each hit carries its text)
MAX_REMOVE_IDS = 100_000
_CHECK_S = 0.25  # how often a waiting embedding looks whether its client left
T = TypeVar("T")


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

    ids: list[StrictStr] = Field(min_length=1, max_length=MAX_REMOVE_IDS)


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: StrictStr
    query: StrictStr | list[StrictStr] = Field(description=f"a text, or 1 to {MAX_SEARCH_QUERIES:,} texts")
    k: StrictInt = Field(
        default=10, ge=1, le=1024,
        description=f"results per query; queries x k is at most {MAX_SEARCH_RESULTS:,}",
    )  # fmt: skip

    @field_validator("query")
    @classmethod
    def _queries_bounded(cls, query: str | list[str]) -> str | list[str]:
        if isinstance(query, list) and not 1 <= len(query) <= MAX_SEARCH_QUERIES:
            raise ValueError(f"has {len(query):,} queries; the limit is 1 to {MAX_SEARCH_QUERIES:,}")
        return query

    @field_validator("k")
    @classmethod
    def _results_bounded(cls, k: int, info: ValidationInfo) -> int:
        query = info.data.get("query")  # absent when it failed its own checks
        queries = len(query) if isinstance(query, list) else 1
        if queries * k > MAX_SEARCH_RESULTS:
            raise ValueError(
                f"asks for {queries:,} x {k:,} results; the limit is {MAX_SEARCH_RESULTS:,} in all "
                "(send fewer queries or a smaller k)"
            )
        return k


class _Embedder:
    """Texts to unit vectors with a registered embedding model; remembers the lease for the cost.
    Its embedding stops (what has not run is dropped) past the request time limit, or once
    `gone` is set: the client left."""

    def __init__(
        self, models: LoadedModels, model: str, timeout_s: float, gone: threading.Event | None = None
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
        return served.value

    def _wait(self, future: Future[Served[np.ndarray]], timeout_s: float) -> Served[np.ndarray]:
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


def run_search(
    models: LoadedModels,
    collections: Collections,
    body: SearchRequest,
    timeout_s: float,
    gone: threading.Event | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """(response body, cost headers) of one search request; `gone` set (the client left) stops it."""
    queries = [body.query] if isinstance(body.query, str) else body.query
    model = collections.model_of(body.index)
    embed = _Embedder(models, model, timeout_s, gone)
    started = time.perf_counter()
    results = collections.search(body.index, queries, body.k, embed)
    processing_ms = (time.perf_counter() - started) * 1e3
    assert embed.lease is not None
    headers, cost = request_cost(
        embed.lease, processing_ms, embed.queue_ms, batch_size=len(queries), served_on=embed.served_on
    )
    rows = [[{"id": h.id, "text": h.text, "score": h.score} for h in hits] for hits in results]
    return {"index": body.index, "model": model, "results": rows, "altlas": cost}, headers


def search_router(models: LoadedModels, collections: Collections, timeout_s: float) -> APIRouter:
    """The routes, over the loaded models; `timeout_s`: an embedding's time limit (0: none)."""
    router = APIRouter(prefix="/v1/search", tags=["search"])

    def add(name: str, body: AddRequest, gone: threading.Event) -> dict[str, Any]:
        documents = [Document(d.id, d.text) for d in body.documents]
        size = collections.add(name, documents, body.model, _Embedder(models, body.model, timeout_s, gone))
        return {"index": name, "model": body.model, "added": len(documents), "documents": size}

    def search(body: SearchRequest, gone: threading.Event) -> JSONResponse:
        result, headers = run_search(models, collections, body, timeout_s, gone)
        return JSONResponse(result, headers=headers)

    @router.get("/indexes", summary="The collections: name, embedding model, number of documents")
    def list_indexes() -> dict[str, Any]:
        return {"data": collections.names()}

    @router.post("/indexes/{name}/documents", summary="Add (or replace) documents; embedded with `model`")
    async def add_documents(name: str, body: AddRequest, request: Request) -> dict[str, Any]:
        return await _until_client_leaves(request, add, name, body)

    @router.post("/indexes/{name}/remove", summary="Remove documents by id")
    async def remove_documents(name: str, body: RemoveRequest) -> dict[str, Any]:
        removed = await run_in_threadpool(collections.remove, name, body.ids)
        return {"index": name, "removed": removed}

    @router.post("", summary="The k documents closest in meaning to each query (cosine)")
    async def search_documents(body: SearchRequest, request: Request) -> JSONResponse:
        return await _until_client_leaves(request, search, body)

    return router


async def _until_client_leaves(request: Request, work: Callable[..., T], *args: Any) -> T:
    """`work(*args, gone)` on a worker thread, `gone` set once the client leaves (the work then
    stops at its next check, raising ClientGone)."""
    gone = threading.Event()
    watcher = asyncio.get_running_loop().create_task(_watch(request, gone))
    try:
        return await run_in_threadpool(work, *args, gone)
    finally:
        watcher.cancel()


async def _watch(request: Request, gone: threading.Event) -> None:
    try:
        while (await request.receive()).get("type") != "http.disconnect":
            pass
    except Exception:  # a receive that fails has no client behind it either
        pass
    gone.set()
