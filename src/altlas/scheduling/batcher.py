"""Dynamic batching: concurrent requests to one model on one device, gathered into batches.

A request becomes an *item* with a cost (its tokens, or 1) and a future. A gatherer thread
takes the queued items into a batch by a token budget (`max_batch_tokens`) and a short wait
(`max_wait_ms`, counted from the oldest item's arrival), prepares it (padding, copies) and
hands it to a runner thread, one batch deep: while batch n runs on the device, batch n+1 is
gathered and prepared. Each caller gets its own result, with the time it queued and the size
of the batch it rode in.

Bounds and failures, the way a server needs them:
- the queue holds at most `max_queue` items; one more is refused with OverloadedError
  (HTTP 429 with Retry-After, estimated from the recent pace), so nothing accepted is dropped;
- an item whose future was cancelled (its caller timed out or disconnected) before its batch
  was gathered is skipped, never run;
- a batch that runs out of device memory is split in halves and retried (down to one item,
  which then fails alone); the process never dies of it, and the splits are counted.

Large requests, fairly: an item that costs more than the token budget is cut into pieces
(by the batcher's `Pieces`, which know the item's kind: runs of texts for embeddings) that
take turns with other requests. A request's pieces join the queue one at a time, each when
the one before it starts running, so a request that arrives meanwhile waits for a piece or
two, not for the whole large one (round-robin between requests, and the next piece is always
prepared while one runs). The caller still gets one future, for the joined output; it stays
pending until the last piece has run, so cancelling it drops every piece not yet run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

import torch

from altlas.errors import InputTooLargeError, OverloadedError
from altlas.observability.distribution import (
    REQUESTS_BOUNDS,
    SECONDS_BOUNDS,
    TOKENS_BOUNDS,
    Distribution,
    PreparedWork,
)

__all__ = ["BatchPolicy", "BatcherStats", "DynamicBatcher", "Pieces", "Served"]

if TYPE_CHECKING:
    from altlas.settings import Settings

log = logging.getLogger("altlas.scheduling")

Item = TypeVar("Item")
Prepared = TypeVar("Prepared")
Output = TypeVar("Output")


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """How a batcher gathers: a token budget per batch, a wait window, a queue bound."""

    max_batch_tokens: int = 16_384
    max_wait_ms: float = 2.0
    max_queue: int = 1_024
    enabled: bool = True  # off: every item runs alone (the baseline batching is measured against)

    def __post_init__(self) -> None:
        if self.max_batch_tokens < 1 or self.max_wait_ms < 0 or self.max_queue < 1:
            raise ValueError(f"invalid batch policy {self}")

    @classmethod
    def from_settings(cls, settings: Settings, device_type: str) -> BatchPolicy:
        """The settings' batching for a model on a device of this type ("cuda", "cpu"): its token
        budget (by device when the setting is 0: GPU 32,768, CPU 4,096), wait, queue bound."""
        tokens = settings.batch_max_tokens or (32_768 if device_type == "cuda" else 4_096)
        return cls(tokens, settings.batch_max_wait_ms, settings.queue_max, settings.batching)


class Pieces(Protocol[Item, Output]):
    """How a batcher cuts an item that costs more than its token budget, and joins the outputs."""

    def cut(self, item: Item, budget: int) -> list[Item]:
        """Consecutive parts of `item` in order, each costing at most `budget` (a part that is
        one unit of work, such as one text, may cost more)."""
        ...

    def join(self, item: Item, pieces: list[Item], outputs: list[Output]) -> Output:
        """`item`'s output from its pieces' outputs, in order."""
        ...


@dataclass(frozen=True, slots=True)
class Served(Generic[Output]):
    """One caller's result and what its batch looked like. For a request cut into pieces:
    queue_ms to its first piece's start, run_ms from there to its last piece's end, batch_size
    and batch_tokens summed over its pieces' batches, batch_requests the most of any of them."""

    value: Output
    queue_ms: float  # arrival to the start of its batch's run
    run_ms: float  # its batch's run
    batch_size: int  # units of work in that batch (texts, images; `size` of its items)
    batch_requests: int  # items (requests) in that batch
    batch_tokens: int
    device: str = ""  # the device that ran it (its batcher's label), e.g. "cpu" when spilled over


