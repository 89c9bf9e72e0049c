"""Pieces shared by the search kernels (imported only where triton is installed)."""

from __future__ import annotations

import triton
import triton.language as tl

__all__ = ["dot_tile"]


@triton.jit  # type: ignore[untyped-decorator]
def dot_tile(  # type: ignore[no-untyped-def]
    acc, q_ptr, db_ptr, offs_q, offs_n, q_mask, n_mask, d0, stride_q, stride_db, dim,
    BLOCK_D: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    """acc + the [queries x rows] products over dims d0 .. d0 + BLOCK_D (64-bit row offsets:
    10M x 384 elements overflow 32 bits); masked loads read 0 outside the data."""
    offs_d = d0 + tl.arange(0, BLOCK_D)
    d_mask = offs_d < dim
    q_at = q_ptr + offs_q.to(tl.int64)[:, None] * stride_q + offs_d[None, :]
    q_tile = tl.load(q_at, mask=q_mask[:, None] & d_mask[None, :], other=0.0)
    db_at = db_ptr + offs_n.to(tl.int64)[:, None] * stride_db + offs_d[None, :]
    db_tile = tl.load(db_at, mask=n_mask[:, None] & d_mask[None, :], other=0.0)
    return tl.dot(q_tile, tl.trans(db_tile), acc, input_precision=PRECISION)
