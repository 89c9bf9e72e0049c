"""Durable jobs in one SQLite file: submit, claim, finish, cancel, recover after a crash, expire.

Every change of state is one `BEGIN IMMEDIATE` transaction, so it is atomic between the threads of
this process (they share one connection behind a lock) and between processes (SQLite's write lock).

    queued ──claim_next──> running ──> succeeded | failed | cancelled
      │  │                   └──recover() after its process died──> queued
      │  └──cancel()──> cancelled
      └──deadline passed before it started──> expired

Finished jobs (the last four states) keep their result until `expires_at`; `expire_results` then
deletes the row and its result files. Large results live as files under `result_dir`, named
`<job id><suffix>`, and the row keeps only the name.

A row that cannot be read back as a Job (JSON that is not, an unknown status, a number that is
not one, a result file name that is not this job's) is damaged: listings skip it and count it,
reading it alone raises DamagedEntryError, and the runner fails it instead of running it (see
altlas.storage.damage). A file that is not a job database stops JobStore at once with
DamagedStoreError, and is left as it is.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any

from altlas.errors import AltlasError, InvalidInputError, NotFoundError
from altlas.storage.atomic import fsync_path, write_file_atomically
from altlas.storage.damage import DamagedEntries, DamagedEntryError, DamagedStoreError

__all__ = [
    "FINISHED",
    "MAX_INLINE_RESULT_BYTES",
    "Job",
    "JobPage",
    "JobStateError",
    "JobStatus",
    "JobStore",
    "check_job_id",
]

log = logging.getLogger("altlas.jobs")

SCHEMA_VERSION = 1
# Inline results travel in every get(); anything bigger belongs in a result file.
MAX_INLINE_RESULT_BYTES = 1 << 20
_MAX_KEY_CHARS = 200
_ID = re.compile(r"[0-9a-f]{32}")
_SUFFIX = re.compile(r"[A-Za-z0-9._-]{1,64}")


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


_STATUSES = tuple(status.value for status in JobStatus)
FINISHED = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED})


class JobStateError(AltlasError):
    """A change the job's current status does not allow (finishing a job that is not running)."""


@dataclass(frozen=True, slots=True)
class Job:
    """One job as stored; times are unix seconds."""

    id: str
    kind: str
    input: dict[str, Any]
    priority: int
    status: JobStatus
    created_at: float
    started_at: float | None
    finished_at: float | None
    deadline: float | None
    idempotency_key: str | None
    attempts: int
    progress_done: int | None
    progress_total: int | None
    result: dict[str, Any] | None
    result_file: str | None
    error: dict[str, str] | None
    cancel_requested: bool
    expires_at: float | None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of a listing: its jobs, the cursor of the next page (None after the last), and
    how many rows of the page were damaged and left out."""

    jobs: list[Job]
    next: str | None
    damaged: int


# `seq` orders listing and breaks created_at ties; it never leaves the store except inside a cursor.
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS jobs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        input TEXT NOT NULL,
        priority INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 9),
        status TEXT NOT NULL,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        deadline REAL,
        idempotency_key TEXT UNIQUE,
        attempts INTEGER NOT NULL DEFAULT 0,
        progress_done INTEGER,
        progress_total INTEGER,
        result TEXT,
        result_file TEXT,
        error TEXT,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        expires_at REAL
    )""",
    "CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (status, priority DESC, created_at, seq)",
    "CREATE INDEX IF NOT EXISTS jobs_deadline ON jobs (deadline) WHERE status = 'queued'",
    "CREATE INDEX IF NOT EXISTS jobs_expiry ON jobs (expires_at) WHERE expires_at IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS jobs_kind ON jobs (kind, seq)",
)

_DEADLINE_ERROR = json.dumps(
    {"message": "the deadline passed before the job could start", "code": "deadline_exceeded"}
)


