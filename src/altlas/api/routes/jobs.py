"""Async jobs over HTTP: accept now (202 + Location), run later, poll, fetch the result, cancel.

POST /v1/jobs, GET /v1/jobs/{id}, GET /v1/jobs/{id}/result, DELETE /v1/jobs/{id}, GET /v1/jobs.
Jobs live in the durable store (altlas.jobs): a server killed mid-job runs it again after restart.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from altlas.api.job_kinds import JobKind, validate_input
from altlas.errors import InvalidInputError
from altlas.jobs.runner import JobRunner
from altlas.jobs.store import Job, JobStateError, JobStatus, JobStore

__all__ = ["jobs_router"]

_MEDIA_TYPES = {".jsonl": "application/x-ndjson", ".npy": "application/octet-stream"}
# A job id as OpenAPI declares it: the rule of altlas.jobs.store.check_job_id (uuid4().hex, any
# case), which answers any other id with 422 naming "id" before the store is read.
JobId = Annotated[
    str, Path(description="A job id: 32 hex digits", json_schema_extra={"pattern": "^[0-9a-fA-F]{32}$"})
]


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: StrictStr = Field(description="segment, segment-bulk, embed, generate, search, vad or classify")
    input: dict[str, Any] = Field(description="the kind's request body (as its synchronous endpoint takes)")
    priority: StrictInt = Field(default=5, ge=0, le=9, description="9 runs first")
    deadline: datetime | None = Field(
        default=None, description="ISO 8601 or unix seconds: not started by then, the job expires"
    )
    idempotency_key: StrictStr | None = Field(
        default=None, min_length=1, max_length=200, description="the same key returns the same job"
    )


def job_view(job: Job) -> dict[str, Any]:
    """A job as the API shows it."""
    view: dict[str, Any] = {
        "id": job.id,
        "object": "job",
        "kind": job.kind,
        "status": str(job.status),
        "priority": job.priority,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "deadline": job.deadline,
        "attempts": job.attempts,
        "progress": None
        if job.progress_total is None
        else {"done": job.progress_done, "total": job.progress_total},
        "timings": {
            "queued_s": None if job.started_at is None else round(job.started_at - job.created_at, 3),
            "run_s": None
            if job.started_at is None or job.finished_at is None
            else round(job.finished_at - job.started_at, 3),
        },
        "error": job.error,
        "expires_at": job.expires_at,
    }
    if job.status == JobStatus.SUCCEEDED:
        view["result"] = job.result
        view["result_url"] = f"/v1/jobs/{job.id}/result"
    return view


def jobs_router(store: JobStore, runner: JobRunner, kinds: dict[str, JobKind]) -> APIRouter:
    router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

    def submit(body: JobRequest) -> JSONResponse:
        kind = kinds.get(body.kind)
        if kind is None:
            raise InvalidInputError(
                f"unknown job kind {body.kind!r}; this server runs {', '.join(sorted(kinds))}", field="kind"
            )
        stored_input = validate_input(kind, body.input)
        deadline = body.deadline.timestamp() if body.deadline is not None else None
        job, created = store.submit(
            body.kind, stored_input, priority=body.priority, deadline=deadline,
            idempotency_key=body.idempotency_key,
        )  # fmt: skip
        if created:
            runner.wake()
        location = f"/v1/jobs/{job.id}"
        return JSONResponse(
            job_view(job), status_code=202 if created else 200, headers={"Location": location}
        )

    @router.post("", summary="Submit a job: 202 with its id and Location (200 for a known idempotency key)")
    async def submit_job(body: JobRequest) -> JSONResponse:
        return await run_in_threadpool(submit, body)

    @router.get("/{job_id}", summary="A job's status, progress, timings, and result or error")
    async def get_job(job_id: JobId) -> dict[str, Any]:
        return job_view(await run_in_threadpool(store.get, job_id))

    @router.get(
        "/{job_id}/result",
        summary="The result: JSON, or a file (JSONL plans, .npy vectors)",
        response_model=None,
    )
    async def get_result(job_id: JobId) -> JSONResponse | FileResponse:
        job = await run_in_threadpool(store.get, job_id)
        if job.status != JobStatus.SUCCEEDED:
            raise JobStateError(f"job {job.id} is {job.status}; it has no result", field="status")
        path = store.result_path(job)
        if path is None:
            return JSONResponse(job.result)
        media_type = _MEDIA_TYPES.get(path.suffix, "application/octet-stream")
        return FileResponse(path, media_type=media_type, filename=f"{job.kind}-{job.id}{path.suffix}")

    @router.delete("/{job_id}", summary="Cancel: a queued job at once, a running one at its next batch")
    async def cancel_job(job_id: JobId) -> dict[str, Any]:
        return job_view(await run_in_threadpool(store.cancel, job_id))

    @router.get("", summary="Jobs, newest first, a page at a time (next: the cursor of the next page)")
    async def list_jobs(
        status: str | None = Query(default=None, json_schema_extra={"enum": [str(s) for s in JobStatus]}),
        kind: str | None = None,
        limit: int = Query(default=50, ge=1, le=500),
        after: str | None = Query(
            default=None,
            description="The previous page's next",
            json_schema_extra={"pattern": "^[0-9]{1,19}$"},
        ),
    ) -> dict[str, Any]:
        page = await run_in_threadpool(store.page, status, kind, limit, after)
        # damaged: rows of this page that could not be read, left out of data (see altlas.storage.damage)
        return {
            "object": "list",
            "data": [job_view(job) for job in page.jobs],
            "next": page.next,
            "damaged": page.damaged,
        }

    return router