@dataclass(slots=True)
class BatcherStats:
    """Counters over the batcher's life (read by status endpoints and metrics)."""

    submitted: int = 0  # requests (one cut into pieces counts once)
    rejected: int = 0  # refused at a full queue
    skipped: int = 0  # items and pieces never run: their callers gave up before
    batches: int = 0
    items: int = 0  # items run (each piece counts)
    tokens: int = 0
    oom_splits: int = 0
    failed_batches: int = 0
    run_seconds: float = 0.0
    recent_item_s: deque[float] = field(default_factory=lambda: deque(maxlen=64))  # run time per item
    queue_wait_s: Distribution = field(default_factory=lambda: Distribution(SECONDS_BOUNDS))  # per item
    run_s: Distribution = field(default_factory=lambda: Distribution(SECONDS_BOUNDS))  # per batch
    batch_requests: Distribution = field(default_factory=lambda: Distribution(REQUESTS_BOUNDS))
    batch_tokens: Distribution = field(default_factory=lambda: Distribution(TOKENS_BOUNDS))
    # from preparations that tell their work (altlas.observability.distribution.PreparedWork)
    tokenize_s: Distribution = field(default_factory=lambda: Distribution(SECONDS_BOUNDS))  # per batch
    request_s: Distribution = field(default_factory=lambda: Distribution(SECONDS_BOUNDS))  # arrival to result
    real_tokens: int = 0
    computed_tokens: int = 0  # real tokens and padding: real / computed is the padding efficiency


@dataclass(slots=True, eq=False)
class _Split(Generic[Item, Output]):
    """A request cut into pieces, and what its pieces gave so far."""

    item: Item
    pieces: list[Item]
    costs: list[int]
    future: Future[Served[Output]]  # the caller's: pending until the last piece ran (cancellable)
    arrived: float
    queued: int = 1  # pieces that joined the queue: the first at submit, the others one by one
    outputs: list[Output] = field(default_factory=list)
    started: float = 0.0  # its first piece's run
    batch_size: int = 0
    batch_requests: int = 0
    batch_tokens: int = 0


@dataclass(slots=True)
class _Pending(Generic[Item, Output]):
    item: Item
    cost: int
    future: Future[Served[Output]]  # a piece's is its request's
    arrived: float
    split: _Split[Item, Output] | None = None  # set for a piece of a request cut into pieces