def check_job_id(job_id: str) -> str:
    """The id in canonical form (32 lowercase hex digits), or InvalidInputError before any query."""
    if not isinstance(job_id, str) or not _ID.fullmatch(job_id.lower()):
        raise InvalidInputError(f"must be a job id (32 hex digits), got {str(job_id)[:80]!r}", field="id")
    return job_id.lower()


class JobStore:
    """Thread- and process-safe job table; see the module docstring for the life of a job."""

    def __init__(
        self,
        path: Path,
        result_ttl_s: float = 7 * 24 * 3600,
        *,
        max_attempts: int = 3,
        timeout_s: float = 30.0,
    ) -> None:
        if not (result_ttl_s >= 0 and math.isfinite(result_ttl_s)):
            raise ValueError(f"result_ttl_s must be a finite number >= 0, got {result_ttl_s}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._result_dir = self.path.parent / "job-results"
        self._result_dir.mkdir(exist_ok=True)
        self.result_ttl_s = float(result_ttl_s)
        self.max_attempts = max_attempts
        self.damaged = DamagedEntries("jobs")
        # One connection behind a lock: simpler than one per thread, and closable from any thread.
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves; `timeout` waits out other writers.
        self._conn = sqlite3.connect(
            self.path, timeout=timeout_s, isolation_level=None, check_same_thread=False
        )
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            # FULL, not NORMAL: in WAL mode NORMAL may lose the last commits on power loss (not on a
            # crash of the process). A job acknowledged to a client must survive both, and the cost
            # (one fsync of the WAL per commit) is small next to the jobs themselves.
            self._conn.execute("PRAGMA synchronous=FULL")
            self._create_schema()
        except (sqlite3.DatabaseError, DamagedStoreError) as exc:
            self._conn.close()
            if isinstance(exc, DamagedStoreError):
                raise
            raise DamagedStoreError(
                f"{self.path} is not a job database altlas can open ({exc}); nothing was changed."
                " Move it aside (the server then starts with no jobs) or restore it from a backup"
            ) from exc

    @property
    def result_dir(self) -> Path:
        return self._result_dir

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> JobStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _create_schema(self) -> None:
        with self._write() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise DamagedStoreError(
                    f"{self.path} has job schema {version}; this altlas knows {SCHEMA_VERSION}:"
                    " run the newer altlas that wrote it, or move the file aside"
                )
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock at BEGIN: a deferred transaction that reads, then writes,
        # could fail with SQLITE_BUSY halfway when another process wrote in between.
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._conn

    # --- submit and read ------------------------------------------------------------------------

    def submit(
        self,
        kind: str,
        input: dict[str, Any],
        *,
        priority: int = 5,
        deadline: float | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[Job, bool]:
        """(job, created): a known idempotency_key returns its job, whatever its kind and input."""
        _check_kind(kind)
        payload = _dump(input, "input")
        _check_priority(priority)
        if deadline is not None and (isinstance(deadline, bool) or not _finite(deadline)):
            raise InvalidInputError(f"must be unix seconds, got {deadline!r}", field="deadline")
        if idempotency_key is not None and not (
            isinstance(idempotency_key, str) and 0 < len(idempotency_key) <= _MAX_KEY_CHARS
        ):
            raise InvalidInputError(f"must be 1 to {_MAX_KEY_CHARS} characters", field="idempotency_key")
        job_id = uuid.uuid4().hex
        with self._write() as conn:
            # Duplicate keys are settled by the UNIQUE column inside the write lock, so two racing
            # submits (threads or processes) end with one row.
            inserted = conn.execute(
                "INSERT INTO jobs (id, kind, input, priority, status, created_at, deadline, idempotency_key)"
                " VALUES (?, ?, ?, ?, 'queued', ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING",
                (job_id, kind, payload, priority, time.time(), deadline, idempotency_key),
            ).rowcount
            column, value = ("id", job_id) if inserted else ("idempotency_key", idempotency_key)
            row = conn.execute(f"SELECT * FROM jobs WHERE {column} = ?", (value,)).fetchone()
        return self._job(row), bool(inserted)

    def get(self, job_id: str) -> Job:
        job_id = check_job_id(job_id)
        with self._read() as conn:
            row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no job with id {job_id}", field="id")
        return self._job(row)

    def is_cancel_requested(self, job_id: str) -> bool:
        return self.get(job_id).cancel_requested

    def counts(self) -> dict[str, int]:
        """Jobs per status, every status present."""
        with self._read() as conn:
            rows = conn.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        found = {str(status): int(count) for status, count in rows}
        return {status.value: found.get(status.value, 0) for status in JobStatus}

    def counts_by_kind(self) -> dict[tuple[str, str], int]:
        """Jobs per (kind, status), for the kinds and statuses present."""
        with self._read() as conn:
            rows = conn.execute("SELECT kind, status, COUNT(*) FROM jobs GROUP BY kind, status").fetchall()
        return {(str(kind), str(status)): int(count) for kind, status, count in rows}

    def queue_depth(self) -> int:
        with self._read() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM jobs WHERE status = 'queued'").fetchone()[0])

    # --- the runner's side ----------------------------------------------------------------------

    def claim_next(self, now: float | None = None) -> Job | None:
        """Take the most urgent queued job (priority 9 first, then oldest) and mark it running.

        Queued jobs whose deadline has passed are marked expired first, so they never run; a
        damaged one is marked failed (code "damaged") and the next one taken.
        """
        now = time.time() if now is None else now
        while True:
            row = self._claim_row(now)
            if row is None:
                return None
            try:
                return self._job(row)
            except DamagedEntryError as exc:
                self._fail_damaged(str(row["id"]), exc.message, now)

    def _claim_row(self, now: float) -> sqlite3.Row | None:
        with self._write() as conn:
            overdue = conn.execute(
                "UPDATE jobs SET status = 'expired', finished_at = ?, expires_at = ?, error = ?"
                " WHERE status = 'queued' AND deadline IS NOT NULL AND deadline <= ?",
                (now, now + self.result_ttl_s, _DEADLINE_ERROR, now),
            ).rowcount
            rows = conn.execute(
                "UPDATE jobs SET status = 'running', started_at = ?, attempts = attempts + 1"
                " WHERE seq = (SELECT seq FROM jobs WHERE status = 'queued'"
                "              ORDER BY priority DESC, created_at, seq LIMIT 1)"
                " RETURNING *",
                (now,),
            ).fetchall()
        if overdue:
            log.info("jobs expired before they started", extra={"count": overdue})
        return rows[0] if rows else None

    def _fail_damaged(self, job_id: str, message: str, now: float) -> None:
        error = json.dumps({"message": message, "code": "damaged"})
        with self._write() as conn:
            conn.execute(
                "UPDATE jobs SET status = 'failed', finished_at = ?, expires_at = ?, error = ?"
                " WHERE id = ? AND status = 'running'",
                (now, now + self.result_ttl_s, error, job_id),
            )

    def set_progress(self, job_id: str, done: int, total: int) -> None:
        job_id = check_job_id(job_id)
        for name, value in (("done", done), ("total", total)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInputError(f"must be an integer >= 0, got {value!r}", field=name)
        if done > total:
            raise InvalidInputError(f"must not exceed total ({total}), got {done}", field="done")
        with self._write() as conn:
            changed = conn.execute(
                "UPDATE jobs SET progress_done = ?, progress_total = ? WHERE id = ? AND status = 'running'",
                (done, total, job_id),
            ).rowcount
            if not changed:
                _raise_not_running(conn, job_id)

    def succeed(
        self, job_id: str, result: dict[str, Any] | None = None, result_file: str | None = None
    ) -> Job:
        job_id = check_job_id(job_id)
        payload = None if result is None else _dump(result, "result")
        if payload is not None and len(payload.encode()) > MAX_INLINE_RESULT_BYTES:
            raise InvalidInputError(
                f"inline results are limited to {MAX_INLINE_RESULT_BYTES} bytes; write a result file",
                field="result",
            )
        if result_file is not None:
            self._check_result_file(job_id, result_file)
        return self._finish(job_id, JobStatus.SUCCEEDED, result=payload, result_file=result_file)

    def fail(self, job_id: str, message: str, code: str) -> Job:
        error = json.dumps({"message": str(message), "code": str(code)})
        return self._finish(check_job_id(job_id), JobStatus.FAILED, error=error)

    def requeue(self, job_id: str) -> Job:
        """A running job back to the queue, as recover() does for a dead runner's: its work could
        not reach the models (an engine restarting). The next claim counts another attempt."""
        with self._write() as conn:
            conn.execute(
                "UPDATE jobs SET status = 'queued', started_at = NULL, progress_done = NULL,"
                " progress_total = NULL WHERE id = ? AND status = 'running'",
                (check_job_id(job_id),),
            )
        return self.get(job_id)

    def mark_cancelled(self, job_id: str) -> Job:
        """The runner's word that a running job stopped on a cancel request."""
        return self._finish(check_job_id(job_id), JobStatus.CANCELLED)

    def _finish(
        self,
        job_id: str,
        status: JobStatus,
        *,
        result: str | None = None,
        result_file: str | None = None,
        error: str | None = None,
    ) -> Job:
        now = time.time()
        with self._write() as conn:
            rows = conn.execute(
                "UPDATE jobs SET status = ?, finished_at = ?, expires_at = ?, result = ?, result_file = ?,"
                " error = ? WHERE id = ? AND status = 'running' RETURNING *",
                (status.value, now, now + self.result_ttl_s, result, result_file, error, job_id),
            ).fetchall()
            if not rows:
                _raise_not_running(conn, job_id)
        return self._job(rows[0])

    def cancel(self, job_id: str) -> Job:
        """Queued: cancelled now. Running: cancel_requested, the runner stops it. Finished: unchanged."""
        job_id = check_job_id(job_id)
        now = time.time()
        with self._write() as conn:
            rows = conn.execute(
                "UPDATE jobs SET status = 'cancelled', finished_at = ?, expires_at = ?"
                " WHERE id = ? AND status = 'queued' RETURNING *",
                (now, now + self.result_ttl_s, job_id),
            ).fetchall()
            rows = (
                rows
                or conn.execute(
                    "UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND status = 'running' RETURNING *",
                    (job_id,),
                ).fetchall()
            )
            rows = rows or conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchall()
        if not rows:
            raise NotFoundError(f"no job with id {job_id}", field="id")
        return self._job(rows[0])

    def recover(self, now: float | None = None) -> int:
        """At start-up: jobs left `running` by a process that died go back to the queue.

        Call it only while no other process runs jobs from this file: it cannot tell a dead runner
        from a live one. A job with a cancel request becomes cancelled; one that was started
        max_attempts times already fails (it may be what kills the process). Returns how many
        went back to the queue.
        """
        now = time.time() if now is None else now
        expires = now + self.result_ttl_s
        exhausted = json.dumps(
            {
                "message": f"the job was started {self.max_attempts} times and never finished",
                "code": "crashed",
            }
        )
        with self._write() as conn:
            cancelled = conn.execute(
                "UPDATE jobs SET status = 'cancelled', finished_at = ?, expires_at = ?"
                " WHERE status = 'running' AND cancel_requested = 1",
                (now, expires),
            ).rowcount
            failed = conn.execute(
                "UPDATE jobs SET status = 'failed', finished_at = ?, expires_at = ?, error = ?"
                " WHERE status = 'running' AND attempts >= ?",
                (now, expires, exhausted, self.max_attempts),
            ).rowcount
            requeued = conn.execute(
                "UPDATE jobs SET status = 'queued', started_at = NULL, progress_done = NULL,"
                " progress_total = NULL WHERE status = 'running'"
            ).rowcount
        if cancelled or failed or requeued:
            log.warning(
                "recovered jobs left running",
                extra={"requeued": requeued, "cancelled": cancelled, "failed": failed},
            )
        return int(requeued)

    # --- results --------------------------------------------------------------------------------

    def write_result_file(self, job_id: str, suffix: str, write: Callable[[Path], object]) -> str:
        """Write `<job id><suffix>` under result_dir, whole or not at all; returns the name to store."""
        job_id = check_job_id(job_id)
        if not isinstance(suffix, str) or not _SUFFIX.fullmatch(suffix):
            raise InvalidInputError("must be 1 to 64 of the characters A-Z a-z 0-9 . _ -", field="suffix")
        name = job_id + suffix

        def write_synced(tmp: Path) -> None:
            write(tmp)
            fsync_path(tmp)  # the rename must not reach the disk before the data

        write_file_atomically(self._result_dir / name, write_synced)
        fsync_path(self._result_dir)
        return name

    def result_path(self, job: Job) -> Path | None:
        """Where the job's result file lies, if it has one."""
        return None if job.result_file is None else self._result_dir / job.result_file

    def _check_result_file(self, job_id: str, name: str) -> None:
        # The name must be one this job wrote: that keeps paths inside result_dir and lets
        # expire_results find every file of a job by its id.
        if not (isinstance(name, str) and name.startswith(job_id) and _SUFFIX.fullmatch(name[len(job_id) :])):
            raise InvalidInputError(
                "must be a name returned by write_result_file for this job", field="result_file"
            )
        if not (self._result_dir / name).is_file():
            raise InvalidInputError(f"no result file {name!r}", field="result_file")

    def expire_results(self, now: float | None = None) -> int:
        """Delete finished jobs whose expires_at has passed, with their result files; returns how many."""
        now = time.time() if now is None else now
        with self._write() as conn:
            rows = conn.execute(
                "DELETE FROM jobs WHERE expires_at IS NOT NULL AND expires_at <= ? RETURNING id", (now,)
            ).fetchall()
        # Rows first, files after: a crash in between leaves orphan files, never a row naming a
        # missing file.
        for row in rows:
            for path in self._result_dir.glob(f"{row['id']}*"):
                path.unlink(missing_ok=True)
        return len(rows)

    # --- listing (last: the method named `list` would shadow the builtin in later annotations) ---

    def list(
        self, status: str | None = None, kind: str | None = None, limit: int = 50, after: str | None = None
    ) -> tuple[list[Job], str | None]:
        """One page of jobs, newest first, and the cursor of the next page (None after the last)."""
        page = self.page(status, kind, limit, after)
        return page.jobs, page.next

    def page(
        self, status: str | None = None, kind: str | None = None, limit: int = 50, after: str | None = None
    ) -> JobPage:
        """One page of jobs, newest first; damaged rows are left out and counted."""
        clauses: list[str] = []
        params: list[Any] = []
        if status is not None:
            if status not in _STATUSES:
                known = ", ".join(_STATUSES)
                raise InvalidInputError(f"must be one of {known}, got {str(status)[:40]!r}", field="status")
            clauses.append("status = ?")
            params.append(str(status))
        if kind is not None:
            clauses.append("kind = ?")
            params.append(kind)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 500:
            raise InvalidInputError(f"must be an integer from 1 to 500, got {limit!r}", field="limit")
        if after is not None:
            clauses.append("seq < ?")
            params.append(_parse_cursor(after))
        where = " AND ".join(clauses) or "1"
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT * FROM jobs WHERE {where} ORDER BY seq DESC LIMIT ?", (*params, limit + 1)
            ).fetchall()
        next_cursor = str(rows[limit - 1]["seq"]) if len(rows) > limit else None
        jobs: list[Job] = []
        for row in rows[:limit]:
            try:
                jobs.append(self._job(row))
            except DamagedEntryError:  # logged and counted by _job
                continue
        return JobPage(jobs, next_cursor, damaged=min(len(rows), limit) - len(jobs))

    def _job(self, row: sqlite3.Row) -> Job:
        """The row as a Job, or DamagedEntryError (counted and logged) if it cannot be one."""
        try:
            return _job(row)
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            self.damaged.found(str(row["id"])[:80], str(exc)[:200])
            raise DamagedEntryError(
                f"job {str(row['id'])[:80]} is damaged and cannot be read; cancel or ignore it,"
                " it expires with the others",
                field="id",
            ) from None


def _job(row: sqlite3.Row) -> Job:
    """The row as a Job, every column checked: ValueError or TypeError naming the column if one
    is not what the store writes (a row changed by hand, a damaged file)."""
    job_id = row["id"]
    if not isinstance(job_id, str) or not _ID.fullmatch(job_id):
        raise ValueError("id: not a job id")
    job_input = _json_column(row, "input")
    if job_input is None:
        raise TypeError("input: missing")
    job = Job(
        id=job_id,
        kind=_column(row, "kind", str),
        input=job_input,
        priority=_column(row, "priority", int),
        status=JobStatus(row["status"]),
        created_at=_column(row, "created_at", float),
        started_at=_column(row, "started_at", float, nullable=True),
        finished_at=_column(row, "finished_at", float, nullable=True),
        deadline=_column(row, "deadline", float, nullable=True),
        idempotency_key=_column(row, "idempotency_key", str, nullable=True),
        attempts=_column(row, "attempts", int),
        progress_done=_column(row, "progress_done", int, nullable=True),
        progress_total=_column(row, "progress_total", int, nullable=True),
        result=_json_column(row, "result"),
        result_file=_column(row, "result_file", str, nullable=True),
        error=_json_column(row, "error"),
        cancel_requested=bool(_column(row, "cancel_requested", int)),
        expires_at=_column(row, "expires_at", float, nullable=True),
    )
    # A result file is one this job wrote: the name never leads outside result_dir.
    if job.result_file is not None and not (
        job.result_file.startswith(job.id) and _SUFFIX.fullmatch(job.result_file[len(job.id) :])
    ):
        raise ValueError("result_file: not a result file of this job")
    return job


def _column(row: sqlite3.Row, name: str, kind: type, *, nullable: bool = False) -> Any:
    value = row[name]
    if value is None and nullable:
        return None
    ok = (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if kind is float
        else isinstance(value, kind) and not isinstance(value, bool)
    )
    if not ok:
        raise TypeError(f"{name}: {type(value).__name__} {str(value)[:40]!r} is not a {kind.__name__}")
    return value


def _json_column(row: sqlite3.Row, name: str) -> dict[str, Any] | None:
    text = row[name]
    if text is None:
        return None
    if not isinstance(text, str):
        raise TypeError(f"{name}: not JSON text")
    value = json.loads(text, parse_constant=_no_constant)
    if not isinstance(value, dict):
        raise TypeError(f"{name}: not a JSON object")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _raise_not_running(conn: sqlite3.Connection, job_id: str) -> None:
    row = conn.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no job with id {job_id}", field="id")
    raise JobStateError(f"job {job_id} is {row['status']}, not running", field="status")


def _check_kind(kind: str) -> None:
    if not isinstance(kind, str) or not 0 < len(kind) <= 100:
        raise InvalidInputError("must be a name of 1 to 100 characters", field="kind")


def _check_priority(priority: int) -> None:
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 9:
        raise InvalidInputError(
            f"must be an integer from 0 to 9 (9 most urgent), got {priority!r}", field="priority"
        )


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _dump(value: dict[str, Any], field: str) -> str:
    if not isinstance(value, dict):
        raise InvalidInputError(f"must be a JSON object, got {type(value).__name__}", field=field)
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"must be JSON-serialisable: {exc}", field=field) from None


def _parse_cursor(after: str) -> int:
    if isinstance(after, str) and after.isascii() and after.isdigit() and len(after) <= 19:
        return int(after)
    raise InvalidInputError("must be a cursor returned by a previous page", field="after")
