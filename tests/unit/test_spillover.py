"""Spill-over to a replica: the decision as arithmetic, then a router in front of two CPU batchers
standing in for a GPU (the primary, slow or held) and its CPU replica."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from altlas.errors import InvalidInputError, OverloadedError
from altlas.orchestrator.backends import VadBackend, add_cpu_replica
from altlas.orchestrator.manager import ModelManager
from altlas.orchestrator.registry import ModelSpec, Registry, resolve_source
from altlas.scheduling.batcher import BatchPolicy, DynamicBatcher
from altlas.scheduling.spillover import QueueState, SpilloverRouter, SpillPolicy, should_spill
from altlas.settings import Settings

# items wait in the queue for the whole window unless the token budget fills: a queue that
# stays exactly as deep as the test made it
HELD = BatchPolicy(max_batch_tokens=1_000, max_wait_ms=60_000)


def batcher(
    device: str, policy: BatchPolicy = HELD, run_s: float = 0.0
) -> DynamicBatcher[int, list[int], int]:
    def run(items: list[int]) -> list[int]:
        time.sleep(run_s)
        return [2 * item for item in items]

    return DynamicBatcher(f"double@{device}", list, run, policy=policy, device=device)


def test_spill_only_when_the_primary_is_saturated_and_the_replica_would_start_sooner() -> None:
    policy = SpillPolicy(queue_depth=4, wait_ms=100)
    calm, deep, slow = QueueState(1, 10, True), QueueState(4, 10, True), QueueState(0, 150, True)
    empty = QueueState(0, 0, True)
    assert not should_spill(calm, empty, policy)
    assert should_spill(deep, empty, policy) and should_spill(slow, empty, policy)
    assert not should_spill(deep, QueueState(0, 0, has_room=False), policy)  # the replica is full
    assert not should_spill(slow, QueueState(3, 400, True), policy)  # the replica would be slower still
    assert not should_spill(slow, empty, SpillPolicy(queue_depth=4, wait_ms=0))  # the wait bound is off
    with pytest.raises(ValueError):
        SpillPolicy(queue_depth=0)


def test_past_the_queue_depth_requests_go_to_the_replica_and_say_so() -> None:
    router = SpilloverRouter(batcher("gpu"), batcher("cpu"), SpillPolicy(queue_depth=3, wait_ms=0))
    futures = [router.submit(i) for i in range(5)]
    assert router.primary.queue_depth() == 3 and router.replica.in_flight() + router.primary.in_flight() == 5
    router.close()  # drains both: every accepted request is answered
    served = [f.result(10) for f in futures]
    assert [s.value for s in served] == [0, 2, 4, 6, 8]
    assert [s.device for s in served] == ["gpu", "gpu", "gpu", "cpu", "cpu"]
    assert router.spilled == 2


def test_past_the_estimated_wait_requests_go_to_the_replica() -> None:
    router = SpilloverRouter(batcher("gpu"), batcher("cpu"), SpillPolicy(queue_depth=1_000, wait_ms=50))
    router.primary.stats.recent_item_s.append(0.02)  # the GPU's recent pace: 20 ms an item
    futures = [router.submit(i) for i in range(5)]  # waits 0, 20, 40 ms; then 60 >= 50
    router.close()
    assert [f.result(10).device for f in futures] == ["gpu", "gpu", "gpu", "cpu", "cpu"]


def test_a_slower_replica_waits_for_a_full_primary_and_a_429_comes_when_both_are_full() -> None:
    replica = batcher("cpu", policy=BatchPolicy(max_batch_tokens=1_000, max_wait_ms=60_000, max_queue=2))
    replica.stats.recent_item_s.append(5.0)  # the CPU's recent pace: 5 s an item
    own = replica.submit(0)  # one queued there: a 5 s wait
    primary = batcher("gpu", policy=BatchPolicy(max_batch_tokens=1_000, max_wait_ms=60_000, max_queue=3))
    router = SpilloverRouter(primary, replica, SpillPolicy(queue_depth=1, wait_ms=0))
    # 1-3: the GPU is saturated by depth, yet sooner than the CPU; 4: the GPU's queue is full
    futures = [router.submit(i) for i in range(1, 5)]
    assert primary.queue_depth() == 3 and router.spilled == 1
    with pytest.raises(OverloadedError):  # both queues full: nothing accepted, the caller gets a 429
        router.submit(5)
    router.close()
    assert [f.result(10).device for f in futures] == ["gpu", "gpu", "gpu", "cpu"]
    assert own.result(10).value == 0


def test_many_concurrent_callers_lose_nothing_and_closing_closes_both() -> None:
    fast = BatchPolicy(max_batch_tokens=8, max_wait_ms=1)
    router = SpilloverRouter(
        batcher("gpu", fast, run_s=0.005), batcher("cpu", fast), SpillPolicy(queue_depth=4, wait_ms=0)
    )
    with ThreadPoolExecutor(32) as pool:
        served = list(pool.map(lambda i: router.submit(i).result(10), range(300)))
    assert [s.value for s in served] == [2 * i for i in range(300)]
    on_replica = sum(s.device == "cpu" for s in served)
    assert on_replica == router.spilled > 0 and on_replica < 300
    router.close()
    for queue in (router.primary, router.replica):
        with pytest.raises(OverloadedError, match="shutting down"):
            queue.submit(1)


def test_a_backend_with_a_replica_routes_through_it_and_closes_it() -> None:
    path = resolve_source("package:silero_vad/data/silero_vad.jit", Path("."))
    cpu, policy = torch.device("cpu"), BatchPolicy()
    primary, replica = VadBackend("vad", path, cpu, 30.0, policy), VadBackend("vad", path, cpu, 30.0, policy)
    alone = primary.batchers()
    add_cpu_replica(primary, replica, SpillPolicy())
    assert isinstance(primary.batcher, SpilloverRouter) and primary.replica is replica
    assert primary.batchers() == [*alone, *replica.batchers()] and primary.replica_device() == "cpu"
    assert (primary.in_flight(), primary.spillovers(), primary.oom_splits()) == (0, 0, 0)
    assert primary.decoding() is None and primary.decode_path is None
    with pytest.raises(InvalidInputError):  # one replica only
        add_cpu_replica(primary, VadBackend("vad", path, cpu, 30.0, policy), SpillPolicy())
    primary.close()
    assert replica.detector.model is None
    with pytest.raises(OverloadedError):
        replica.batcher.submit(object())  # type: ignore[arg-type]


def test_spill_options_are_checked(tmp_path: Path) -> None:
    manager = ModelManager(Registry(tmp_path / "models.yaml"), Settings(data_dir=tmp_path))

    def spec(task: str, backend: str, **options: object) -> ModelSpec:
        return ModelSpec("m", task, backend, {"1": "m"}, "1", options=dict(options))

    assert manager.spill_policy(spec("embedding", "sentence-transformers")) is None
    assert manager.spill_policy(spec("embedding", "sentence-transformers", cpu_replica=True)) == SpillPolicy()
    custom = manager.spill_policy(
        spec("audio-vad", "silero", cpu_replica=True, spill_queue_depth=8, spill_wait_ms=0)
    )
    assert custom == SpillPolicy(queue_depth=8, wait_ms=0)
    for bad in (
        spec("generation", "transformers", cpu_replica=True),
        spec("audio-vad", "silero", cpu_replica="yes"),
        spec("audio-vad", "silero", cpu_replica=True, spill_queue_depth=0),
    ):
        with pytest.raises(InvalidInputError):
            manager.spill_policy(bad)


def test_the_router_is_safe_to_call_from_many_threads_while_it_counts() -> None:
    router = SpilloverRouter(batcher("gpu"), batcher("cpu"), SpillPolicy(queue_depth=1, wait_ms=0))
    start = threading.Barrier(16)

    def submit_many(first: int) -> None:
        start.wait()
        for i in range(first, first + 20):
            router.submit(i)

    threads = [threading.Thread(target=submit_many, args=(i * 20,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert router.replica.in_flight() == router.spilled > 0  # every spill counted once
    assert router.primary.in_flight() + router.spilled == 320
    router.close()
