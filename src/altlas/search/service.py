"""Command similarity for the segmentation service: similar past commands, and near-duplicates in a batch.

The index of stored plans' commands follows the plan files on disk, whoever writes them (any
API process): before a search it takes in the plans saved, changed or deleted since the last
one, which costs a look at the folder's modification time when nothing changed. Commands are
embedded by the command embedding model, leased from the model manager
(altlas.orchestrator.command_model).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from altlas.errors import InputTooLargeError, InvalidInputError
from altlas.orchestrator.command_model import CommandEmbedder
from altlas.search.index import VectorIndex
from altlas.search.pairs import similar_pairs
from altlas.storage.plan_store import PlanStore

__all__ = ["MAX_DEDUPE_COMMANDS", "CommandSimilarity"]

MAX_DEDUPE_COMMANDS = 100_000
_SETTLED_NS = 2_000_000_000  # a folder changed this recently may change again within its time stamp's tick


class CommandSimilarity:
    def __init__(self, store: PlanStore, embedder: CommandEmbedder) -> None:
        self.store = store
        self.embedder = embedder
        self._index: VectorIndex | None = None
        self._commands: dict[str, str] = {}
        self._seen: dict[str, float] = {}  # plan id -> the file's modification time when indexed
        self._folder_stamp = -1  # the folder's modification time (ns) at the last look
        self._lock = threading.Lock()

    def _current(self) -> VectorIndex:
        """The index, brought up to the plan files on disk now."""
        with self._lock:
            stamp = self.store.directory.stat().st_mtime_ns
            settled = time.time_ns() - stamp > _SETTLED_NS
            if self._index is not None and stamp == self._folder_stamp and settled:
                return self._index  # no file added, replaced or removed since the last look
            if self._index is None:
                embedder = self.embedder.leased().embedder
                self._index = VectorIndex(embedder.dimension, metric="cosine", device=embedder.device)
            found = self.store.scan()
            stale = [plan_id for plan_id, mtime in self._seen.items() if found.get(plan_id) != mtime]
            if stale:  # removed, or replaced since
                self._index.remove(stale)
                for plan_id in stale:
                    del self._seen[plan_id], self._commands[plan_id]
            pairs = self.store.commands([plan_id for plan_id in found if plan_id not in self._seen])
            if pairs:
                self._index.add([i for i, _ in pairs], self.embedder.encode([c for _, c in pairs], "texts"))
                self._commands.update(pairs)
                self._seen.update((plan_id, found[plan_id]) for plan_id, _ in pairs)
            self._folder_stamp = stamp
            return self._index

    def similar(self, command: str, k: int) -> list[dict[str, Any]]:
        index = self._current()
        vector = self.embedder.encode([command], "command")
        hits = index.search(vector, k)[0]
        return [
            {"plan_id": h.id, "command": self._commands.get(h.id, ""), "score": round(h.score, 6)}
            for h in hits
        ]

    def dedupe(self, commands: Sequence[str], threshold: float) -> dict[str, Any]:
        if len(commands) > MAX_DEDUPE_COMMANDS:
            raise InputTooLargeError(
                f"has {len(commands):,} commands; the limit is {MAX_DEDUPE_COMMANDS:,}", field="commands"
            )
        if not 0 < threshold <= 1:
            raise InvalidInputError(f"must be in (0, 1], got {threshold}", field="threshold")
        vectors = self.embedder.encode(commands, "commands")
        i, j, s = similar_pairs(vectors, threshold)
        pairs = [
            {"i": int(a), "j": int(b), "score": round(float(c), 6)}
            for a, b, c in zip(i.tolist(), j.tolist(), s.tolist(), strict=True)
        ]
        return {"count": len(commands), "pairs": pairs, "groups": _groups(len(commands), pairs)}


def _groups(n: int, pairs: list[dict[str, Any]]) -> list[list[int]]:
    """Connected groups of near-duplicates (two or more members), by union-find."""
    parent = list(range(n))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for pair in pairs:
        a, b = root(pair["i"]), root(pair["j"])
        if a != b:
            parent[max(a, b)] = min(a, b)
    members: dict[int, list[int]] = {}
    for x in range(n):
        members.setdefault(root(x), []).append(x)
    return [group for group in members.values() if len(group) > 1]
