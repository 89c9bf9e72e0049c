"""Triton kernels for one decode step of many sequences over a paged KV cache.

The cache of a layer is a pool of pages of PAGE positions, [pages * PAGE, kv_heads, head_dim];
each sequence (a *slot*) owns the pages its block-table row names, in order, so a sequence
takes memory for the positions it has, not for the longest context. A step's *rows* are
tokens: one per decoding sequence, or several of one sequence's prompt (prefill runs through
the same step: every row's key and value are written before attention reads them, and a row
attends to positions up to its own). Both kernels read each row's position and slot from
device memory, so one CUDA graph replays every step whatever
the sequences' lengths. References in torch: paged_decoder.py (`rope_and_store_reference`,
`paged_attention_reference`); tests/unit/test_paged_decoder.py holds the kernels to them.
"""

from __future__ import annotations

import triton
import triton.language as tl

from altlas.generation.decode_kernels import online_softmax_block, rotate_qkv

__all__ = ["paged_attention_kernel", "rope_paged_kernel"]


@triton.jit  # type: ignore[untyped-decorator]
def rope_paged_kernel(  # type: ignore[no-untyped-def]
    qkv_ptr, cos_ptr, sin_ptr, pos_ptr, row_slot_ptr, table_ptr, q_out_ptr, k_pool_ptr, v_pool_ptr,
    qkv_stride, table_stride, q_norm_ptr, k_norm_ptr, eps,
    HEADS: tl.constexpr, KV_HEADS: tl.constexpr, HEAD_DIM: tl.constexpr, PAGE: tl.constexpr,
    BLOCK_HEADS: tl.constexpr, QK_NORM: tl.constexpr,
):  # fmt: skip
    """For row = program 0: rotary embedding of its q and k at its position
    (x*cos + rotate_half(x)*sin, like transformers; QK_NORM: after Qwen3's per-head q/k RMS
    norms), q to q_out, k and v into its slot's page."""
    row_id = tl.program_id(0)
    pos = tl.load(pos_ptr + row_id)
    slot = tl.load(row_slot_ptr + row_id)
    page = tl.load(table_ptr + slot * table_stride + pos // PAGE)
    row = page.to(tl.int64) * PAGE + pos % PAGE
    at, q, q_mask, k, v, kv_mask, _heads, _dims = rotate_qkv(
        qkv_ptr + row_id * qkv_stride, cos_ptr, sin_ptr, pos, q_norm_ptr, k_norm_ptr, eps,
        HEADS, KV_HEADS, HEAD_DIM, BLOCK_HEADS, QK_NORM,
    )  # fmt: skip
    tl.store(q_out_ptr + row_id * HEADS * HEAD_DIM + at, q, mask=q_mask)
    pool_at = row * KV_HEADS * HEAD_DIM + at
    tl.store(k_pool_ptr + pool_at, k, mask=kv_mask)
    tl.store(v_pool_ptr + pool_at, v, mask=kv_mask)


@triton.jit  # type: ignore[untyped-decorator]
def paged_attention_kernel(  # type: ignore[no-untyped-def]
    q_ptr, k_pool_ptr, v_pool_ptr, pos_ptr, row_slot_ptr, table_ptr, out_ptr, scale, table_stride,
    HEADS: tl.constexpr, KV_HEADS: tl.constexpr, HEAD_DIM: tl.constexpr, PAGE: tl.constexpr,
):  # fmt: skip
    """One query head of one row (programs: row, head) over its slot's positions 0..pos of
    its KV head, a page at a time, with an online softmax in fp32 (grouped-query attention)."""
    row_id = tl.program_id(0)
    head = tl.program_id(1)
    slot = tl.load(row_slot_ptr + row_id)
    kv_head = head // (HEADS // KV_HEADS)
    length = tl.load(pos_ptr + row_id) + 1
    dims = tl.arange(0, HEAD_DIM)
    offsets = tl.arange(0, PAGE)
    q = tl.load(q_ptr + (row_id * HEADS + head) * HEAD_DIM + dims).to(tl.float32) * scale
    best = tl.full((1,), float("-inf"), tl.float32)
    total = tl.zeros((1,), tl.float32)
    acc = tl.zeros((HEAD_DIM,), tl.float32)
    for start in range(0, length, PAGE):
        page = tl.load(table_ptr + slot * table_stride + start // PAGE)
        valid = start + offsets < length
        rows = page.to(tl.int64) * PAGE + offsets
        at = (rows[:, None] * KV_HEADS + kv_head) * HEAD_DIM + dims[None, :]
        keys = tl.load(k_pool_ptr + at, mask=valid[:, None], other=0.0).to(tl.float32)
        values = tl.load(v_pool_ptr + at, mask=valid[:, None], other=0.0).to(tl.float32)
        best, total, acc = online_softmax_block(q, keys, values, valid, best, total, acc)
    out = acc / total
    tl.store(out_ptr + (row_id * HEADS + head) * HEAD_DIM + dims, out.to(out_ptr.dtype.element_ty))
