"""Stored data that cannot be read: what the stores do with it.

An entry (one plan file, one job row) that cannot be read is damaged: listings skip it and say
how many they skipped, a read of it alone answers that it is damaged, and each store counts
the damaged entries it found (one log line the first time each is seen; the count is
`altlas_damaged_entries_total{store=...}` on /metrics). A whole store that cannot be opened at
start-up (a job database that is not one, a collection whose files do not load) stops the
server with one line naming the file and what to do: nothing is overwritten or deleted.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily

from altlas.errors import AltlasError, NotFoundError

__all__ = ["DamagedEntries", "DamagedEntryError", "DamagedStoreError", "damaged_entries_metrics"]

log = logging.getLogger("altlas.storage")


class DamagedEntryError(NotFoundError):
    """The entry exists but cannot be read: for the API there is no such entry it could serve."""


class DamagedStoreError(AltlasError):
    """A store's file that cannot be opened; the message names the file and what to do."""


class DamagedEntries:
    """The damaged entries one store has found, by name, each logged once."""

    def __init__(self, store: str) -> None:
        self.store = store
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._seen)

    def found(self, entry: str, reason: str) -> None:
        """Record that `entry` (a file name, a row id) cannot be read, and why."""
        with self._lock:
            if entry in self._seen:
                return
            self._seen.add(entry)
        log.error(
            "damaged entry skipped; move it aside or restore it from a backup",
            extra={"store": self.store, "entry": entry, "reason": reason},
        )


def damaged_entries_metrics(*stores: DamagedEntries) -> Iterator[CounterMetricFamily]:
    """`altlas_damaged_entries_total{store}`, for Metrics.add_collector."""
    family = CounterMetricFamily(
        "altlas_damaged_entries", "Stored entries found damaged and skipped, by store", labels=["store"]
    )
    for entries in stores:
        family.add_metric([entries.store], entries.count)
    yield family
