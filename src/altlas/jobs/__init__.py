"""Durable asynchronous jobs, free of HTTP: a SQLite job store and the worker threads that run it."""

from altlas.jobs.runner import Handler, JobCancelled, JobContext, JobOutcome, JobRunner
from altlas.jobs.store import (
    FINISHED,
    MAX_INLINE_RESULT_BYTES,
    Job,
    JobStateError,
    JobStatus,
    JobStore,
    check_job_id,
)

__all__ = [
    "FINISHED",
    "MAX_INLINE_RESULT_BYTES",
    "Handler",
    "Job",
    "JobCancelled",
    "JobContext",
    "JobOutcome",
    "JobRunner",
    "JobStateError",
    "JobStatus",
    "JobStore",
    "check_job_id",
]
