"""Exact k-nearest search: `topk(queries, database, k, metric)`.

Inputs are torch tensors or numpy arrays (the output is of the same kind), on CPU
or CUDA. Scores are accumulated in fp32 whatever the storage precision. The
database is scanned in chunks, each chunk reduced to its own top k at once, so
the full score matrix never exists: memory stays O(Q x chunk + Q x k x chunks).

Rules, documented because they are part of the contract:
- metric "ip" (inner product) and "cosine" return the highest scores first, "l2"
  returns the smallest squared Euclidean distances first;
- fewer than k rows in the database: the missing places get index -1 and score
  -inf (ip, cosine) or +inf (l2);
- ties are broken by the lower database index;
- NaN or infinity in the queries or the database is rejected with an error that
  names the input and the row (pass check_finite=False for trusted data).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from altlas.errors import InvalidInputError
from altlas.observability.nvtx import ranged
from altlas.search.graphs import GraphCache

__all__ = ["FUSED_MIN_ROWS", "MAX_K", "Metric", "as_tensor", "check_finite", "compute_dtype", "topk"]

Metric = Literal["ip", "cosine", "l2"]
FusedKernel = Literal["scan", "select"]  # threshold_scan.py, fused_topk.py
MAX_K = 1024
_CHUNK_BYTES = {"cuda": 2 * 2**30, "cpu": 256 * 2**20}  # score buffer per chunk


def as_tensor(array: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    """A 2-D float tensor from a tensor or array (1-D means one row)."""
    tensor = torch.from_numpy(np.ascontiguousarray(array)) if isinstance(array, np.ndarray) else array
    if not isinstance(tensor, torch.Tensor):
        raise InvalidInputError(
            f"must be a torch tensor or numpy array, got {type(array).__name__}", field=name
        )
    if tensor.ndim == 1:
        tensor = tensor[None, :]
    if tensor.ndim != 2:
        raise InvalidInputError(f"must be 2-D [rows, dim], got shape {tuple(tensor.shape)}", field=name)
    if not tensor.is_floating_point():
        tensor = tensor.float()
    return tensor


def check_finite(tensor: torch.Tensor, name: str) -> None:
    if tensor.numel() and not bool(torch.isfinite(tensor).all()):
        row = int((~torch.isfinite(tensor)).any(dim=1).nonzero()[0, 0])
        raise InvalidInputError(f"contains NaN or infinity (first at row {row})", field=name)


@ranged("search.topk")
def topk(
    queries: torch.Tensor | np.ndarray,
    database: torch.Tensor | np.ndarray,
    k: int,
    metric: Metric = "ip",
    *,
    check_finite_values: bool = True,
    chunk_rows: int | None = None,
    backend: Literal["auto", "fused", "library"] = "auto",
) -> tuple[torch.Tensor, torch.Tensor] | tuple[np.ndarray, np.ndarray]:
    """(scores [Q, k] float32, indices [Q, k] int64) of the k best database rows per query.

    backend: "fused" (Triton kernel: distances and selection in one pass; ip and cosine,
    k <= 64), "library" (chunked matmul + torch.topk), or "auto": fused on CUDA for the
    shapes where it measured faster (FUSED_MIN_ROWS), library otherwise.
    """
    numpy_out = isinstance(queries, np.ndarray)
    q = as_tensor(queries, "queries")
    db = as_tensor(database, "database")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise InvalidInputError(f"must be an integer from 1 to {MAX_K}, got {k!r}", field="k")
    if metric not in ("ip", "cosine", "l2"):
        raise InvalidInputError(f"must be ip, cosine or l2, got {metric!r}", field="metric")
    if q.shape[1] != db.shape[1] and db.shape[0] and q.shape[0]:
        raise InvalidInputError(f"queries have dim {q.shape[1]}, the database {db.shape[1]}", field="queries")
    if check_finite_values:
        check_finite(q, "queries")
        check_finite(db, "database")
    q = q.to(db.device)
    kernel = _fused_kernel(backend, q, db, k, metric)
    if kernel is not None:
        scores, indices = _fused(q, db, k, metric, kernel)
    else:
        scores, indices = _library_topk(q, db, k, metric, chunk_rows)
    if numpy_out:
        return scores.cpu().numpy(), indices.cpu().numpy()
    return scores, indices


# H100 (BENCHMARKS.md): fused beats the library path at every measured N >= 10k except
# Q=1024 at 10k (1.28 vs 1.08 ms); below that both are launch-bound.
FUSED_MIN_ROWS = 10_000


def _fused_kernel(
    backend: str, q: torch.Tensor, db: torch.Tensor, k: int, metric: Metric
) -> FusedKernel | None:
    """The fused kernel that answers this search, or None for the library path."""
    from altlas.search.fused_topk import fused_available

    if backend == "library":
        return None
    kind = _fused_kind(q.shape[0], db.shape[0], k)
    suitable = metric in ("ip", "cosine") and fused_available(db.device) and kind is not None
    if backend == "fused":
        if not suitable:
            raise InvalidInputError(
                "the fused kernels need triton, metric ip or cosine, and k <= 64 (or k <= 256 over "
                "at least 16 k rows)",
                field="backend",
            )
        return kind
    if backend != "auto":
        raise InvalidInputError(f"must be auto, fused or library, got {backend!r}", field="backend")
    auto = suitable and db.device.type == "cuda" and db.shape[0] >= FUSED_MIN_ROWS and q.shape[0] > 0
    return kind if auto else None


SCAN_MIN_QUERIES = 128  # H100, N=1M, k=10: Q=64 scan 0.5 ms vs selection 0.55; Q=1024 2.5 vs 3.5


def _fused_kind(n_queries: int, n_rows: int, k: int) -> FusedKernel | None:
    """Which kernel answers. The threshold scan (threshold_scan.py) needs a sample of at most
    1/4 of the rows for its bar and pays that pass back from about SCAN_MIN_QUERIES queries;
    the running selection (fused_topk.py) takes k <= 64 and wins for fewer queries."""
    from altlas.search.fused_topk import FUSED_MAX_K
    from altlas.search.threshold_scan import sample_stride

    scan = sample_stride(n_rows, k) >= 4
    if k <= FUSED_MAX_K and (n_queries < SCAN_MIN_QUERIES or not scan):
        return "select"
    return "scan" if scan else None


def _fused(
    q: torch.Tensor, db: torch.Tensor, k: int, metric: Metric, kernel: FusedKernel
) -> tuple[torch.Tensor, torch.Tensor]:
    if q.shape[0] == 0 or db.shape[0] == 0:
        return _library_topk(q, db, k, metric, None)
    if kernel == "select":
        scores, indices = _GRAPHS.run(_select_search, q, db, k, metric)
        return scores, indices
    scores, indices, complete = _GRAPHS.run(_scan_search, q, db, k, metric)
    redo = (~complete).nonzero()[:, 0]
    if redo.numel():  # a list overflowed (or the bar misfired): those queries the exact library way
        scores[redo], indices[redo] = _library_topk(q[redo], db, k, metric, None)
    return scores, indices


# Repeated searches (same database, batch shape and k) replay from CUDA graphs: graphs.py.
_GRAPHS = GraphCache()


def _select_search(q: torch.Tensor, db: torch.Tensor, k: int, metric: str) -> tuple[torch.Tensor, ...]:
    """Running-selection kernel (fused_topk.py) and the merge of its per-split candidates."""
    from altlas.search.fused_topk import fused_topk

    q, db = _prepare(q, db, metric), _unit_rows(db) if metric == "cosine" else db
    scores, indices = fused_topk(q, db, k)
    n_queries = q.shape[0]
    return _merge(scores.view(n_queries, -1), indices.view(n_queries, -1), k, True, float("-inf"))


def _scan_search(q: torch.Tensor, db: torch.Tensor, k: int, metric: str) -> tuple[torch.Tensor, ...]:
    """Threshold-scan kernel (threshold_scan.py): (scores, indices, complete), best first,
    ties by lower index."""
    from altlas.search.threshold_scan import threshold_topk

    q, db = _prepare(q, db, metric), _unit_rows(db) if metric == "cosine" else db
    return threshold_topk(q, db, k)


def _unit_rows(db: torch.Tensor) -> torch.Tensor:
    return F.normalize(db.float(), dim=1).to(db.dtype)


def compute_dtype(data: torch.Tensor) -> torch.dtype:
    """The precision products run in: the data's on CUDA; fp32 on CPU, which has no fast fp16 matmul."""
    return data.dtype if data.device.type == "cuda" else torch.float32


