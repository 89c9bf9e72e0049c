"""GET /metrics: the server's Prometheus metrics (text format). Needs a key only when
ALTLAS_METRICS_REQUIRE_KEY is set along with ALTLAS_API_KEYS (see altlas.api.admission.ApiKeys)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from altlas.observability.metrics import CONTENT_TYPE_LATEST, Metrics

__all__ = ["metrics_router"]


def metrics_router(metrics: Metrics) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/metrics", summary="Prometheus metrics (text format)", response_class=Response)
    def scrape() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return router
