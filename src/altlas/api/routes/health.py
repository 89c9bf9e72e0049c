"""Liveness and readiness, for GET and HEAD (probes often send HEAD: the same answer, no body)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

__all__ = ["health_router"]


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    data_dir_writable: bool
    services: list[str]


def health_router(data_dir: Path, services: Callable[[], list[str]]) -> APIRouter:
    router = APIRouter(tags=["health"])

    # HEAD is the GET route's own answer: the server sends its headers and no body.
    @router.head("/healthz", summary="The process is alive (no body)", response_model=Health)
    @router.get("/healthz", summary="The process is alive", response_model=Health)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    not_ready: dict[int | str, dict[str, Any]] = {
        503: {"description": "Not ready: the data dir is not writable", "model": Readiness}
    }

    @router.head("/readyz", summary="Ready to serve (no body)", response_model=Readiness, responses=not_ready)
    @router.get(
        "/readyz",
        summary="Ready to serve: data dir writable, services mounted",
        response_model=Readiness,
        responses=not_ready,
    )
    def readyz() -> JSONResponse:
        writable = data_dir.is_dir() and os.access(data_dir, os.W_OK)
        body = {
            "status": "ready" if writable else "not ready",
            "data_dir_writable": writable,
            "services": services(),
        }
        return JSONResponse(body, status_code=200 if writable else 503)

    return router
