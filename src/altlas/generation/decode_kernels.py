"""Triton kernels for one decode step of a Llama-family model at batch 1.

At batch 1 every matrix product is a matrix-vector product over a few hundred thousand
weights, so a step is bound by kernel launches, not by arithmetic: torch's eager ops
spend ~20 kernels per layer on norms, rotary embedding, cache writes and activations.
These kernels fuse them into 5 launches per layer: matrix-vector products with the RMS norm,
the SwiGLU activation or the residual add folded in, rotary embedding with the cache write,
and attention; they read the position from device memory, so one CUDA graph replays every step.
References: transformers' LlamaRMSNorm, apply_rotary_pos_emb, eager attention, and
SiLU-gated MLP; tests compare against them (tests/unit/test_llama_decoder.py).
"""

from __future__ import annotations

import triton
import triton.language as tl

__all__ = [
    "attention_kernel",
    "gemv_kernel",
    "online_softmax_block",
    "rmsnorm_kernel",
    "rope_cache_kernel",
    "rotate_qkv",
]


@triton.jit  # type: ignore[untyped-decorator]
def rmsnorm_kernel(x_ptr, weight_ptr, out_ptr, size, eps, BLOCK: tl.constexpr):  # type: ignore[no-untyped-def]
    """Row `program 0` of out = x / rms(x) * weight in fp32, rounded like transformers
    (normalised x to the model's dtype, then times the weight). At batch 1 the layers fold
    their norms into gemv_kernel and this is the final norm (one program); the paged decoder
    runs it over every row of a step (one launch where torch takes five)."""
    row = tl.program_id(0).to(tl.int64)
    offs = tl.arange(0, BLOCK)
    mask = offs < size
    x = tl.load(x_ptr + row * size + offs, mask=mask, other=0.0)
    xf = x.to(tl.float32)
    variance = tl.sum(xf * xf, axis=0) / size
    normed = (xf * tl.rsqrt(variance + eps)).to(x.dtype)
    weight = tl.load(weight_ptr + offs, mask=mask, other=0.0)
    result = (weight.to(tl.float32) * normed.to(tl.float32)).to(x.dtype)
    tl.store(out_ptr + row * size + offs, result, mask=mask)


@triton.jit  # type: ignore[untyped-decorator]
def rotate_qkv(  # type: ignore[no-untyped-def]
    qkv_ptr, cos_ptr, sin_ptr, pos,
    HEADS: tl.constexpr, KV_HEADS: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_HEADS: tl.constexpr,
):  # fmt: skip
    """One token's [q; k; v] at qkv_ptr with rotary embedding at `pos` applied to q and k
    (x*cos + rotate_half(x)*sin in fp32, rounded to the model's dtype, like transformers).
    Returns (at, q, q_mask, k, v, kv_mask, heads, dims): `at` = head * HEAD_DIM + dim offsets
    [BLOCK_HEADS, HEAD_DIM] for storing q, k and v, masks for the real heads."""
    half = HEAD_DIM // 2
    dims = tl.arange(0, HEAD_DIM)
    partner = tl.where(dims < half, dims + half, dims - half)
    sign = tl.where(dims < half, -1.0, 1.0)
    cos = tl.load(cos_ptr + pos * HEAD_DIM + dims).to(tl.float32)
    sin = tl.load(sin_ptr + pos * HEAD_DIM + dims).to(tl.float32)
    heads = tl.arange(0, BLOCK_HEADS)[:, None]
    at = heads * HEAD_DIM + dims[None, :]
    swapped = heads * HEAD_DIM + partner[None, :]
    q_mask = heads < HEADS
    q = tl.load(qkv_ptr + at, mask=q_mask, other=0.0)
    q_partner = tl.load(qkv_ptr + swapped, mask=q_mask, other=0.0).to(tl.float32)
    q_rot = q.to(tl.float32) * cos[None, :] + sign[None, :] * q_partner * sin[None, :]
    kv_mask = heads < KV_HEADS
    k_base = qkv_ptr + HEADS * HEAD_DIM
    k = tl.load(k_base + at, mask=kv_mask, other=0.0)
    k_partner = tl.load(k_base + swapped, mask=kv_mask, other=0.0).to(tl.float32)
    k_rot = k.to(tl.float32) * cos[None, :] + sign[None, :] * k_partner * sin[None, :]
    v = tl.load(k_base + KV_HEADS * HEAD_DIM + at, mask=kv_mask, other=0.0)
    return at, q_rot.to(q.dtype), q_mask, k_rot.to(k.dtype), v, kv_mask, heads, dims


@triton.jit  # type: ignore[untyped-decorator]
def rope_cache_kernel(  # type: ignore[no-untyped-def]
    qkv_ptr, cos_ptr, sin_ptr, pos_ptr, q_out_ptr, k_cache_ptr, v_cache_ptr,
    cache_head_stride, cache_pos_stride,
    HEADS: tl.constexpr, KV_HEADS: tl.constexpr, HEAD_DIM: tl.constexpr,
    BLOCK_HEADS: tl.constexpr,
):  # fmt: skip
    """Rotary embedding of q and k at the step's position (q*cos + rotate_half(q)*sin), q to
    q_out, k and v into the layer's cache at that position."""
    pos = tl.load(pos_ptr)
    at, q, q_mask, k, v, kv_mask, heads, dims = rotate_qkv(
        qkv_ptr, cos_ptr, sin_ptr, pos, HEADS, KV_HEADS, HEAD_DIM, BLOCK_HEADS
    )
    tl.store(q_out_ptr + at, q, mask=q_mask)
    cache_at = heads * cache_head_stride + pos * cache_pos_stride + dims[None, :]
    tl.store(k_cache_ptr + cache_at, k, mask=kv_mask)
    tl.store(v_cache_ptr + cache_at, v, mask=kv_mask)


