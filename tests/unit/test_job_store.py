from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from altlas.errors import InvalidInputError, NotFoundError
from altlas.jobs import Job, JobStateError, JobStatus, JobStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    with JobStore(tmp_path / "jobs.db") as opened:
        yield opened


def _in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run work(0..count-1) in threads released together; returns their results in order."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            barrier.wait()
            results[n] = work(n)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return results


def test_submit_then_get_round_trips(store: JobStore) -> None:
    job, created = store.submit("embed", {"texts": ["a", "ü"]}, priority=7, deadline=time.time() + 60)
    assert created and len(job.id) == 32
    assert store.get(job.id) == job
    assert store.get(job.id.upper()) == job
    assert job.status is JobStatus.QUEUED and job.attempts == 0 and job.input == {"texts": ["a", "ü"]}
    assert job.started_at is None and job.finished_at is None and job.result is None and not job.finished


def test_same_idempotency_key_returns_the_first_job(store: JobStore) -> None:
    first, created = store.submit("embed", {"n": 1}, idempotency_key="k1")
    again, created_again = store.submit("embed", {"n": 2}, idempotency_key="k1")
    other, created_other = store.submit("embed", {"n": 1}, idempotency_key="k2")
    assert created and not created_again and created_other
    assert again == first and other.id != first.id
    assert store.counts()["queued"] == 2


def test_idempotency_holds_under_concurrent_submits(tmp_path: Path) -> None:
    shared = JobStore(tmp_path / "jobs.db")
    # Half the threads share one connection, half open their own: both paths must dedupe.
    stores = [shared if n % 2 else JobStore(tmp_path / "jobs.db") for n in range(8)]
    try:
        results = _in_threads(8, lambda n: stores[n].submit("embed", {"n": n}, idempotency_key="same"))
        assert len({job.id for job, _ in results}) == 1
        assert sum(created for _, created in results) == 1
        assert shared.queue_depth() == 1
    finally:
        for opened in {id(s): s for s in stores}.values():
            opened.close()


def test_claims_by_priority_then_age(store: JobStore) -> None:
    low = store.submit("k", {"name": "low"}, priority=0)[0]
    first_urgent = store.submit("k", {"name": "u1"}, priority=9)[0]
    mid = store.submit("k", {"name": "mid"})[0]
    second_urgent = store.submit("k", {"name": "u2"}, priority=9)[0]
    claimed = [store.claim_next() for _ in range(4)]
    assert [job.id for job in claimed if job] == [first_urgent.id, second_urgent.id, mid.id, low.id]
    assert all(job and job.status is JobStatus.RUNNING and job.attempts == 1 for job in claimed)
    assert store.claim_next() is None


def test_job_past_its_deadline_expires_and_never_runs(store: JobStore) -> None:
    now = time.time()
    late = store.submit("k", {}, priority=9, deadline=now - 1)[0]
    on_time = store.submit("k", {}, priority=0, deadline=now + 60)[0]
    claimed = store.claim_next(now=now)
    assert claimed is not None and claimed.id == on_time.id
    expired = store.get(late.id)
    assert expired.status is JobStatus.EXPIRED and expired.attempts == 0 and expired.started_at is None
    assert expired.error is not None and expired.error["code"] == "deadline_exceeded"
    assert expired.expires_at is not None and expired.finished


def test_cancel_queued_running_and_finished(store: JobStore) -> None:
    queued = store.submit("k", {})[0]
    cancelled = store.cancel(queued.id)
    assert cancelled.status is JobStatus.CANCELLED and cancelled.finished_at is not None
    assert store.claim_next() is None

    running = store.submit("k", {})[0]
    assert store.claim_next() is not None
    requested = store.cancel(running.id)
    assert requested.status is JobStatus.RUNNING and requested.cancel_requested
    assert store.is_cancel_requested(running.id)
    assert store.mark_cancelled(running.id).status is JobStatus.CANCELLED

    done = store.submit("k", {})[0]
    store.claim_next()
    succeeded = store.succeed(done.id, {"ok": True})
    assert store.cancel(done.id) == succeeded
    with pytest.raises(NotFoundError):
        store.cancel("0" * 32)


