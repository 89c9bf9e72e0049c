"""Worker threads that run stored jobs: claim one, call its kind's handler, record how it ended.

A handler is a plain callable, JobContext -> JobOutcome, that knows nothing of threads or SQLite;
between batches it reports progress and looks for a cancel request through the context. No handler
can kill a worker: every exception becomes a failed job, and the worker takes the next one; but
a job whose engine died under it (EngineUnavailableError) is queued again, up to max_attempts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeAlias

from altlas.errors import AltlasError, EngineUnavailableError, InvalidInputError, NotFoundError, TimedOutError
from altlas.jobs.store import Job, JobStore
from altlas.logs import job_id_var
from altlas.observability.distribution import JOB_SECONDS_BOUNDS, Distribution

__all__ = ["Handler", "JobCancelled", "JobContext", "JobOutcome", "JobRunner"]

log = logging.getLogger("altlas.jobs")


class JobCancelled(Exception):
    """Raised by JobContext.check_cancelled; the runner then marks the job cancelled."""


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """What a handler returns: a small JSON object inline, and/or the name of a result file."""

    result: dict[str, Any] | None = None
    result_file: str | None = None


class JobContext:
    """The handler's view of its job and the store."""

    def __init__(self, store: JobStore, job: Job, progress_every_s: float = 0.2) -> None:
        self.job = job
        self._store = store
        self._progress_every_s = progress_every_s
        self._last_progress = -float("inf")

    def progress(self, done: int, total: int) -> None:
        """Record progress; calls closer than progress_every_s are dropped, except the final one."""
        now = time.monotonic()
        if done < total and now - self._last_progress < self._progress_every_s:
            return  # a handler may report every item; the store needs a commit per write
        self._last_progress = now
        self._store.set_progress(self.job.id, done, total)

    def check_cancelled(self) -> None:
        """Raise JobCancelled if someone asked to cancel this job; call it between batches."""
        if self._store.is_cancel_requested(self.job.id):
            raise JobCancelled(self.job.id)

    def write_file(self, suffix: str, write: Callable[[Path], object]) -> str:
        """Write a result file atomically through `write(tmp_path)`; returns the name for JobOutcome."""
        return self._store.write_result_file(self.job.id, suffix, write)


Handler: TypeAlias = Callable[[JobContext], JobOutcome]


