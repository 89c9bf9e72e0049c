"""GET/DELETE /v1/alt-files: stored plans."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response

from altlas.plans.codec import dumps, plan_to_dict
from altlas.storage.plan_store import PlanStore

__all__ = ["alt_files_router"]

# A plan id as OpenAPI declares it: the rule of altlas.storage.plan_store.check_plan_id (a UUID in
# its 8-4-4-4-12 form, any case), which answers any other id with 422 naming "id".
PlanId = Annotated[str, Path(description="A plan id: a UUID", json_schema_extra={"format": "uuid"})]


def alt_files_router(store: PlanStore) -> APIRouter:
    router = APIRouter(prefix="/v1/alt-files", tags=["alt-files"])

    @router.get("", summary="Stored plans, newest first (damaged: files of the page that could not be read)")
    def list_plans(
        offset: int = Query(0, ge=0, le=10**9), limit: int = Query(50, ge=1, le=1000)
    ) -> dict[str, Any]:
        page = store.list(offset=offset, limit=limit)
        return {
            "items": [asdict(s) for s in page.items],
            "total": page.total,
            "offset": offset,
            "limit": limit,
            "damaged": page.damaged,
        }

    @router.get("/{plan_id}", summary="One plan, as JSON or YAML", response_model=None)
    def get_plan(plan_id: PlanId, format: Literal["json", "yaml"] = "json") -> Response | dict[str, Any]:
        plan = store.get(plan_id)
        if format == "yaml":
            return Response(dumps(plan, "yaml"), media_type="application/yaml")
        return plan_to_dict(plan)

    @router.delete("/{plan_id}", status_code=204, summary="Delete a plan")
    def delete_plan(plan_id: PlanId) -> Response:
        store.delete(plan_id)
        return Response(status_code=204)

    return router
