"""A vector index with string ids: add, remove, search, save, load; safe for concurrent searches.

Writers build a new snapshot (vectors, ids) and swap it in under a lock; searches
read whichever snapshot is current without locking, so a search never sees half
of an update. Vectors are checked once, when they are added, so searches skip
the finiteness scan.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from altlas.errors import InvalidInputError
from altlas.search.topk import Metric, as_tensor, check_finite, topk

__all__ = ["SearchHit", "VectorIndex"]


@dataclass(frozen=True, slots=True)
class SearchHit:
    id: str
    score: float


@dataclass(frozen=True, slots=True)
class _Snapshot:
    ids: tuple[str, ...]
    vectors: torch.Tensor  # [N, dim] on the index's device


class VectorIndex:
    def __init__(
        self,
        dim: int,
        *,
        metric: Metric = "cosine",
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
    ) -> None:
        if dim < 1:
            raise InvalidInputError(f"must be positive, got {dim}", field="dim")
        self.dim = dim
        self.metric = metric
        self.device = torch.device(device)
        self.dtype = dtype or (torch.float16 if self.device.type == "cuda" else torch.float32)
        self._lock = threading.Lock()
        self._snapshot = _Snapshot((), torch.zeros((0, dim), dtype=self.dtype, device=self.device))

    def __len__(self) -> int:
        return len(self._snapshot.ids)

    @property
    def ids(self) -> tuple[str, ...]:
        return self._snapshot.ids

    def add(self, ids: Sequence[str], vectors: torch.Tensor | np.ndarray) -> None:
        """Add (or replace) vectors under their ids."""
        ids = [str(i) for i in ids]
        new = as_tensor(vectors, "vectors")
        if new.shape != (len(ids), self.dim):
            raise InvalidInputError(
                f"must be [{len(ids)}, {self.dim}], got {tuple(new.shape)}", field="vectors"
            )
        if len(set(ids)) != len(ids):
            raise InvalidInputError("contains the same id twice", field="ids")
        check_finite(new, "vectors")
        if self.metric == "cosine":
            new = torch.nn.functional.normalize(new.float(), dim=1)
        new = new.to(self.device, self.dtype)
        with self._lock:
            old = self._snapshot
            replaced = set(ids)
            keep = [i for i, existing in enumerate(old.ids) if existing not in replaced]
            kept = old.vectors[keep] if len(keep) != len(old.ids) else old.vectors
            self._snapshot = _Snapshot(tuple(old.ids[i] for i in keep) + tuple(ids), torch.cat([kept, new]))

    def remove(self, ids: Sequence[str]) -> int:
        """Remove ids (unknown ones are ignored); returns how many were removed."""
        gone = {str(i) for i in ids}
        with self._lock:
            old = self._snapshot
            keep = [i for i, existing in enumerate(old.ids) if existing not in gone]
            self._snapshot = _Snapshot(tuple(old.ids[i] for i in keep), old.vectors[keep])
            return len(old.ids) - len(keep)

    def search(self, queries: torch.Tensor | np.ndarray, k: int) -> list[list[SearchHit]]:
        """The k best hits per query (fewer when the index is smaller)."""
        snapshot = self._snapshot
        q = as_tensor(queries, "queries")
        check_finite(q, "queries")
        scores, indices = topk(q, snapshot.vectors, k, self.metric, check_finite_values=False)
        assert isinstance(scores, torch.Tensor) and isinstance(indices, torch.Tensor)
        results: list[list[SearchHit]] = []
        for row_scores, row_indices in zip(scores.tolist(), indices.tolist(), strict=True):
            results.append(
                [
                    SearchHit(snapshot.ids[i], s)
                    for s, i in zip(row_scores, row_indices, strict=True)
                    if i >= 0
                ]
            )
        return results

    def save(self, path: Path | str) -> None:
        """An .npz file: the vectors (float32) and the ids as JSON."""
        snapshot = self._snapshot
        with open(path, "wb") as handle:
            np.savez(
                handle,
                vectors=snapshot.vectors.float().cpu().numpy(),
                ids=np.frombuffer(json.dumps(list(snapshot.ids)).encode(), dtype=np.uint8),
                meta=np.frombuffer(
                    json.dumps({"metric": self.metric, "dim": self.dim}).encode(), dtype=np.uint8
                ),
            )

    @classmethod
    def load(
        cls, path: Path | str, *, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
    ) -> VectorIndex:
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(data["meta"].tobytes())
                ids = json.loads(data["ids"].tobytes())
                vectors = data["vectors"]
        except (OSError, KeyError, ValueError) as exc:
            raise InvalidInputError(f"cannot read a vector index from {path}: {exc}", field="path") from None
        index = cls(int(meta["dim"]), metric=meta["metric"], device=device, dtype=dtype)
        if ids:
            index.add(ids, vectors)
        return index