class JobRunner:
    """`workers` daemon threads running jobs from `store` with `handlers` (kind -> handler)."""

    def __init__(
        self,
        store: JobStore,
        handlers: Mapping[str, Handler],
        workers: int = 1,
        poll_s: float = 0.2,
        *,
        expire_every_s: float = 60.0,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if not poll_s > 0:
            raise ValueError(f"poll_s must be > 0, got {poll_s}")
        self.store = store
        self._handlers = dict(handlers)
        # run time of the jobs this runner ran, per kind (metrics read it)
        self.durations: dict[str, Distribution] = {}
        self._durations_lock = threading.Lock()
        self._workers = workers
        self._poll_s = poll_s
        self._expire_every_s = expire_every_s
        self._next_expire = 0.0
        self._expire_lock = threading.Lock()
        self._stopping = threading.Event()
        # A counter, not a flag: a wake() between a worker's empty claim and its wait is still seen.
        self._wake = threading.Condition()
        self._wakeups = 0
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Requeue what a dead process left running, then start the workers."""
        if self._threads:
            raise RuntimeError("JobRunner already started")
        self.store.recover()
        self._stopping.clear()
        self._threads = [
            threading.Thread(target=self._work, name=f"altlas-jobs-{n}", daemon=True)
            for n in range(self._workers)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float | None = 10.0) -> bool:
        """Let running handlers finish and the workers exit; False if some were still busy at `timeout`.

        A job still running then stays `running` in the store and runs again after the next start.
        """
        self._stopping.set()
        self.wake()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        alive = [thread for thread in self._threads if thread.is_alive()]
        self._threads = alive
        return not alive

    def wake(self) -> None:
        """Make idle workers look for jobs now instead of after their poll interval."""
        with self._wake:
            self._wakeups += 1
            self._wake.notify_all()

    def __enter__(self) -> JobRunner:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _work(self) -> None:
        while not self._stopping.is_set():
            with self._wake:
                seen = self._wakeups
            try:
                self._maybe_expire()
                job = self.store.claim_next()
            except Exception:  # the store is unreachable (disk full, locked too long): retry later
                log.exception("job store failed; retrying")
                self._stopping.wait(self._poll_s)
                continue
            if job is not None:
                self._run(job)
                continue
            with self._wake:
                if self._wakeups == seen and not self._stopping.is_set():
                    self._wake.wait(self._poll_s)

    def _maybe_expire(self) -> None:
        # Any idle worker may do it, one at a time: a single chosen worker could be busy for hours.
        with self._expire_lock:
            if time.monotonic() < self._next_expire:
                return
            self._next_expire = time.monotonic() + self._expire_every_s
        removed = self.store.expire_results()
        if removed:
            log.info("expired job results", extra={"count": removed})

    def _run(self, job: Job) -> None:
        token = job_id_var.set(job.id)  # every log line of the job's work names it
        started = time.perf_counter()
        try:
            outcome = self._call_handler(job)
            if outcome is not None:
                self._succeed(job, outcome)
        except Exception:  # recording the end failed; the job stays running until the next recover()
            log.exception("could not record the end of a job", extra={"job_id": job.id, "kind": job.kind})
        finally:
            duration = time.perf_counter() - started
            with self._durations_lock:
                self.durations.setdefault(job.kind, Distribution(JOB_SECONDS_BOUNDS)).observe(duration)
            if log.isEnabledFor(logging.INFO):
                try:
                    status = str(self.store.get(job.id).status)
                except Exception:  # a store that fails here has told the log already
                    status = "unknown"
                log.info(
                    "job ended", extra={"kind": job.kind, "status": status, "duration_s": round(duration, 3)}
                )
            job_id_var.reset(token)

    def _call_handler(self, job: Job) -> JobOutcome | None:
        """The handler's outcome, or None once a failure or cancel is recorded."""
        handler = self._handlers.get(job.kind)
        if handler is None:
            self.store.fail(job.id, f"no handler for job kind {job.kind!r}", "unknown_kind")
            return None
        try:
            return handler(JobContext(self.store, job))
        except JobCancelled:
            self.store.mark_cancelled(job.id)
        except EngineUnavailableError as exc:  # the engine died under it: run it again, up to max_attempts
            if job.attempts < self.store.max_attempts:
                self.store.requeue(job.id)
                log.warning("job queued again: its engine stopped", extra={"attempts": job.attempts})
            else:
                self.store.fail(job.id, str(exc), "engine_unavailable")
        except NotFoundError as exc:
            self.store.fail(job.id, str(exc), "not_found")
        except TimedOutError as exc:
            self.store.fail(job.id, str(exc), "timeout")
        except AltlasError as exc:
            self.store.fail(job.id, str(exc), "invalid_input")
        except Exception:  # the trace goes to the log; the client learns only where to look
            log.exception("job handler failed", extra={"job_id": job.id, "kind": job.kind})
            self.store.fail(
                job.id, f"internal error; the server log has the trace for job {job.id}", "internal_error"
            )
        return None

    def _succeed(self, job: Job, outcome: JobOutcome) -> None:
        try:
            if not isinstance(outcome, JobOutcome):
                raise TypeError(f"handler returned {type(outcome).__name__}, not JobOutcome")
            self.store.succeed(job.id, outcome.result, outcome.result_file)
        except (TypeError, InvalidInputError) as exc:  # an unusable outcome is the handler's bug
            log.exception(
                "job handler returned an unusable outcome", extra={"job_id": job.id, "kind": job.kind}
            )
            self.store.fail(job.id, f"{type(exc).__name__}: {exc}", "internal_error")
