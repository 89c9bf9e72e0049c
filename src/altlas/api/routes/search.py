"""POST /v1/search and its collections: add documents (embedded by an embedding model), search by meaning."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationInfo, field_validator

from altlas.api.cost import served_cost
from altlas.engine import messages as wire
from altlas.engine.service import ModelService
from altlas.logs import request_id_var

__all__ = ["MAX_SEARCH_QUERIES", "MAX_SEARCH_RESULTS", "SearchRequest", "search_answer", "search_router"]

DEFAULT_MODEL = "all-minilm-l6-v2"
MAX_SEARCH_QUERIES = 1024  # queries of one request
MAX_SEARCH_RESULTS = 16_384  # hits one request may ask for: queries x k (each hit carries its text)
MAX_REMOVE_IDS = 100_000


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


def _queries(body: SearchRequest) -> list[str]:
    return [body.query] if isinstance(body.query, str) else body.query


def search_answer(body: SearchRequest, hits: wire.Hits) -> tuple[dict[str, Any], dict[str, str]]:
    headers, cost = served_cost(hits.served)
    rows = [
        [{"id": ident, "text": text, "score": score} for ident, text, score in row] for row in hits.results
    ]
    return {"index": body.index, "model": hits.model, "results": rows, "altlas": cost}, headers


def search_router(service: ModelService, timeout_s: float) -> APIRouter:
    """The routes, over the models' service (which keeps the collections); `timeout_s`: an
    embedding's time limit (0: none)."""
    router = APIRouter(prefix="/v1/search", tags=["search"])

    @router.get("/indexes", summary="The collections: name, embedding model, number of documents")
    async def list_indexes() -> dict[str, Any]:
        indexes = await service.list_indexes(request_id_var.get() or "")
        return {
            "data": [
                {"name": name, "model": model, "documents": size} for name, model, size in indexes.indexes
            ]
        }

    @router.post("/indexes/{name}/documents", summary="Add (or replace) documents; embedded with `model`")
    async def add_documents(name: str, body: AddRequest, request: Request) -> dict[str, Any]:
        documents = [(d.id, d.text) for d in body.documents]
        done = await service.add_documents(
            name, body.model, documents, timeout_s, request_id_var.get() or "", receive=request.receive
        )
        return {"index": name, "model": body.model, "added": done.count, "documents": done.size}

    @router.post("/indexes/{name}/remove", summary="Remove documents by id")
    async def remove_documents(name: str, body: RemoveRequest) -> dict[str, Any]:
        done = await service.remove_documents(name, body.ids, request_id_var.get() or "")
        return {"index": name, "removed": done.count}

    @router.post("", summary="The k documents closest in meaning to each query (cosine)")
    async def search_documents(body: SearchRequest, request: Request) -> JSONResponse:
        hits = await service.search(
            body.index, _queries(body), body.k, timeout_s, request_id_var.get() or "", receive=request.receive
        )
        result, headers = search_answer(body, hits)
        return JSONResponse(result, headers=headers)

    return router