def test_progress_and_finishing_need_a_running_job(store: JobStore) -> None:
    job = store.submit("k", {})[0]
    with pytest.raises(JobStateError):
        store.set_progress(job.id, 1, 2)
    with pytest.raises(JobStateError):
        store.succeed(job.id, {})
    store.claim_next()
    store.set_progress(job.id, 3, 10)
    assert (store.get(job.id).progress_done, store.get(job.id).progress_total) == (3, 10)
    failed = store.fail(job.id, "boom", "internal_error")
    assert failed.status is JobStatus.FAILED and failed.error == {"message": "boom", "code": "internal_error"}
    assert failed.expires_at == pytest.approx(failed.finished_at + store.result_ttl_s)  # type: ignore[operator]
    with pytest.raises(JobStateError):
        store.fail(job.id, "again", "x")


def test_recover_requeues_what_a_dropped_store_left_running(tmp_path: Path) -> None:
    crashed = JobStore(tmp_path / "jobs.db")
    job = crashed.submit("k", {"n": 4})[0]
    asked_to_cancel = crashed.submit("k", {})[0]
    assert crashed.claim_next() is not None and crashed.claim_next() is not None
    crashed.set_progress(job.id, 1, 2)
    crashed.cancel(asked_to_cancel.id)
    crashed.close()  # jobs left running, never finished: as if the process had died
    del crashed

    with JobStore(tmp_path / "jobs.db") as store:
        assert store.recover() == 1
        requeued = store.get(job.id)
        assert (
            requeued.status is JobStatus.QUEUED and requeued.progress_done is None and requeued.attempts == 1
        )
        assert store.get(asked_to_cancel.id).status is JobStatus.CANCELLED
        again = store.claim_next()
        assert again is not None and again.id == job.id and again.attempts == 2
        store.succeed(job.id, {"square": 16})
        assert store.get(job.id).result == {"square": 16}


def test_recover_fails_a_job_that_keeps_killing_its_process(tmp_path: Path) -> None:
    with JobStore(tmp_path / "jobs.db", max_attempts=2) as store:
        job = store.submit("k", {})[0]
        for _ in range(2):
            store.claim_next()
            store.recover()
        crashed = store.get(job.id)
        assert crashed.status is JobStatus.FAILED and crashed.error is not None
        assert crashed.error["code"] == "crashed"


def test_results_survive_reopening(tmp_path: Path) -> None:
    with JobStore(tmp_path / "jobs.db") as store:
        inline = store.submit("k", {})[0]
        in_file = store.submit("k", {})[0]
        store.claim_next()
        store.succeed(inline.id, {"labels": ["a", "b"]})
        store.claim_next()
        name = store.write_result_file(in_file.id, ".bin", lambda path: path.write_bytes(b"\x00" * 1000))
        store.succeed(in_file.id, result_file=name)
    with JobStore(tmp_path / "jobs.db") as reopened:
        assert reopened.get(inline.id).result == {"labels": ["a", "b"]}
        stored = reopened.get(in_file.id)
        path = reopened.result_path(stored)
        assert stored.result_file == f"{in_file.id}.bin" and path is not None
        assert path.parent == tmp_path / "job-results" and path.read_bytes() == b"\x00" * 1000


def test_result_files_are_checked(store: JobStore) -> None:
    job, other = store.submit("k", {})[0], store.submit("k", {})[0]
    store.claim_next()
    with pytest.raises(InvalidInputError) as bad_suffix:
        store.write_result_file(job.id, "/../x", lambda path: path.write_text("x"))
    assert bad_suffix.value.field == "suffix"
    name = store.write_result_file(other.id, ".txt", lambda path: path.write_text("x"))
    for wrong in (name, f"{job.id}.missing", "../jobs.db"):
        with pytest.raises(InvalidInputError) as caught:
            store.succeed(job.id, result_file=wrong)
        assert caught.value.field == "result_file"
    with pytest.raises(InvalidInputError) as too_big:
        store.succeed(job.id, {"blob": "x" * (1 << 20)})
    assert too_big.value.field == "result"
    assert store.get(job.id).status is JobStatus.RUNNING