@triton.jit
def online_softmax_block(q, keys, values, valid, best, total, acc):  # type: ignore[no-untyped-def]
    """Fold one block of positions (keys, values [block, dim], fp32; `valid` masks the block's
    tail) into a running softmax-weighted sum: (best score, weight total, weighted values)."""
    scores = tl.where(valid, tl.sum(keys * q[None, :], axis=1), float("-inf"))
    new_best = tl.maximum(best, tl.max(scores, axis=0))
    weights = tl.exp(scores - new_best)
    correction = tl.exp(best - new_best)
    acc = acc * correction + tl.sum(weights[:, None] * values, axis=0)
    total = total * correction + tl.sum(weights, axis=0)
    return new_best, total, acc


@triton.jit  # type: ignore[untyped-decorator]
def attention_kernel(  # type: ignore[no-untyped-def]
    q_ptr, k_cache_ptr, v_cache_ptr, pos_ptr, out_ptr, scale,
    cache_head_stride, cache_pos_stride,
    GROUP: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_POS: tl.constexpr,
):  # fmt: skip
    """One query head (a program) over its KV head's cache, positions 0..pos, with an online
    softmax in fp32 (grouped-query attention: GROUP query heads share a KV head)."""
    head = tl.program_id(0)
    kv_head = head // GROUP
    length = tl.load(pos_ptr) + 1
    dims = tl.arange(0, HEAD_DIM)
    q = tl.load(q_ptr + head * HEAD_DIM + dims).to(tl.float32) * scale
    best = tl.full((1,), float("-inf"), tl.float32)
    total = tl.zeros((1,), tl.float32)
    acc = tl.zeros((HEAD_DIM,), tl.float32)
    base = kv_head * cache_head_stride
    for start in range(0, length, BLOCK_POS):
        positions = start + tl.arange(0, BLOCK_POS)
        valid = positions < length
        at = base + positions[:, None] * cache_pos_stride + dims[None, :]
        keys = tl.load(k_cache_ptr + at, mask=valid[:, None], other=0.0).to(tl.float32)
        values = tl.load(v_cache_ptr + at, mask=valid[:, None], other=0.0).to(tl.float32)
        best, total, acc = online_softmax_block(q, keys, values, valid, best, total, acc)
    out = acc / total
    tl.store(out_ptr + head * HEAD_DIM + dims, out.to(out_ptr.dtype.element_ty))


@triton.jit  # type: ignore[untyped-decorator]
def gemv_kernel(  # type: ignore[no-untyped-def]
    w_ptr, v_ptr, norm_ptr, out_ptr, rows, cols, eps,
    NORM: tl.constexpr, SWIGLU: tl.constexpr, RESIDUAL: tl.constexpr,
    BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    """out[r] = W[r] . v for BLOCK_R rows per program (BLOCK_C >= cols), fp32 accumulation,
    rounded once like cuBLAS.

    NORM: v is first RMS-normalised and scaled by norm_ptr (the layer's norm folded in).
    SWIGLU: W holds [gate; up] (2 x rows rows): out = silu(gate . v) * (up . v).
    RESIDUAL: out[r] += result in place (the residual stream).
    Rounding follows transformers step by step, so the fused path matches its forward."""
    row = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    row_ok = row < rows
    c = tl.arange(0, BLOCK_C)
    c_ok = c < cols
    # One tile spans the whole row (BLOCK_C >= cols): every load is issued up front, so a
    # program waits for memory once; at batch 1 this latency, not bandwidth, sets the time.
    at = row.to(tl.int64)[:, None] * cols + c[None, :]
    tile = tl.load(w_ptr + at, mask=row_ok[:, None] & c_ok[None, :], other=0.0)
    if SWIGLU:
        up = tl.load(w_ptr + rows * cols + at, mask=row_ok[:, None] & c_ok[None, :], other=0.0)
    v = tl.load(v_ptr + c, mask=c_ok, other=0.0)
    if NORM:
        weight = tl.load(norm_ptr + c, mask=c_ok, other=0.0)
        vf = v.to(tl.float32)
        normed = (vf * tl.rsqrt(tl.sum(vf * vf, axis=0) / cols + eps)).to(v.dtype)
        v = (weight.to(tl.float32) * normed.to(tl.float32)).to(v.dtype)
    vf = v.to(tl.float32)
    acc = tl.sum(tile.to(tl.float32) * vf[None, :], axis=1)
    if SWIGLU:
        acc_up = tl.sum(up.to(tl.float32) * vf[None, :], axis=1)
    dtype = out_ptr.dtype.element_ty
    result = acc.to(dtype)
    if SWIGLU:
        gate = result.to(tl.float32)
        activated = (gate / (1.0 + tl.exp(-gate))).to(dtype)
        result = (activated.to(tl.float32) * acc_up.to(dtype).to(tl.float32)).to(dtype)
    if RESIDUAL:
        result = (tl.load(out_ptr + row, mask=row_ok, other=0.0).to(tl.float32) + result.to(tl.float32)).to(
            dtype
        )
    tl.store(out_ptr + row, result, mask=row_ok)
