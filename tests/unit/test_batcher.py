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


class Chunks:
    """Pieces of a tuple of numbers: runs of at most `budget` numbers (each costs 1)."""

    def cut(self, item: tuple[int, ...], budget: int) -> list[tuple[int, ...]]:
        return [item[i : i + budget] for i in range(0, len(item), budget)]

    def join(
        self, item: tuple[int, ...], pieces: list[tuple[int, ...]], outputs: list[tuple[int, ...]]
    ) -> tuple[int, ...]:
        return tuple(n for output in outputs for n in output)


class PieceRecorder:
    """Runs batches of tuples (doubling each number), records them, holds them at a gate and
    tells when a run started."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[int, ...]]] = []
        self.gate = threading.Event()
        self.entered = threading.Event()

    def run(self, items: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        self.entered.set()
        self.gate.wait()
        self.batches.append(items)
        return [tuple(2 * n for n in item) for item in items]


def make_pieces(
    recorder: PieceRecorder, budget: int
) -> DynamicBatcher[tuple[int, ...], list[tuple[int, ...]], tuple[int, ...]]:
    return DynamicBatcher(
        "pieces", list, recorder.run, cost=len, policy=BatchPolicy(max_batch_tokens=budget), pieces=Chunks()
    )


def wait_until_idle(batcher: DynamicBatcher[tuple[int, ...], list[tuple[int, ...]], tuple[int, ...]]) -> None:
    deadline = time.monotonic() + 10
    while batcher.in_flight() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert batcher.in_flight() == 0


BIG = tuple(range(100, 140))  # 10 pieces of 4


def test_a_request_over_the_budget_runs_in_pieces_and_its_caller_gets_one_answer() -> None:
    recorder = PieceRecorder()
    recorder.gate.set()
    batcher = make_pieces(recorder, budget=4)
    served = batcher.submit(tuple(range(10))).result(10)
    assert served.value == tuple(2 * n for n in range(10))
    assert [item for batch in recorder.batches for item in batch] == [(0, 1, 2, 3), (4, 5, 6, 7), (8, 9)]
    assert served.batch_size == 3 and served.batch_tokens == 10 and served.batch_requests == 1
    assert batcher.stats.submitted == 1 and batcher.stats.items == 3 and batcher.in_flight() == 0
    assert batcher.submit((1, 2)).result(10).value == (2, 4)  # within the budget: whole, as before
    batcher.close()


def test_a_small_request_after_a_big_one_runs_before_the_big_ones_last_piece() -> None:
    recorder = PieceRecorder()
    batcher = make_pieces(recorder, budget=4)
    big = batcher.submit(BIG)
    assert recorder.entered.wait(10)  # the big one's first piece runs (held at the gate)
    small = batcher.submit((7,))
    recorder.gate.set()
    assert small.result(10).value == (14,)
    assert big.result(10).value == tuple(2 * n for n in BIG)
    ran = [item for batch in recorder.batches for item in batch]
    assert len(ran) == 11 and ran.index((7,)) < ran.index(BIG[-4:])
    assert ran.index((7,)) <= 2  # behind the piece running and at most the one prepared meanwhile
    batcher.close()


def test_cancelling_a_request_in_pieces_drops_the_pieces_not_yet_run() -> None:
    recorder = PieceRecorder()
    batcher = make_pieces(recorder, budget=4)
    big = batcher.submit(BIG)
    assert recorder.entered.wait(10)
    assert big.cancel()  # pending until its last piece: its caller can still give up
    recorder.gate.set()
    wait_until_idle(batcher)
    assert recorder.batches == [[BIG[:4]]]  # the piece that was running, and no other
    assert batcher.stats.skipped == 9 and batcher.stats.items == 1
    assert batcher.submit((3,)).result(10).value == (6,)
    batcher.close()


def test_a_failing_piece_fails_its_request_only() -> None:
    def run(items: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        if any(-1 in item for item in items):
            raise ValueError("bad piece")
        return items

    batcher: DynamicBatcher[tuple[int, ...], list[tuple[int, ...]], tuple[int, ...]] = DynamicBatcher(
        "failing", list, run, cost=len, policy=BatchPolicy(max_batch_tokens=2, enabled=False), pieces=Chunks()
    )
    with pytest.raises(ValueError, match="bad piece"):
        batcher.submit((1, 2, -1, 3, 4, 5, 6, 7)).result(10)
    assert batcher.submit((1, 2, 3)).result(10).value == (1, 2, 3)
    wait_until_idle(batcher)
    assert batcher.stats.items == 1 + 2  # the first's first piece (its second failed), the last's two
    assert batcher.stats.skipped == 2  # the first's last two pieces never ran
    batcher.close()


def test_close_finishes_a_request_in_pieces_or_refuses_it() -> None:
    recorder = PieceRecorder()
    recorder.gate.set()
    batcher = make_pieces(recorder, budget=4)
    future = batcher.submit(BIG)
    batcher.close(drain=True)
    assert future.result(1).value == tuple(2 * n for n in BIG)

    held = PieceRecorder()
    batcher = make_pieces(held, budget=4)
    future = batcher.submit(BIG)
    assert held.entered.wait(10)
    closing = threading.Thread(target=batcher.close, kwargs={"drain": False})
    closing.start()
    held.gate.set()
    closing.join(10)
    assert isinstance(future.exception(1), OverloadedError)
    assert batcher.in_flight() == 0 and len(held.batches) <= 2
