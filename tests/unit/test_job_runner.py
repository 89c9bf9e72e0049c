from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from altlas.errors import EngineUnavailableError, InvalidInputError, NotFoundError
from altlas.jobs import Handler, Job, JobContext, JobOutcome, JobRunner, JobStatus, JobStore

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    with JobStore(tmp_path / "jobs.db") as opened:
        yield opened


def _wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


def _wait_finished(store: JobStore, job_id: str, timeout: float = 5.0) -> Job:
    _wait_for(lambda: store.get(job_id).finished, timeout)
    return store.get(job_id)


def square(ctx: JobContext) -> JobOutcome:
    return JobOutcome({"square": ctx.job.input["n"] ** 2})


def test_runs_jobs_to_success(store: JobStore) -> None:
    jobs = [store.submit("square", {"n": n})[0] for n in range(10)]
    with JobRunner(store, {"square": square}, workers=3, poll_s=0.01):
        finished = [_wait_finished(store, job.id) for job in jobs]
    assert [job.result for job in finished] == [{"square": n * n} for n in range(10)]
    assert all(job.status is JobStatus.SUCCEEDED and job.attempts == 1 for job in finished)


def test_a_job_whose_engine_stopped_runs_again_up_to_its_attempts(store: JobStore) -> None:
    """EngineUnavailableError (its engine died under it) queues the job again, counted against
    max_attempts (3): it succeeds when the engine is back, and fails once the attempts are spent."""
    runs: dict[str, int] = {}

    def flaky(ctx: JobContext) -> JobOutcome:
        runs[ctx.job.id] = runs.get(ctx.job.id, 0) + 1
        if runs[ctx.job.id] <= ctx.job.input["failures"]:
            raise EngineUnavailableError("the engine serving the model stopped; retry", "model")
        return JobOutcome({"runs": runs[ctx.job.id]})

    back = store.submit("flaky", {"failures": 1})[0]
    gone = store.submit("flaky", {"failures": 5})[0]
    with JobRunner(store, {"flaky": flaky}, workers=2, poll_s=0.01):
        succeeded, failed = _wait_finished(store, back.id), _wait_finished(store, gone.id)
    assert (
        succeeded.status is JobStatus.SUCCEEDED
        and succeeded.attempts == 2
        and succeeded.result == {"runs": 2}
    )
    assert failed.status is JobStatus.FAILED and failed.attempts == 3 and runs[gone.id] == 3
    assert failed.error is not None and failed.error["code"] == "engine_unavailable"


def test_wake_starts_a_job_without_waiting_for_the_poll(store: JobStore) -> None:
    runner = JobRunner(store, {"square": square}, poll_s=30)
    with runner:
        time.sleep(0.05)  # the worker has found nothing and sleeps for 30 s
        job = store.submit("square", {"n": 3})[0]
        runner.wake()
        assert _wait_finished(store, job.id, timeout=2).result == {"square": 9}
        started = time.monotonic()
    assert time.monotonic() - started < 2  # stop() wakes the sleeping worker too


