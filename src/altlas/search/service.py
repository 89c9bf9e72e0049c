"""Command similarity for the segmentation service: similar past commands, and near-duplicates in a batch.

The index of stored plans' commands is built on first use from the plan store and
kept current through the store's save and delete hooks. Commands are embedded by the command
embedding model, leased from the model manager (altlas.orchestrator.command_model).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from altlas.errors import InputTooLargeError, InvalidInputError
from altlas.orchestrator.command_model import CommandEmbedder
from altlas.plans.model import AltFile
from altlas.search.index import VectorIndex
from altlas.search.pairs import similar_pairs
from altlas.storage.plan_store import PlanStore

__all__ = ["MAX_DEDUPE_COMMANDS", "CommandSimilarity"]

MAX_DEDUPE_COMMANDS = 100_000


class CommandSimilarity:
    def __init__(self, store: PlanStore, embedder: CommandEmbedder) -> None:
        self.store = store
        self.embedder = embedder
        self._index: VectorIndex | None = None
        self._commands: dict[str, str] = {}
        self._build_lock = threading.Lock()
        store.on_save.append(self._saved)
        store.on_delete.append(self._deleted)

    def _built(self) -> VectorIndex:
        if self._index is None:
            with self._build_lock:
                if self._index is None:
                    embedder = self.embedder.leased().embedder
                    index = VectorIndex(embedder.dimension, metric="cosine", device=embedder.device)
                    pairs = self.store.commands()
                    if pairs:
                        index.add([i for i, _ in pairs], self.embedder.encode([c for _, c in pairs], "texts"))
                    self._commands = dict(pairs)
                    self._index = index
        return self._index

    def _saved(self, plans: list[AltFile]) -> None:
        if self._index is None:
            return  # built from the store on first use
        vectors = self.embedder.encode([p.command for p in plans], "command")
        self._index.add([p.id for p in plans], vectors)
        self._commands.update({p.id: p.command for p in plans})

    def _deleted(self, plan_id: str) -> None:
        if self._index is not None:
            self._index.remove([plan_id])
            self._commands.pop(plan_id, None)

    def similar(self, command: str, k: int) -> list[dict[str, Any]]:
        index = self._built()
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