def test_expired_results_are_deleted_with_their_files(tmp_path: Path) -> None:
    with JobStore(tmp_path / "jobs.db", result_ttl_s=10) as store:
        job = store.submit("k", {}, idempotency_key="once")[0]
        kept = store.submit("k", {})[0]
        store.claim_next()
        name = store.write_result_file(job.id, ".npy", lambda path: path.write_bytes(b"data"))
        finished = store.succeed(job.id, result_file=name)
        assert finished.finished_at is not None and finished.expires_at == finished.finished_at + 10
        assert store.expire_results(now=finished.finished_at + 5) == 0
        assert store.expire_results(now=finished.finished_at + 11) == 1
        with pytest.raises(NotFoundError):
            store.get(job.id)
        assert not (store.result_dir / name).exists()
        assert store.get(kept.id).status is JobStatus.QUEUED  # unfinished jobs never expire
        assert store.submit("k", {}, idempotency_key="once")[1]  # the key is free again


def test_list_pages_newest_first_with_filters(store: JobStore) -> None:
    jobs = [store.submit("a" if n % 2 else "b", {"n": n})[0] for n in range(7)]
    store.cancel(jobs[6].id)
    seen: list[Job] = []
    cursor: str | None = None
    pages = 0
    while True:
        page, cursor = store.list(limit=3, after=cursor)
        seen += page
        pages += 1
        if cursor is None:
            break
    assert pages == 3 and [job.id for job in seen] == [job.id for job in reversed(jobs)]
    assert [job.id for job in store.list(kind="a")[0]] == [jobs[5].id, jobs[3].id, jobs[1].id]
    assert [job.id for job in store.list(status="cancelled")[0]] == [jobs[6].id]
    queued_b, after = store.list(status="queued", kind="b", limit=2)
    assert [job.id for job in queued_b] == [jobs[4].id, jobs[2].id] and after is not None
    assert [job.id for job in store.list(status="queued", kind="b", after=after)[0]] == [jobs[0].id]
    assert store.list(kind="none") == ([], None)


def test_counts_and_queue_depth(store: JobStore) -> None:
    for _ in range(3):
        store.submit("k", {})
    store.claim_next()
    assert store.queue_depth() == 2
    counts = store.counts()
    assert counts["queued"] == 2 and counts["running"] == 1 and counts["expired"] == 0
    assert set(counts) == {status.value for status in JobStatus}


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s: s.submit("k", {}, priority=10), "priority"),
        (lambda s: s.submit("k", {}, priority=-1), "priority"),
        (lambda s: s.submit("k", {}, priority="5"), "priority"),
        (lambda s: s.submit("k", {}, priority=True), "priority"),
        (lambda s: s.submit("", {}), "kind"),
        (lambda s: s.submit("k", ["not", "a", "dict"]), "input"),
        (lambda s: s.submit("k", {"x": float("nan")}), "input"),
        (lambda s: s.submit("k", {"x": object()}), "input"),
        (lambda s: s.submit("k", {}, deadline=float("inf")), "deadline"),
        (lambda s: s.submit("k", {}, idempotency_key=""), "idempotency_key"),
        (lambda s: s.get("../../etc/passwd"), "id"),
        (lambda s: s.get("g" * 32), "id"),
        (lambda s: s.cancel("1234"), "id"),
        (lambda s: s.list(status="done"), "status"),
        (lambda s: s.list(limit=0), "limit"),
        (lambda s: s.list(limit=501), "limit"),
        (lambda s: s.list(after="not-a-cursor"), "after"),
    ],
)
def test_bad_input_names_the_field(store: JobStore, call: Callable[[JobStore], object], field: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        call(store)
    assert caught.value.field == field


def test_unknown_id_is_not_found(store: JobStore) -> None:
    with pytest.raises(NotFoundError) as caught:
        store.get("ab" * 16)
    assert caught.value.field == "id"


def test_concurrent_claims_hand_out_each_job_once(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    with JobStore(path) as store:
        submitted = {store.submit("k", {"n": n})[0].id for n in range(200)}
    stores = [JobStore(path) for _ in range(4)]  # 8 threads on 4 connections: two per connection

    def drain(n: int) -> list[str]:
        claimed = []
        while (job := stores[n % 4].claim_next()) is not None:
            claimed.append(job.id)
        return claimed

    try:
        claimed = [job_id for batch in _in_threads(8, drain) for job_id in batch]
    finally:
        for opened in stores:
            opened.close()
    assert len(claimed) == 200 and set(claimed) == submitted
