"""Scheduling work onto the models: dynamic batches per model and device, bounded queues,
time limits and cancellation, spill-over to a CPU replica (issue 6)."""

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