def _prepare(q: torch.Tensor, db: torch.Tensor, metric: str) -> torch.Tensor:
    """Queries in the compute precision, normalised for cosine."""
    compute = compute_dtype(db)
    if metric == "cosine":
        return F.normalize(q.float(), dim=1).to(compute)
    return q.to(compute)


def _library_topk(
    q: torch.Tensor, db: torch.Tensor, k: int, metric: Metric, chunk_rows: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    n_queries, n_rows = q.shape[0], db.shape[0]
    largest = metric != "l2"
    fill = float("-inf") if largest else float("inf")
    if n_queries == 0 or n_rows == 0:
        return (
            torch.full((n_queries, k), fill, dtype=torch.float32, device=db.device),
            torch.full((n_queries, k), -1, dtype=torch.int64, device=db.device),
        )
    q = _prepare(q, db, metric)
    budget = _CHUNK_BYTES["cuda" if db.device.type == "cuda" else "cpu"]
    rows = chunk_rows or max(1024, budget // (q.element_size() * max(n_queries, 1)))
    q_norms = (q.float() ** 2).sum(dim=1, keepdim=True) if metric == "l2" else None
    cand_scores, cand_indices = [], []
    for start in range(0, n_rows, rows):
        chunk = db[start : start + rows].to(q.dtype)
        if metric == "cosine":
            chunk = _unit_rows(chunk)
        scores = q @ chunk.T  # [Q, chunk]: fp32 accumulation in the GEMM, stored in the data's precision
        if q_norms is not None:
            scores = q_norms + (chunk.float() ** 2).sum(dim=1)[None, :] - 2 * scores.float()
        values, positions = _chunk_topk(scores, min(k, scores.shape[1]), largest)
        cand_scores.append(values.float())
        cand_indices.append(positions + start)
    return _merge(torch.cat(cand_scores, dim=1), torch.cat(cand_indices, dim=1), k, largest, fill)


def _chunk_topk(scores: torch.Tensor, take: int, largest: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """torch.topk, but rows whose k-th value is tied beyond the cut keep the lowest indices.

    Asks for one value more than needed: a row has a tie across the cut exactly when that
    extra value equals the k-th. (A full compare pass for the check costs more than the
    topk itself on the GPU.)
    """
    extra = min(take + 1, scores.shape[1])
    values, positions = torch.topk(scores, extra, dim=1, largest=largest, sorted=True)
    if extra == take:
        return values, positions
    kth = values[:, take - 1]
    rows = (values[:, take] == kth).nonzero()[:, 0]
    values, positions = values[:, :take].contiguous(), positions[:, :take].contiguous()
    if rows.numel():  # rare with real data: redo those rows exactly
        sub = scores[rows]
        beyond = sub > kth[rows, None] if largest else sub < kth[rows, None]
        tied = sub == kth[rows, None]
        room = take - beyond.sum(dim=1, keepdim=True)
        keep = beyond | (tied & (torch.cumsum(tied, dim=1) <= room))
        exact = keep.nonzero()[:, 1].view(rows.numel(), take)
        positions[rows] = exact
        values[rows] = sub.gather(1, exact)
    return values, positions


def _merge(
    scores: torch.Tensor, indices: torch.Tensor, k: int, largest: bool, fill: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Best k of the candidates, ties by lower index, padded with -1 / fill.

    One topk over int64 keys: the score's bits made order-preserving in the high 32
    bits, the inverted index in the low 32, so that equal scores rank the lower index first.
    """
    take = min(k, scores.shape[1])
    signed = scores.float() if largest else -scores.float()
    signed = torch.where(signed == 0, 0.0, signed)  # -0.0 and +0.0 tie (their bits differ)
    bits = signed.contiguous().view(torch.int32).to(torch.int64)
    ordered = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)  # IEEE order -> integer order
    low = 0xFFFFFFFF - (indices.to(torch.int64) & 0xFFFFFFFF)  # index -1 ranks last among equals
    keys = (ordered << 32) | low
    _, order = torch.topk(keys, take, dim=1)
    scores, indices = scores.gather(1, order).float(), indices.gather(1, order)
    missing = k - take
    if missing > 0:
        scores = F.pad(scores, (0, missing), value=fill)
        indices = F.pad(indices, (0, missing), value=-1)
    return scores, indices
