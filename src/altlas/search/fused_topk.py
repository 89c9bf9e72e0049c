"""Fused distance + k-selection in Triton: the score matrix never reaches global memory.

Each program takes BLOCK_Q queries and one split of the database. For every tile of
BLOCK_N rows it computes the scores with `tl.dot` (fp32 accumulation), then moves
into its running top K only what beats the current K-th best of a row: a `while`
loop that runs once per new entry, so tiles with nothing to offer cost one
comparison. Each (query, split) writes K candidates; `merge_candidates` picks the
final k with ties to the lower index. Inner product only: cosine is inner product
on normalised rows, and l2 is handled by the library path.

Four parts, like every kernel here: `_fused_topk_kernel` (kernel), `fused_topk`
(launcher: shapes, splits, output), `altlas.search.topk` (the plain-torch
reference and fallback), tests in tests/unit/test_fused_topk.py (interpreter on
CPU) and tests/gpu.
"""

from __future__ import annotations

import torch

from altlas.errors import InvalidInputError

__all__ = ["FUSED_MAX_K", "fused_available", "fused_topk"]

FUSED_MAX_K = 64  # larger k goes to the library path

try:
    import triton
    import triton.language as tl

    from altlas.search.kernel_parts import tile_scores
except ImportError:  # pragma: no cover - triton is optional
    triton = None
    tl = None


def fused_available(device: torch.device) -> bool:
    import os

    if triton is None:
        return False
    return device.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1"


if triton is not None:

    @triton.jit  # type: ignore[untyped-decorator]
    def _fused_topk_kernel(  # type: ignore[no-untyped-def]
        q_ptr, db_ptr, out_s_ptr, out_i_ptr,
        n_queries, n_rows, dim, rows_per_split,
        stride_q, stride_db, stride_out_q, stride_out_s,
        K: tl.constexpr, BLOCK_Q: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
        PRECISION: tl.constexpr,
    ):  # fmt: skip
        pid_q = tl.program_id(0)
        pid_s = tl.program_id(1)
        offs_q = pid_q * BLOCK_Q + tl.arange(0, BLOCK_Q)
        offs_k = tl.arange(0, K)
        q_mask = offs_q < n_queries
        best_s = tl.full((BLOCK_Q, K), float("-inf"), tl.float32)
        best_i = tl.full((BLOCK_Q, K), -1, tl.int64)
        row_start = pid_s * rows_per_split
        row_end = tl.minimum(row_start + rows_per_split, n_rows)
        for n0 in range(row_start, row_end, BLOCK_N):
            offs_n = n0 + tl.arange(0, BLOCK_N)
            n_mask = offs_n < row_end
            acc = tile_scores(q_ptr, db_ptr, offs_q, offs_n, q_mask, n_mask, stride_q, stride_db, dim,
                              BLOCK_Q, BLOCK_N, BLOCK_D, PRECISION)  # fmt: skip
            acc = tl.where(n_mask[None, :], acc, float("-inf"))
            # The K-th best of each row so far; only scores above it can enter.
            kth = tl.min(best_s, axis=1)
            while tl.sum((acc > kth[:, None]).to(tl.int32)) > 0:
                top = tl.max(acc, axis=1)
                where = tl.argmax(acc, axis=1)  # the lowest column among equal maxima
                enter = top > kth
                slot = tl.argmin(best_s, axis=1)  # the entry to replace: the row's current K-th
                replace = enter[:, None] & (offs_k[None, :] == slot[:, None])
                best_s = tl.where(replace, top[:, None], best_s)
                best_i = tl.where(replace, (n0 + where).to(tl.int64)[:, None], best_i)
                taken = enter[:, None] & (tl.arange(0, BLOCK_N)[None, :] == where[:, None])
                acc = tl.where(taken, float("-inf"), acc)
                acc = tl.where(enter[:, None], acc, float("-inf"))  # rows that took nothing are done
                kth = tl.min(best_s, axis=1)
        out = offs_q.to(tl.int64)[:, None] * stride_out_q + pid_s * stride_out_s + offs_k[None, :]
        tl.store(out_s_ptr + out, best_s, mask=q_mask[:, None])
        tl.store(out_i_ptr + out, best_i, mask=q_mask[:, None])


def fused_topk(
    queries: torch.Tensor,
    database: torch.Tensor,
    k: int,
    *,
    splits: int | None = None,
    block_q: int | None = None,
    block_n: int | None = None,
    block_d: int | None = None,
    num_warps: int = 4,
    num_stages: int = 3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per (query, split) candidates of an inner-product top-k: (scores [Q, S, K], indices [Q, S, K])."""
    if triton is None:
        raise InvalidInputError("triton is not installed", field="backend")
    if not 1 <= k <= FUSED_MAX_K:
        raise InvalidInputError(f"the fused kernel takes k up to {FUSED_MAX_K}, got {k}", field="k")
    n_queries, dim = queries.shape
    n_rows = database.shape[0]
    queries = queries.to(database.dtype).contiguous()
    database = database.contiguous()
    K = max(16, triton.next_power_of_2(k))
    # Tiles measured best on an H100 (fp16, d=384, N=1M; see docs/search-notes.md):
    # many queries (64, 128, 64), few queries (16, 64, 128); 4 warps, 3 stages.
    many = n_queries > 16
    BLOCK_Q = block_q or (64 if many else 16)
    BLOCK_N = block_n or (128 if many else 64)
    block_d = block_d or (64 if many else 128)
    BLOCK_D = block_d if dim >= block_d else max(16, triton.next_power_of_2(dim))
    q_blocks = triton.cdiv(n_queries, BLOCK_Q)
    if splits is None:
        # Measured on an H100 (N=1M): about 256 programs for many queries, 512 for a few.
        # More splits fill the GPU but multiply the selection work (each split keeps its own top K).
        target_programs = 256 if n_queries > 16 else 512
        splits = max(1, min(triton.cdiv(n_rows, BLOCK_N), triton.cdiv(target_programs, q_blocks)))
    rows_per_split = triton.cdiv(triton.cdiv(n_rows, splits), BLOCK_N) * BLOCK_N
    splits = max(1, triton.cdiv(n_rows, rows_per_split))
    out_s = torch.empty((n_queries, splits, K), dtype=torch.float32, device=database.device)
    out_i = torch.empty((n_queries, splits, K), dtype=torch.int64, device=database.device)
    _fused_topk_kernel[(q_blocks, splits)](
        queries, database, out_s, out_i,
        n_queries, n_rows, dim, rows_per_split,
        queries.stride(0), database.stride(0), out_s.stride(0), out_s.stride(1),
        K=K, BLOCK_Q=BLOCK_Q, BLOCK_N=BLOCK_N, BLOCK_D=BLOCK_D,
        # fp32 data is multiplied in full fp32 ("ieee"), not TF32, so results match the reference
        PRECISION="ieee" if database.dtype == torch.float32 else "tf32",
        num_warps=num_warps, num_stages=num_stages,
    )  # fmt: skip
    return out_s, out_i
