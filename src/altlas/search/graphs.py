"""Replays a search from a CUDA graph when the same search repeats.

A threshold-scan top-k launches about 25 kernels (two Triton kernels and small torch ops).
Issuing them from Python costs 0.2-0.4 ms of host time per search, and part of it leaves
the GPU idle: before the first kernel, and whenever the host falls behind a short kernel
(docs/search-notes.md). A service searches the same database with the same batch shapes
again and again, so on the second sighting of a (function, database, query shape, k,
metric) the whole sequence is captured once and then replayed with one launch.

A graph reads the database where it lies, so the key is the database's address, shape,
strides and dtype: any tensor that matches them views that same memory now (the caller
holds it), whether it is the tensor first seen, a view of it, or a new tensor where a
freed one was; contents may change in place between searches. The queries are copied
into the graph's own input buffer. Replays of one graph are serialised by a lock (its
buffers are shared); different graphs run in parallel. Functions must be free of host
synchronisation; one that cannot be captured is remembered and simply run directly.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import torch

__all__ = ["GraphCache", "SearchFn"]

SearchFn = Callable[[torch.Tensor, torch.Tensor, int, str], tuple[torch.Tensor, ...]]


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    queries: torch.Tensor  # the graph's input buffer
    outputs: tuple[torch.Tensor, ...]
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, queries: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with self.lock:
            self.queries.copy_(queries)
            self.graph.replay()
            return tuple(t.clone() for t in self.outputs)


class GraphCache:
    """Up to `size` captured searches, least recently used dropped first."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self.enabled = True  # False: every search runs directly (benchmarks of the first call)
        self._graphs: OrderedDict[Hashable, _Captured | None] = OrderedDict()  # None: cannot capture
        self._seen: OrderedDict[Hashable, None] = OrderedDict()  # searches run once, newest last
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return sum(1 for entry in self._graphs.values() if entry is not None)

    def run(
        self, fn: SearchFn, queries: torch.Tensor, database: torch.Tensor, k: int, metric: str
    ) -> tuple[torch.Tensor, ...]:
        """fn(queries, database, k, metric), from a graph once this search has been seen before."""
        if not self.enabled or database.device.type != "cuda" or torch.cuda.is_current_stream_capturing():
            return fn(queries, database, k, metric)
        key = (
            fn,
            database.data_ptr(),
            tuple(database.shape),
            tuple(database.stride()),
            database.dtype,
            database.device,
            tuple(queries.shape),
            queries.dtype,
            k,
            metric,
        )
        with self._lock:
            entry = self._graphs.get(key)
            if key in self._graphs:
                self._graphs.move_to_end(key)
            elif self._seen_before(key):
                entry = self._capture(key, fn, queries, database, k, metric)
        if entry is None:  # first sighting, or not capturable
            return fn(queries, database, k, metric)
        return entry.run(queries)

    def _seen_before(self, key: Hashable) -> bool:
        if key in self._seen:
            del self._seen[key]
            return True
        self._seen[key] = None
        while len(self._seen) > 4 * self.size:
            self._seen.popitem(last=False)
        return False

    def _capture(
        self, key: Hashable, fn: SearchFn, queries: torch.Tensor, database: torch.Tensor, k: int, metric: str
    ) -> _Captured | None:
        static = queries.clone()
        stream = torch.cuda.Stream(database.device)  # type: ignore[no-untyped-call]
        stream.wait_stream(torch.cuda.current_stream(database.device))
        try:
            with torch.cuda.stream(stream):  # a warm-up outside the graph: compilation, allocator
                fn(static, database, k, metric)
            torch.cuda.current_stream(database.device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                outputs = fn(static, database, k, metric)
        except RuntimeError:  # a host synchronisation inside fn: never try again
            self._graphs[key] = None
            return None
        entry = _Captured(graph, static, outputs)
        self._graphs[key] = entry
        while len(self._graphs) > self.size:
            self._graphs.popitem(last=False)
        return entry
