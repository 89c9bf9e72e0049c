"""Scheduling work onto the models: dynamic batches per model and device, bounded queues,
time limits and cancellation (issue 6)."""

from altlas.scheduling.batcher import BatcherStats, BatchPolicy, DynamicBatcher, Served
from altlas.scheduling.waiting import ClientGone, wait_for

__all__ = ["BatchPolicy", "BatcherStats", "ClientGone", "DynamicBatcher", "Served", "wait_for"]