class DynamicBatcher(Generic[Item, Prepared, Output]):
    """Batches for one model on one device; `submit` from any thread, results through futures.

    prepare(items) -> prepared (host work: padding, pinned copies; overlaps the previous run)
    run(prepared) -> one output per item, in order (the device work)
    cost(item) -> tokens the item adds to a batch
    size(item) -> units of work in the item (texts of a request), for reports
    pieces: cuts an item that costs more than the token budget (None: such an item runs whole)
    """

    def __init__(
        self,
        name: str,
        prepare: Callable[[list[Item]], Prepared],
        run: Callable[[Prepared], Sequence[Output]],
        cost: Callable[[Item], int] = lambda _item: 1,
        policy: BatchPolicy | None = None,
        size: Callable[[Item], int] = lambda _item: 1,
        device: str = "",
        pieces: Pieces[Item, Output] | None = None,
    ) -> None:
        self.name = name
        self.device = device  # told to each caller in its Served
        self.policy = policy or BatchPolicy()
        self._prepare = prepare
        self._run = run
        self._cost = cost
        self._size = size
        self._pieces = pieces
        self.stats = BatcherStats()
        self._queue: deque[_Pending[Item, Output]] = deque()
        self._changed = threading.Condition()
        self._handoff: deque[tuple[list[_Pending[Item, Output]], Prepared | BaseException]] = deque()
        self._handoff_changed = threading.Condition()
        self._running = 0  # items in the batch being run
        self._held = 0  # items in the batch being prepared (or waiting for the runner)
        self._queued_cost = 0  # sum of the queued items' costs (kept, not summed per wake-up)
        self._unqueued = 0  # pieces of accepted requests still to join the queue
        self._closed = False  # no more submits; the gatherer ends when the queue is empty
        self._refusing = False  # closed without draining: pieces still to come fail
        self._gathering = True  # the runner ends when this is False and no batch is handed over
        self._threads = [
            threading.Thread(target=self._gather_loop, name=f"altlas-batch-{name}", daemon=True),
            threading.Thread(target=self._run_loop, name=f"altlas-run-{name}", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    # callers

    def submit(self, item: Item) -> Future[Served[Output]]:
        """Queue one item (one over the token budget in pieces); OverloadedError (nothing
        queued) when the queue is full or closed."""
        cost = max(1, int(self._cost(item)))
        future: Future[Served[Output]] = Future()
        if cost > self.policy.max_batch_tokens and self._pieces is not None:
            pieces = self._pieces.cut(item, self.policy.max_batch_tokens)
            if len(pieces) > 1:
                costs = [max(1, int(self._cost(piece))) for piece in pieces]
                split = _Split(item, pieces, costs, future, time.perf_counter())
                self._enqueue(_Pending(pieces[0], costs[0], future, split.arrived, split), len(pieces) - 1)
                return future
        self._enqueue(_Pending(item, cost, future, time.perf_counter()), 0)
        return future

    def _enqueue(self, pending: _Pending[Item, Output], more_pieces: int) -> None:
        with self._changed:
            if self._closed:
                raise OverloadedError(f"model {self.name!r} is shutting down", retry_after_s=1.0)
            if len(self._queue) >= self.policy.max_queue:
                self.stats.rejected += 1
                raise OverloadedError(
                    f"the queue of model {self.name!r} is full ({self.policy.max_queue:,} requests waiting)",
                    retry_after_s=self.retry_after_s(),
                )
            self._queue.append(pending)
            self._queued_cost += pending.cost
            self._unqueued += more_pieces
            self.stats.submitted += 1
            # The gatherer waits for a first item, then for the batch to fill or its window to
            # end: only those need a wake-up. Waking it on every item cost a GIL hand-off each.
            if len(self._queue) == 1 or self._queued_cost >= self.policy.max_batch_tokens:
                self._changed.notify()

    def queue_depth(self) -> int:
        with self._changed:
            return len(self._queue)

    def in_flight(self) -> int:
        """Items queued, prepared or running, and pieces still to join the queue."""
        with self._changed, self._handoff_changed:
            handed = sum(len(batch) for batch, _ in self._handoff)
            return len(self._queue) + self._unqueued + self._held + handed + self._running

    def retry_after_s(self) -> float:
        """How long the queue takes to drain at the recent pace per item (at least 1 s)."""
        return max(1.0, round((len(self._queue) + self._unqueued) * self._seconds_per_item(), 1))

    def estimated_wait_s(self) -> float:
        """How long an item submitted now would wait for its turn: everything in flight
        (queued, prepared, running) at the recent pace per item."""
        return self.in_flight() * self._seconds_per_item()

    def _seconds_per_item(self) -> float:
        recent = list(self.stats.recent_item_s)
        return sum(recent) / len(recent) if recent else 0.01

    def close(self, drain: bool = True, timeout: float = 120.0) -> None:
        """Stop taking items. drain: finish those already queued (a version swap or an unload
        loses no accepted request); otherwise they fail with OverloadedError."""
        with self._changed:
            self._closed = True
            left = [] if drain else list(self._queue)
            if not drain:
                self._refusing = True
                self._queue.clear()
                self._queued_cost = 0
                for pending in left:
                    if pending.split is not None:
                        self._drop_rest(pending.split)
            self._changed.notify_all()
        for pending in left:
            _settle(pending.future, OverloadedError(f"model {self.name!r} was unloaded", retry_after_s=1.0))
        gatherer, runner = self._threads
        gatherer.join(timeout)
        with self._handoff_changed:
            self._gathering = False
            self._handoff_changed.notify_all()
        runner.join(timeout)

    # gatherer: queue -> prepared batch

    def _gather_loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._held = len(batch)
            try:
                prepared: Prepared | BaseException = self._prepare([p.item for p in batch])
            except BaseException as exc:  # failed preparation fails its batch, not the thread
                prepared = exc
            with self._handoff_changed:
                while self._handoff:  # one batch deep
                    self._handoff_changed.wait()
                self._handoff.append((batch, prepared))
                self._held = 0
                self._handoff_changed.notify_all()

    def _next_batch(self) -> list[_Pending[Item, Output]] | None:
        while True:
            taken = self._take()
            if taken is None:
                return None
            # Marked running outside the queue's lock: a future's own lock per item, which
            # submit() (the event loop) would otherwise wait behind for a whole batch. A piece's
            # future (its request's) stays pending until its last piece ran.
            batch = [
                pending
                for pending in taken
                if (pending.future.set_running_or_notify_cancel() if pending.split is None
                    else not pending.future.done())
            ]  # fmt: skip
            if len(batch) != len(taken):
                self.stats.skipped += len(taken) - len(batch)  # their callers gave up before they ran
                for pending in taken:
                    if pending.split is not None and pending.future.done():
                        self._queue_next(pending.split)  # drops the pieces it had left
            if batch:
                return batch

    def _take(self) -> list[_Pending[Item, Output]] | None:
        """The next batch's items off the queue (after the wait window); None once closed and drained."""
        policy = self.policy
        with self._changed:
            while not self._queue and (not self._closed or self._unqueued):
                self._changed.wait()
            if not self._queue:  # closed and drained (no pieces to come)
                return None
            if policy.enabled and policy.max_wait_ms > 0:
                deadline = self._queue[0].arrived + policy.max_wait_ms / 1e3
                while (
                    not self._closed
                    and self._queued_cost < policy.max_batch_tokens
                    and (left := deadline - time.perf_counter()) > 0
                ):
                    self._changed.wait(left)
            taken: list[_Pending[Item, Output]] = []
            tokens = 0
            queue = self._queue
            while queue:
                cost = queue[0].cost
                if taken and (tokens + cost > policy.max_batch_tokens or not policy.enabled):
                    break
                taken.append(queue.popleft())
                tokens += cost
            self._queued_cost -= tokens
            return taken

    # runner: prepared batch -> results

    def _run_loop(self) -> None:
        while True:
            with self._handoff_changed:
                while not self._handoff and self._gathering:
                    self._handoff_changed.wait()
                if not self._handoff:
                    return
                batch, prepared = self._handoff.popleft()
                self._running = len(batch)
                self._handoff_changed.notify_all()
            try:
                if self._starting(batch):
                    self._serve(batch, prepared)
            finally:
                self._running = 0

    def _starting(self, batch: list[_Pending[Item, Output]]) -> bool:
        """Before a batch runs: the next piece of each request cut into pieces joins the queue
        (its turn, behind whatever arrived meanwhile). False when nobody waits for the batch any
        more (all pieces of requests whose callers gave up): then it is not run."""
        splits = [pending.split for pending in batch if pending.split is not None]
        if not splits:
            return True
        for split in splits:
            self._queue_next(split)
        if len(splits) == len(batch) and all(split.future.done() for split in splits):
            self.stats.skipped += len(batch)
            return False
        return True

    def _queue_next(self, split: _Split[Item, Output]) -> None:
        """The request's next piece to the queue's tail; or, its caller gone (or the batcher
        closed without draining), its pieces left dropped."""
        with self._changed:
            if split.queued == len(split.pieces):
                return
            refused = self._refusing and not split.future.done()
            if split.future.done() or refused:
                self._drop_rest(split)
            else:
                i = split.queued
                split.queued += 1
                self._unqueued -= 1
                self._queue.append(
                    _Pending(split.pieces[i], split.costs[i], split.future, time.perf_counter(), split)
                )
                self._queued_cost += split.costs[i]
            self._changed.notify()  # a piece to gather, or (closing) none left to wait for
        if refused:
            _settle(split.future, OverloadedError(f"model {self.name!r} was unloaded", retry_after_s=1.0))

    def _drop_rest(self, split: _Split[Item, Output]) -> None:
        """(Under the queue's lock.) The request's pieces not yet queued will never be."""
        left = len(split.pieces) - split.queued
        split.queued = len(split.pieces)
        self._unqueued -= left
        self.stats.skipped += left

    def _serve(self, batch: list[_Pending[Item, Output]], prepared: Prepared | BaseException) -> None:
        started = time.perf_counter()
        out_of_memory = False
        try:
            if isinstance(prepared, BaseException):
                raise prepared
            outputs = list(self._run(prepared))
            if len(outputs) != len(batch):
                raise RuntimeError(f"{len(outputs)} outputs for {len(batch)} items")
        except torch.OutOfMemoryError:
            # Retried only once out of this block: inside it, the exception's traceback keeps the
            # failed forward's frames, and with them its activations, alive during the retry.
            out_of_memory = True
        except BaseException as exc:
            self._fail(batch, exc)
            return
        if out_of_memory:
            del prepared
            _release_cached_memory()
            if len(batch) == 1:
                self._fail(batch, InputTooLargeError(
                    "needs more device memory than the budget leaves, even alone; send fewer or "
                    "shorter inputs per request", field="input"))  # fmt: skip
                return
            self.stats.oom_splits += 1
            half = len(batch) // 2
            log.warning("out of memory: batch split", extra={"model": self.name, "batch_size": len(batch)})
            for part in (batch[:half], batch[half:]):
                try:
                    again: Prepared | BaseException = self._prepare([p.item for p in part])
                except BaseException as exc:
                    again = exc
                self._serve(part, again)
            return
        ran = time.perf_counter()
        run_ms = (ran - started) * 1e3
        tokens = sum(p.cost for p in batch)
        stats = self.stats
        stats.batches += 1
        stats.items += len(batch)
        stats.tokens += tokens
        stats.run_seconds += run_ms / 1e3
        stats.recent_item_s.append(run_ms / 1e3 / len(batch))
        stats.run_s.observe(run_ms / 1e3)
        work = getattr(prepared, "work", None)
        if isinstance(work, PreparedWork):  # real tokens, where the preparation counted them
            stats.tokenize_s.observe(work.tokenize_s)
            stats.real_tokens += work.real_tokens
            stats.computed_tokens += work.computed_tokens
            stats.batch_tokens.observe(work.real_tokens)
        else:
            stats.batch_tokens.observe(tokens)
        stats.batch_requests.observe(len(batch))
        size = sum(self._size(p.item) for p in batch)
        for pending, output in zip(batch, outputs, strict=True):
            queue_ms = (started - pending.arrived) * 1e3
            stats.queue_wait_s.observe(queue_ms / 1e3)
            if pending.split is not None:
                self._piece_ran(pending.split, output, started, ran, size, len(batch), tokens)
                continue
            stats.request_s.observe(ran - pending.arrived)
            pending.future.set_result(Served(output, queue_ms, run_ms, size, len(batch), tokens, self.device))

    def _piece_ran(
        self, split: _Split[Item, Output], output: Output, started: float, ran: float, size: int,
        requests: int, tokens: int,
    ) -> None:  # fmt: skip
        """A piece's output kept; after the last piece, the request's joined output to its caller."""
        if split.future.done():  # its caller gave up (or a piece failed) meanwhile
            split.outputs.clear()
            return
        if not split.outputs:
            split.started = started
        split.outputs.append(output)
        split.batch_size += size
        split.batch_requests = max(split.batch_requests, requests)
        split.batch_tokens += tokens
        if len(split.outputs) < len(split.pieces):
            return
        assert self._pieces is not None
        outcome: Served[Output] | BaseException
        try:
            value = self._pieces.join(split.item, split.pieces, split.outputs)
        except BaseException as exc:  # a join that fails fails its request only
            outcome = exc
        else:
            self.stats.request_s.observe(ran - split.arrived)
            outcome = Served(
                value, (split.started - split.arrived) * 1e3, (ran - split.started) * 1e3,
                split.batch_size, split.batch_requests, split.batch_tokens, self.device,
            )  # fmt: skip
        split.outputs.clear()
        _settle(split.future, outcome)

    def _fail(self, batch: list[_Pending[Item, Output]], exc: BaseException) -> None:
        self.stats.failed_batches += 1
        for pending in batch:
            if pending.split is None:
                pending.future.set_exception(exc)
            else:
                _settle(pending.future, exc)  # its pieces left are dropped when they come up


def _settle(future: Future[Served[Output]], outcome: Served[Output] | BaseException) -> None:
    """Finish a future still pending (a request cut into pieces, or one never gathered), unless
    its caller cancelled it or another thread finished it first."""
    try:
        if not future.set_running_or_notify_cancel():
            return  # cancelled
    except RuntimeError:  # finished already (a piece failed, or the batcher was closed)
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _release_cached_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
