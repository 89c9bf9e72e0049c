"""POST /v1/segment, /v1/segment/batch and /v1/prioritize.

A stored plan always reaches its client: the answer is the bytes the store encoded the plan to
(encode_plan), so once the store has taken a plan nothing is left that could fail.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool

from altlas.api.schemas import BatchSegmentRequest, PrioritizeRequest, SegmentOptionsBody, SegmentRequest
from altlas.plans.codec import plan_from_dict, plan_to_dict
from altlas.plans.priorities import PriorityRequest, PriorityWeights
from altlas.segmentation.segmenter import SegmentationOptions
from altlas.segmentation.service import SegmentationService
from altlas.segmentation.when import TimeReference
from altlas.storage.plan_store import encode_plan

__all__ = ["segmentation_options", "segmentation_router", "time_reference"]


def segmentation_options(body: SegmentOptionsBody) -> SegmentationOptions:
    return SegmentationOptions(
        language=body.language,
        mode=body.mode,
        persona=body.persona,
        chaos_level=body.chaos_level,
        seed=body.seed,
        urgency=body.urgency,
        deadline=body.deadline,
        user_preferences={k.value: v for k, v in body.user_preferences.items()},
        metadata=body.metadata,
    )


def time_reference(body: SegmentOptionsBody) -> TimeReference:
    """The clock of a request's schedule times (a bad `timezone` is a 422 naming it)."""
    return TimeReference.of(body.now, body.timezone)


def segmentation_router(service: SegmentationService) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["segmentation"])

    async def run(method: Any, commands: Any, body: SegmentOptionsBody, store: bool) -> Any:
        """service.segment or segment_batch of `commands` with the body's options, off the loop."""
        options, reference = segmentation_options(body), time_reference(body)
        return await run_in_threadpool(partial(method, commands, options, store=store, reference=reference))

    def created(path: str, summary: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """A POST route answering 201 with a plan (or plans) as JSON."""
        return router.post(path, status_code=201, response_model=dict[str, Any], summary=summary)

    @created("/segment", "Segment one command into an ALT plan")
    async def segment(body: SegmentRequest) -> Response:
        plan = await run(service.segment, body.command, body, body.store)
        headers = {"Location": f"/v1/alt-files/{plan.id}"} if body.store else None
        return _json(encode_plan(plan), headers)

    @created("/segment/batch", "Segment up to 1000 commands")
    async def segment_batch(body: BatchSegmentRequest) -> Response:
        plans = await run(service.segment_batch, body.commands, body, body.store)
        data = b",".join(encode_plan(plan) for plan in plans)
        return _json(b'{"count":%d,"data":[%s]}' % (len(plans), data))

    @router.post("/prioritize", summary="Score a plan's segments and order them")
    async def prioritize(body: PrioritizeRequest) -> dict[str, Any]:
        plan = plan_from_dict(body.plan)
        request = PriorityRequest(
            urgency=body.urgency,
            deadline=body.deadline,
            preferences={k.value: v for k, v in body.user_preferences.items()},
            weights=PriorityWeights(**body.weights.model_dump()),
        )
        order = service.prioritize(plan, request)
        return {
            "execution_order": order,
            "scores": {s.id: s.metadata["priority_score"] for s in plan.segments},
            "plan": plan_to_dict(plan),
        }

    return router


def _json(content: bytes, headers: dict[str, str] | None = None) -> Response:
    return Response(content, status_code=201, headers=headers, media_type="application/json")
