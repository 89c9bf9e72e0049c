"""The dynamic batcher: batches by token budget and wait, bounded queue, cancellation, OOM splits."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
import torch

from altlas.errors import InputTooLargeError, OverloadedError
from altlas.scheduling.batcher import BatchPolicy, DynamicBatcher, Served


class Recorder:
    """prepare/run pair that doubles numbers and records what ran, optionally held at a gate."""

    def __init__(self, run_seconds: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.events: list[tuple[str, float]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.run_seconds = run_seconds

    def prepare(self, items: list[int]) -> list[int]:
        self.events.append(("prepare", time.perf_counter()))
        return list(items)

    def run(self, items: list[int]) -> list[int]:
        self.gate.wait()
        self.events.append(("run", time.perf_counter()))
        time.sleep(self.run_seconds)
        self.batches.append(items)
        self.events.append(("ran", time.perf_counter()))
        return [2 * item for item in items]


def make(recorder: Recorder, **policy: object) -> DynamicBatcher[int, list[int], int]:
    return DynamicBatcher(
        "test", recorder.prepare, recorder.run, cost=lambda item: 1, policy=BatchPolicy(**policy)
    )  # type: ignore[arg-type]


def test_concurrent_callers_share_batches_and_get_their_own_results() -> None:
    recorder = Recorder(run_seconds=0.01)
    batcher = make(recorder, max_batch_tokens=64, max_wait_ms=5)
    with ThreadPoolExecutor(32) as pool:
        served = list(pool.map(lambda i: batcher.submit(i).result(10), range(200)))
    assert [s.value for s in served] == [2 * i for i in range(200)]
    assert sorted(i for batch in recorder.batches for i in batch) == list(range(200))
    assert max(len(b) for b in recorder.batches) > 1
    assert all(len(b) <= 64 for b in recorder.batches)
    assert all(s.batch_requests == s.batch_size >= 1 for s in served)
    # 32 callers never fill a 64-token batch: each batch's oldest item waited out the 5 ms window
    assert sum(s.queue_ms >= 5 for s in served) >= len(recorder.batches)
    assert batcher.stats.items == 200 and batcher.stats.batches == len(recorder.batches)
    batcher.close()


def test_batching_off_runs_every_item_alone() -> None:
    recorder = Recorder()
    batcher = make(recorder, enabled=False)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: batcher.submit(i).result(10), range(50)))
    assert all(len(b) == 1 for b in recorder.batches) and len(recorder.batches) == 50
    batcher.close()


def test_the_token_budget_caps_a_batch_by_cost() -> None:
    recorder = Recorder()
    recorder.gate.clear()  # hold the runner so the queue fills
    batcher: DynamicBatcher[int, list[int], int] = DynamicBatcher(
        "cost",
        recorder.prepare,
        recorder.run,
        cost=lambda item: item,
        policy=BatchPolicy(max_batch_tokens=10),
    )
    futures = [batcher.submit(n) for n in (4, 4, 4, 9, 1, 30)]
    recorder.gate.set()
    assert [f.result(10).value for f in futures] == [8, 8, 8, 18, 2, 60]
    for batch in recorder.batches:
        assert sum(batch) <= 10 or len(batch) == 1  # an item over the budget runs alone
    batcher.close()


def test_a_full_queue_refuses_with_a_retry_time_and_keeps_what_it_accepted() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    batcher = make(recorder, max_queue=3, max_batch_tokens=1)
    accepted = [batcher.submit(i) for i in range(3)]
    deadline = time.monotonic() + 5
    while batcher.queue_depth() and time.monotonic() < deadline:  # one runs, one handed over, one prepared
        time.sleep(0.001)
    assert batcher.queue_depth() == 0 and batcher.in_flight() == 3
    accepted += [batcher.submit(i) for i in range(3, 6)]
    assert batcher.queue_depth() == 3
    with pytest.raises(OverloadedError) as refused:
        batcher.submit(99)
    assert refused.value.retry_after_s >= 1
    assert batcher.stats.rejected == 1
    recorder.gate.set()
    assert [f.result(10).value for f in accepted] == [0, 2, 4, 6, 8, 10]
    batcher.close()


def test_a_cancelled_request_is_never_run() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    batcher = make(recorder, max_batch_tokens=1)
    first = batcher.submit(1)
    second = batcher.submit(2)  # prepared while the first is held
    third = batcher.submit(3)
    assert third.cancel()
    recorder.gate.set()
    assert first.result(10).value == 2 and second.result(10).value == 4
    batcher.close()
    assert [i for b in recorder.batches for i in b] == [1, 2]
    assert batcher.stats.skipped == 1


def test_out_of_memory_splits_the_batch_and_every_caller_still_gets_its_answer() -> None:
    ran: list[int] = []

    def run(items: list[int]) -> list[int]:
        if len(items) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated by the test's model)")
        ran.append(len(items))
        return [-i for i in items]

    gate = threading.Event()

    def prepare(items: list[int]) -> list[int]:
        gate.wait()
        return items

    batcher: DynamicBatcher[int, list[int], int] = DynamicBatcher(
        "oom", prepare, run, policy=BatchPolicy(max_batch_tokens=8)
    )
    futures = [batcher.submit(i) for i in range(8)]
    gate.set()
    assert [f.result(10).value for f in futures] == [-i for i in range(8)]
    assert batcher.stats.oom_splits >= 1 and max(ran) <= 2
    batcher.close()


def test_one_item_out_of_memory_fails_alone_and_the_batcher_goes_on() -> None:
    def run(items: list[int]) -> list[int]:
        if 13 in items:
            raise torch.OutOfMemoryError("too big")
        return items

    batcher: DynamicBatcher[int, list[int], int] = DynamicBatcher("one", list, run)
    bad = batcher.submit(13)
    with pytest.raises(InputTooLargeError, match="more device memory than the budget leaves"):
        bad.result(10)
    assert batcher.submit(5).result(10).value == 5
    batcher.close()


def test_an_error_fails_its_batch_only() -> None:
    def run(items: list[int]) -> list[int]:
        if any(i < 0 for i in items):
            raise ValueError("negative")
        return items

    batcher: DynamicBatcher[int, list[int], int] = DynamicBatcher(
        "errors", list, run, policy=BatchPolicy(enabled=False)
    )
    with pytest.raises(ValueError):
        batcher.submit(-1).result(10)
    assert batcher.submit(7).result(10).value == 7
    assert batcher.stats.failed_batches == 1
    batcher.close()


def test_preparing_the_next_batch_overlaps_the_running_one() -> None:
    recorder = Recorder(run_seconds=0.05)
    batcher = make(recorder, max_batch_tokens=1)
    futures = [batcher.submit(i) for i in range(3)]
    for future in futures:
        future.result(10)
    batcher.close()
    events = recorder.events
    first_run = next(t for name, t in events if name == "run")
    first_ran = next(t for name, t in events if name == "ran")
    prepares = [t for name, t in events if name == "prepare"]
    assert any(first_run <= t < first_ran for t in prepares)  # batch 2 prepared during batch 1


def test_close_drains_accepted_work_or_refuses_it() -> None:
    recorder = Recorder(run_seconds=0.01)
    batcher = make(recorder, max_batch_tokens=1)
    futures = [batcher.submit(i) for i in range(5)]
    batcher.close(drain=True)
    assert [f.result(1).value for f in futures] == [0, 2, 4, 6, 8]
    with pytest.raises(OverloadedError):
        batcher.submit(1)

    held = Recorder()
    held.gate.clear()
    batcher = make(held, max_batch_tokens=1)
    futures = [batcher.submit(i) for i in range(5)]
    time.sleep(0.05)
    closing = threading.Thread(target=batcher.close, kwargs={"drain": False})
    closing.start()
    time.sleep(0.05)
    held.gate.set()
    closing.join(10)
    outcomes: list[Future[Served[int]]] = futures
    refused = [f for f in outcomes if isinstance(f.exception(1), OverloadedError)]
    assert refused and all(f.result(1).value == 2 * i for i, f in enumerate(outcomes) if f not in refused)


def test_a_bad_policy_is_refused() -> None:
    with pytest.raises(ValueError):
        BatchPolicy(max_batch_tokens=0)
    with pytest.raises(ValueError):
        BatchPolicy(max_queue=0)
