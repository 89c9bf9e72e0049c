"""Spill-over: a model's overflow served by a replica on another device instead of waiting.

A model loaded on a GPU may keep a CPU replica. Requests go to the GPU's batcher unless it is
saturated: `queue_depth` items queued, or an estimated wait of `wait_ms` (what is in flight
at the recent pace per item). Then a request goes to the replica, if the replica has room and
would start it sooner (a slow CPU with a long queue of its own helps nobody). A request the
GPU's queue refuses as full is offered to the replica before the caller gets a 429; one the
replica refuses (it filled meanwhile) goes back to the GPU. So nothing is dropped, and each
answer's `Served.device` says which device ran it.

The router does not care what the devices are: any two batchers with the same items and
outputs will do (tests use two CPU batchers, one of them slow).
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from altlas.errors import OverloadedError
from altlas.scheduling.batcher import DynamicBatcher, Served

__all__ = ["BatchQueue", "QueueState", "SpillPolicy", "SpilloverRouter", "should_spill"]

Item = TypeVar("Item")
Output = TypeVar("Output")
ItemIn = TypeVar("ItemIn", contravariant=True)


class BatchQueue(Protocol[ItemIn, Output]):
    """What a backend submits its requests to: one batcher, or a router in front of two."""

    def submit(self, item: ItemIn) -> Future[Served[Output]]: ...

    def in_flight(self) -> int: ...

    def close(self, drain: bool = True, timeout: float = 120.0) -> None: ...


@dataclass(frozen=True, slots=True)
class SpillPolicy:
    """When the primary counts as saturated (either bound; `wait_ms` 0 turns the wait bound off)."""

    queue_depth: int = 64
    wait_ms: float = 250.0

    def __post_init__(self) -> None:
        if self.queue_depth < 1 or self.wait_ms < 0:
            raise ValueError(f"invalid spill-over policy {self}")


@dataclass(frozen=True, slots=True)
class QueueState:
    """One batcher at the moment of a decision."""

    queued: int  # items waiting to be gathered
    wait_ms: float  # estimated wait of an item submitted now
    has_room: bool  # whether its queue takes one more


def should_spill(primary: QueueState, replica: QueueState, policy: SpillPolicy) -> bool:
    """Whether the next request should go to the replica rather than wait for the primary."""
    saturated = primary.queued >= policy.queue_depth or (
        policy.wait_ms > 0 and primary.wait_ms >= policy.wait_ms
    )
    return saturated and replica.has_room and replica.wait_ms < primary.wait_ms


def queue_state(batcher: DynamicBatcher[Any, Any, Any]) -> QueueState:
    queued = batcher.queue_depth()
    return QueueState(queued, batcher.estimated_wait_s() * 1e3, queued < batcher.policy.max_queue)


class SpilloverRouter(Generic[Item, Output]):
    """Sends each item to `primary`, or to `replica` when the primary is saturated; counts spills."""

    def __init__(
        self,
        primary: DynamicBatcher[Item, Any, Output],
        replica: DynamicBatcher[Item, Any, Output],
        policy: SpillPolicy,
    ) -> None:
        self.primary = primary
        self.replica = replica
        self.policy = policy
        self._spilled = 0
        self._count = threading.Lock()

    @property
    def spilled(self) -> int:
        """Requests the replica took (counted over the router's life)."""
        return self._spilled

    def submit(self, item: Item) -> Future[Served[Output]]:
        if should_spill(queue_state(self.primary), queue_state(self.replica), self.policy):
            try:
                return self._to_replica(item)
            except OverloadedError:
                pass  # the replica filled meanwhile: the primary's queue takes it, or says it is full
        try:
            return self.primary.submit(item)
        except OverloadedError:
            return self._to_replica(item)  # a 429 only when both queues are full (or closing)

    def _to_replica(self, item: Item) -> Future[Served[Output]]:
        future = self.replica.submit(item)
        with self._count:
            self._spilled += 1
        return future

    def in_flight(self) -> int:
        return self.primary.in_flight() + self.replica.in_flight()

    def close(self, drain: bool = True, timeout: float = 120.0) -> None:
        """Close both batchers (each finishes, or refuses, what it accepted)."""
        self.primary.close(drain, timeout)
        self.replica.close(drain, timeout)
