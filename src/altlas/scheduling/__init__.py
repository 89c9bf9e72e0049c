"""Scheduling work onto the models: dynamic batches per model and device, bounded queues,
time limits and cancellation, spill-over to a CPU replica (issue 6).

The names are imported on first use: `altlas.scheduling.waiting` (what the HTTP layer needs)
must stay importable without torch, which the batcher imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from altlas.scheduling.batcher import BatcherStats, BatchPolicy, DynamicBatcher, Served
    from altlas.scheduling.spillover import BatchQueue, SpilloverRouter, SpillPolicy
    from altlas.scheduling.waiting import ClientGone, wait_for

__all__ = [
    "BatchPolicy",
    "BatchQueue",
    "BatcherStats",
    "ClientGone",
    "DynamicBatcher",
    "Served",
    "SpillPolicy",
    "SpilloverRouter",
    "wait_for",
]

_HOMES = {
    "BatchPolicy": "batcher", "BatcherStats": "batcher", "DynamicBatcher": "batcher", "Served": "batcher",
    "BatchQueue": "spillover", "SpillPolicy": "spillover", "SpilloverRouter": "spillover",
    "ClientGone": "waiting", "wait_for": "waiting",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