def test_handler_errors_fail_the_job_and_the_worker_goes_on(
    store: JobStore, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(ctx: JobContext) -> JobOutcome:
        raise ZeroDivisionError("division by zero")

    def bad_input(ctx: JobContext) -> JobOutcome:
        raise InvalidInputError("must be positive", field="n")

    def missing(ctx: JobContext) -> JobOutcome:
        raise NotFoundError("no model xyz", field="model")

    def wrong_type(ctx: JobContext) -> JobOutcome:
        return {"square": 1}  # type: ignore[return-value]

    handlers: dict[str, Handler] = {
        "broken": broken,
        "bad_input": bad_input,
        "missing": missing,
        "wrong_type": wrong_type,
        "square": square,
    }
    kinds = ["broken", "bad_input", "missing", "wrong_type", "nobody_handles_this", "square"]
    jobs = [store.submit(kind, {"n": 2}, priority=9 - n)[0] for n, kind in enumerate(kinds)]
    with caplog.at_level(logging.ERROR, logger="altlas.jobs"), JobRunner(store, handlers, poll_s=0.01):
        ended = [_wait_finished(store, job.id) for job in jobs]
    errors = [job.error for job in ended]
    assert errors[0] is not None and errors[0]["code"] == "internal_error"
    assert jobs[0].id in errors[0]["message"] and "division" not in errors[0]["message"]  # no internals
    assert errors[1] == {"message": "n: must be positive", "code": "invalid_input"}
    assert errors[2] == {"message": "model: no model xyz", "code": "not_found"}
    assert errors[3] is not None and errors[3]["code"] == "internal_error"
    assert errors[4] is not None and errors[4]["code"] == "unknown_kind"
    assert ended[5].status is JobStatus.SUCCEEDED and ended[5].result == {"square": 4}
    assert any(record.exc_info and record.exc_info[0] is ZeroDivisionError for record in caplog.records)


def test_cancel_stops_a_running_handler_between_batches(store: JobStore) -> None:
    started = threading.Event()
    batches: list[int] = []

    def long_job(ctx: JobContext) -> JobOutcome:
        for batch in range(1000):
            ctx.check_cancelled()
            started.set()
            batches.append(batch)
            time.sleep(0.005)
        return JobOutcome({"done": True})

    job = store.submit("long", {})[0]
    with JobRunner(store, {"long": long_job}, poll_s=0.01):
        assert started.wait(5)
        assert store.cancel(job.id).cancel_requested
        ended = _wait_finished(store, job.id)
    assert ended.status is JobStatus.CANCELLED and ended.result is None
    assert len(batches) < 1000


def test_progress_is_throttled_but_the_last_call_lands(store: JobStore) -> None:
    seen: list[tuple[int | None, int | None]] = []
    took: list[float] = []

    def counting(ctx: JobContext) -> JobOutcome:
        started = time.monotonic()
        for done in range(1, 101):
            ctx.progress(done, 100)
            job = store.get(ctx.job.id)
            seen.append((job.progress_done, job.progress_total))
        took.append(time.monotonic() - started)
        return JobOutcome({})

    job = store.submit("count", {})[0]
    with JobRunner(store, {"count": counting}, poll_s=0.01):
        ended = _wait_finished(store, job.id)
    assert (ended.progress_done, ended.progress_total) == (100, 100)
    assert seen[0] == (1, 100)  # the first call writes
    assert len(set(seen)) <= took[0] / 0.2 + 2  # one write per 0.2 s, plus the first and the last


def test_result_file_written_through_the_context(store: JobStore) -> None:
    def big(ctx: JobContext) -> JobOutcome:
        name = ctx.write_file(".txt", lambda path: path.write_text("x" * 10_000))
        return JobOutcome({"chars": 10_000}, result_file=name)

    job = store.submit("big", {})[0]
    with JobRunner(store, {"big": big}, poll_s=0.01):
        ended = _wait_finished(store, job.id)
    path = store.result_path(ended)
    assert ended.status is JobStatus.SUCCEEDED and path is not None and path.read_text() == "x" * 10_000


def test_start_recovers_a_job_a_dropped_store_left_running(tmp_path: Path) -> None:
    crashed = JobStore(tmp_path / "jobs.db")
    job = crashed.submit("square", {"n": 5})[0]
    assert crashed.claim_next() is not None
    crashed.close()  # the job stays running, as if its process had died
    with JobStore(tmp_path / "jobs.db") as store, JobRunner(store, {"square": square}, poll_s=0.01):
        ended = _wait_finished(store, job.id)
    assert ended.result == {"square": 25} and ended.attempts == 2


def test_finished_results_expire_on_schedule(tmp_path: Path) -> None:
    with JobStore(tmp_path / "jobs.db", result_ttl_s=0) as store:
        job = store.submit("square", {"n": 1})[0]
        with JobRunner(store, {"square": square}, poll_s=0.01, expire_every_s=0.02):
            _wait_for(lambda: not store.list()[0])  # succeeded, then deleted
        with pytest.raises(NotFoundError):
            store.get(job.id)


# The child runs a real runner; its handler reports progress, then hangs until SIGKILL.
_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from altlas.jobs import JobOutcome, JobRunner, JobStore

    def hang(ctx):
        ctx.progress(1, 2)
        print(ctx.job.id, flush=True)
        time.sleep(60)
        return JobOutcome({"square": -1})

    store = JobStore(Path(sys.argv[1]))
    for n in range(6):
        store.submit("square", {"n": n}, priority=9 if n == 0 else 5, idempotency_key=f"sq-{n}")
    JobRunner(store, {"square": hang}, poll_s=0.01).start()
    time.sleep(60)
    """
)


def test_jobs_survive_a_sigkill_mid_run(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])),
    }
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path)], stdout=subprocess.PIPE, env=env, text=True
    )
    try:
        assert child.stdout is not None
        killed_id = child.stdout.readline().strip()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL and len(killed_id) == 32

    with JobStore(path) as store:
        killed = store.get(killed_id)
        assert killed.status is JobStatus.RUNNING and killed.progress_done == 1 and killed.input == {"n": 0}
        assert store.queue_depth() == 5
        with JobRunner(store, {"square": square}, workers=2, poll_s=0.01):
            _wait_for(lambda: store.counts()["succeeded"] == 6)
        jobs, _ = store.list()
        assert sorted(job.result["square"] for job in jobs if job.result) == [n * n for n in range(6)]
        assert store.get(killed_id).attempts == 2 and store.get(killed_id).result == {"square": 0}
    with JobStore(path) as reopened:
        assert reopened.get(killed_id).result == {"square": 0}


def test_log_lines_of_a_job_name_it(store: JobStore) -> None:
    from altlas.logs import JsonFormatter

    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))  # formatted in the logging thread, as stdout's is

    handler = Capture()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)

    def chatty(ctx: JobContext) -> JobOutcome:
        logging.getLogger("altlas.test").info("working")
        return JobOutcome(result={"ok": True})

    try:
        with JobRunner(store, {"chatty": chatty}, poll_s=0.01):
            job, _ = store.submit("chatty", {})
            _wait_finished(store, job.id)
            _wait_for(lambda: any('"job ended"' in line for line in lines))
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    working = [line for line in lines if '"working"' in line]
    ended = [line for line in lines if '"job ended"' in line]
    assert working and f'"job_id": "{job.id}"' in working[0]
    assert (
        f'"job_id": "{job.id}"' in ended[0] and '"kind": "chatty"' in ended[0] and '"duration_s"' in ended[0]
    )
    assert '"status": "succeeded"' in ended[0]
