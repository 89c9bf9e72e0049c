"""POST /v1/similar-commands and /v1/dedupe."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from altlas.engine.service import ModelService
from altlas.logs import request_id_var
from altlas.segmentation.segmenter import check_command

__all__ = ["similarity_router"]


class SimilarRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: StrictStr
    k: StrictInt = Field(default=5, ge=1, le=100)


class DedupeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    commands: list[StrictStr] = Field(min_length=1)
    threshold: float = Field(default=0.9, gt=0, le=1, allow_inf_nan=False)


def similarity_router(service: ModelService) -> APIRouter:
    """The routes, over the models' `service` (which keeps the index of stored commands)."""
    router = APIRouter(prefix="/v1", tags=["similarity"])

    @router.post(
        "/similar-commands", summary="The stored commands most similar to a command, with their plan ids"
    )
    async def similar(body: SimilarRequest) -> dict[str, Any]:
        check_command(body.command)
        hits = await service.similar_commands(body.command, body.k, request_id_var.get() or "")
        return {"command": body.command, "results": hits}

    @router.post("/dedupe", summary="Near-duplicate commands in a batch (cosine >= threshold)")
    async def dedupe(body: DedupeRequest) -> dict[str, Any]:
        return await service.dedupe(body.commands, body.threshold, request_id_var.get() or "")

    return router
