"""Liveness and readiness."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import JSONResponse

__all__ = ["health_router"]


def health_router(data_dir: Path, services: Callable[[], list[str]]) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="The process is alive")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="Ready to serve: data dir writable, services mounted")
    def readyz() -> JSONResponse:
        writable = data_dir.is_dir() and os.access(data_dir, os.W_OK)
        body = {
            "status": "ready" if writable else "not ready",
            "data_dir_writable": writable,
            "services": services(),
        }
        return JSONResponse(body, status_code=200 if writable else 503)

    return router
