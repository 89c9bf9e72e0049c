"""GET /metrics: the server's Prometheus metrics (text format). Needs a key only when
ALTLAS_METRICS_REQUIRE_KEY is set along with ALTLAS_API_KEYS (see altlas.api.admission.ApiKeys)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter
from fastapi.responses import Response

from altlas.observability.metrics import CONTENT_TYPE_LATEST, Metrics

if TYPE_CHECKING:
    from altlas.engine.service import ModelService

__all__ = ["metrics_router"]


def metrics_router(metrics: Metrics, models: ModelService | None) -> APIRouter:
    """The route: this process's `metrics`, then the models' (from their `models` service)."""
    router = APIRouter(tags=["health"])

    @router.get("/metrics", summary="Prometheus metrics (text format)", response_class=Response)
    async def scrape() -> Response:
        text = metrics.exposition()
        if models is not None:
            text += await models.stats()
        return Response(text, media_type=CONTENT_TYPE_LATEST)

    return router
