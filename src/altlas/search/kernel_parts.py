"""Pieces shared by the search kernels (imported only where triton is installed)."""

from __future__ import annotations

import triton
import triton.language as tl

__all__ = ["tile_scores"]


@triton.jit  # type: ignore[untyped-decorator]
def tile_scores(  # type: ignore[no-untyped-def]
    q_ptr, db_ptr, offs_q, offs_n, q_mask, n_mask, stride_q, stride_db, dim,
    BLOCK_Q: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    """The [queries x rows] inner products of one tile, accumulated in fp32 over dim in
    BLOCK_D steps. Row offsets are 64-bit (10M x 384 elements overflow 32 bits); masked
    loads read 0 outside the data."""
    acc = tl.zeros((BLOCK_Q, BLOCK_N), tl.float32)
    for d0 in range(0, dim, BLOCK_D):
        offs_d = d0 + tl.arange(0, BLOCK_D)
        d_mask = offs_d < dim
        q_at = q_ptr + offs_q.to(tl.int64)[:, None] * stride_q + offs_d[None, :]
        q_tile = tl.load(q_at, mask=q_mask[:, None] & d_mask[None, :], other=0.0)
        db_at = db_ptr + offs_n.to(tl.int64)[:, None] * stride_db + offs_d[None, :]
        db_tile = tl.load(db_at, mask=n_mask[:, None] & d_mask[None, :], other=0.0)
        acc = tl.dot(q_tile, tl.trans(db_tile), acc, input_precision=PRECISION)
    return acc
