"""Triton kernels for one decode step of a Llama-family model at batch 1.

At batch 1 every matrix product is a matrix-vector product, so a step is bound by kernel
launches and memory latency, not by arithmetic: torch's eager ops spend ~20 kernels per layer
on norms, rotary embedding, cache writes and activations. These kernels fuse them into 5
launches per layer: matrix-vector products with the RMS norm, a bias, the SwiGLU activation
or the residual add folded in; rotary embedding (with Qwen3's per-head q/k norms) and the
cache write; and attention (one program per head, or over long contexts split over positions
and combined: flash-decoding). They read the position from device memory, so one CUDA graph
replays every step.
References: transformers' LlamaRMSNorm, apply_rotary_pos_emb, eager attention, nn.Linear
and SiLU-gated MLP; tests compare against them (tests/unit/test_llama_decoder.py,
tests/unit/test_llm_families.py).
"""

from __future__ import annotations

import triton
import triton.language as tl

__all__ = [
    "attention_combine_kernel",
    "attention_kernel",
    "attention_split_kernel",
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
def head_rms_norm(x, partner, weight_ptr, dims, partner_dims, eps, HEAD_DIM: tl.constexpr):  # type: ignore[no-untyped-def]
    """Qwen3's q_norm / k_norm on heads (rows) x [HEAD_DIM]: each head RMS-normalised in fp32,
    rounded to the model's dtype, times the weight (rounded), like transformers' RMSNorm.
    `partner` holds the same heads' values in rotate_half order; they get the same factor."""
    dtype = x.dtype
    xf = x.to(tl.float32)
    factor = tl.rsqrt(tl.sum(xf * xf, axis=1) / HEAD_DIM + eps)[:, None]
    weight = tl.load(weight_ptr + dims).to(tl.float32)[None, :]
    weight_partner = tl.load(weight_ptr + partner_dims).to(tl.float32)[None, :]
    normed = (weight * (xf * factor).to(dtype).to(tl.float32)).to(dtype)
    normed_partner = (weight_partner * (partner.to(tl.float32) * factor).to(dtype).to(tl.float32)).to(dtype)
    return normed, normed_partner


@triton.jit
def rotate(x, partner, cos, sin, sign):  # type: ignore[no-untyped-def]
    """x*cos + rotate_half(x)*sin with transformers' roundings: each product in the model's
    dtype, then their sum (`partner` is x in rotate_half's order, `sign` its minus half)."""
    dtype = x.dtype
    straight = (x.to(tl.float32) * cos[None, :]).to(dtype).to(tl.float32)
    turned = (sign[None, :] * partner.to(tl.float32) * sin[None, :]).to(dtype).to(tl.float32)
    return (straight + turned).to(dtype)


@triton.jit  # type: ignore[untyped-decorator]
def rotate_qkv(  # type: ignore[no-untyped-def]
    qkv_ptr, cos_ptr, sin_ptr, pos, q_norm_ptr, k_norm_ptr, eps,
    HEADS: tl.constexpr, KV_HEADS: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_HEADS: tl.constexpr,
    QK_NORM: tl.constexpr,
):  # fmt: skip
    """One token's [q; k; v] at qkv_ptr with rotary embedding at `pos` applied to q and k
    (x*cos + rotate_half(x)*sin, rounded like transformers); QK_NORM: q and k first
    RMS-normalised per head by q_norm_ptr / k_norm_ptr's weights (Qwen3).
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
    q_partner = tl.load(qkv_ptr + swapped, mask=q_mask, other=0.0)
    kv_mask = heads < KV_HEADS
    k_base = qkv_ptr + HEADS * HEAD_DIM
    k = tl.load(k_base + at, mask=kv_mask, other=0.0)
    k_partner = tl.load(k_base + swapped, mask=kv_mask, other=0.0)
    v = tl.load(k_base + KV_HEADS * HEAD_DIM + at, mask=kv_mask, other=0.0)
    if QK_NORM:
        q, q_partner = head_rms_norm(q, q_partner, q_norm_ptr, dims, partner, eps, HEAD_DIM)
        k, k_partner = head_rms_norm(k, k_partner, k_norm_ptr, dims, partner, eps, HEAD_DIM)
    q = rotate(q, q_partner, cos, sin, sign)
    k = rotate(k, k_partner, cos, sin, sign)
    return at, q, q_mask, k, v, kv_mask, heads, dims


@triton.jit  # type: ignore[untyped-decorator]
def rope_cache_kernel(  # type: ignore[no-untyped-def]
    qkv_ptr, cos_ptr, sin_ptr, pos_ptr, q_out_ptr, k_cache_ptr, v_cache_ptr,
    cache_head_stride, cache_pos_stride, q_norm_ptr, k_norm_ptr, eps,
    HEADS: tl.constexpr, KV_HEADS: tl.constexpr, HEAD_DIM: tl.constexpr,
    BLOCK_HEADS: tl.constexpr, QK_NORM: tl.constexpr,
):  # fmt: skip
    """Rotary embedding of q and k at the step's position (q*cos + rotate_half(q)*sin, after
    the per-head q/k norms when QK_NORM), q to q_out, k and v into the layer's cache there."""
    pos = tl.load(pos_ptr)
    at, q, q_mask, k, v, kv_mask, heads, dims = rotate_qkv(
        qkv_ptr, cos_ptr, sin_ptr, pos, q_norm_ptr, k_norm_ptr, eps,
        HEADS, KV_HEADS, HEAD_DIM, BLOCK_HEADS, QK_NORM,
    )  # fmt: skip
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
def attend_positions(  # type: ignore[no-untyped-def]
    q, k_cache_ptr, v_cache_ptr, base, start, end, cache_pos_stride,
    HEAD_DIM: tl.constexpr, BLOCK_POS: tl.constexpr,
):  # fmt: skip
    """(best, total, acc) of q [HEAD_DIM] (fp32, scaled) over cache positions start..end-1 of
    one KV head (at `base`), a block of positions at a time, online softmax in fp32."""
    dims = tl.arange(0, HEAD_DIM)
    best = tl.full((1,), float("-inf"), tl.float32)
    total = tl.zeros((1,), tl.float32)
    acc = tl.zeros((HEAD_DIM,), tl.float32)
    for block in range(start, end, BLOCK_POS):
        positions = block + tl.arange(0, BLOCK_POS)
        valid = positions < end
        at = base + positions[:, None] * cache_pos_stride + dims[None, :]
        keys = tl.load(k_cache_ptr + at, mask=valid[:, None], other=0.0).to(tl.float32)
        values = tl.load(v_cache_ptr + at, mask=valid[:, None], other=0.0).to(tl.float32)
        best, total, acc = online_softmax_block(q, keys, values, valid, best, total, acc)
    return best, total, acc


@triton.jit  # type: ignore[untyped-decorator]
def attention_kernel(  # type: ignore[no-untyped-def]
    q_ptr, k_cache_ptr, v_cache_ptr, pos_ptr, out_ptr, scale,
    cache_head_stride, cache_pos_stride,
    GROUP: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_POS: tl.constexpr,
):  # fmt: skip
    """One query head (a program) over its KV head's cache, positions 0..pos, with an online
    softmax in fp32 (grouped-query attention: GROUP query heads share a KV head)."""
    head = tl.program_id(0)
    length = tl.load(pos_ptr) + 1
    dims = tl.arange(0, HEAD_DIM)
    q = tl.load(q_ptr + head * HEAD_DIM + dims).to(tl.float32) * scale
    base = (head // GROUP) * cache_head_stride
    _best, total, acc = attend_positions(
        q, k_cache_ptr, v_cache_ptr, base, 0, length, cache_pos_stride, HEAD_DIM, BLOCK_POS
    )
    tl.store(out_ptr + head * HEAD_DIM + dims, (acc / total).to(out_ptr.dtype.element_ty))


@triton.jit  # type: ignore[untyped-decorator]
def attention_split_kernel(  # type: ignore[no-untyped-def]
    q_ptr, k_cache_ptr, v_cache_ptr, pos_ptr, part_ptr, scale,
    cache_head_stride, cache_pos_stride,
    GROUP: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_POS: tl.constexpr, SPLITS: tl.constexpr,
):  # fmt: skip
    """Flash-decoding for long contexts: program (head, split) takes the split-th of SPLITS
    equal shares (whole blocks) of positions 0..pos and writes its partial softmax to
    part_ptr [heads, SPLITS, HEAD_DIM + 2] (weighted values, best score, weight total; an
    empty share: 0, -inf, 0). attention_combine_kernel sums the shares: one program per head
    waited on every position one block after another, most of the GPU idle."""
    head = tl.program_id(0)
    split = tl.program_id(1)
    length = tl.load(pos_ptr) + 1
    share = tl.cdiv(tl.cdiv(length, SPLITS), BLOCK_POS) * BLOCK_POS
    start = split * share
    end = tl.minimum(start + share, length)
    dims = tl.arange(0, HEAD_DIM)
    q = tl.load(q_ptr + head * HEAD_DIM + dims).to(tl.float32) * scale
    base = (head // GROUP) * cache_head_stride
    best, total, acc = attend_positions(
        q, k_cache_ptr, v_cache_ptr, base, start, end, cache_pos_stride, HEAD_DIM, BLOCK_POS
    )
    part = part_ptr + (head * SPLITS + split) * (HEAD_DIM + 2)
    tl.store(part + dims, acc)
    tl.store(part + HEAD_DIM + tl.arange(0, 1), best)
    tl.store(part + HEAD_DIM + 1 + tl.arange(0, 1), total)


@triton.jit  # type: ignore[untyped-decorator]
def attention_combine_kernel(  # type: ignore[no-untyped-def]
    part_ptr, out_ptr, HEAD_DIM: tl.constexpr, SPLITS: tl.constexpr,
):  # fmt: skip
    """One head's attention output from attention_split_kernel's SPLITS partial softmaxes:
    each rescaled to the best score of all (an empty share weighs 0), summed, divided once."""
    head = tl.program_id(0)
    splits = tl.arange(0, SPLITS)
    dims = tl.arange(0, HEAD_DIM)
    parts = part_ptr + (head * SPLITS + splits) * (HEAD_DIM + 2)
    best = tl.load(parts + HEAD_DIM)
    total = tl.load(parts + HEAD_DIM + 1)
    acc = tl.load(parts[:, None] + dims[None, :])
    weight = tl.exp(best - tl.max(best, axis=0))  # share 0 always holds position 0: the max is finite
    out = tl.sum(acc * weight[:, None], axis=0) / tl.sum(total * weight, axis=0)
    tl.store(out_ptr + head * HEAD_DIM + dims, out.to(out_ptr.dtype.element_ty))


@triton.jit  # type: ignore[untyped-decorator]
def gemv_kernel(  # type: ignore[no-untyped-def]
    w_ptr, v_ptr, norm_ptr, bias_ptr, out_ptr, rows, cols, eps,
    NORM: tl.constexpr, SWIGLU: tl.constexpr, RESIDUAL: tl.constexpr, BIAS: tl.constexpr,
    BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr, COL_BLOCKS: tl.constexpr,
):  # fmt: skip
    """out[r] = W[r] . v for BLOCK_R rows per program, fp32 accumulation, rounded once like
    cuBLAS. COL_BLOCKS == 1: one tile spans the row (BLOCK_C >= cols); else the row is read in
    COL_BLOCKS tiles of BLOCK_C (rows longer than one tile takes, e.g. 14336).

    NORM: v is first RMS-normalised and scaled by norm_ptr (the layer's norm folded in).
    BIAS: bias_ptr[r] is added in fp32 before the rounding (nn.Linear's addmm does the same).
    SWIGLU: W holds [gate; up] (2 x rows rows): out = silu(gate . v) * (up . v).
    RESIDUAL: out[r] += result in place (the residual stream).
    Rounding follows transformers step by step, so the fused path matches its forward."""
    row = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    row_ok = row < rows
    w_rows = w_ptr + row.to(tl.int64)[:, None] * cols
    if COL_BLOCKS == 1:
        c = tl.arange(0, BLOCK_C)
        c_ok = c < cols
        # Every load is issued up front, so a program waits for memory once; at batch 1 this
        # latency, not bandwidth, sets the time.
        tile = tl.load(w_rows + c[None, :], mask=row_ok[:, None] & c_ok[None, :], other=0.0)
        if SWIGLU:
            up = tl.load(w_rows + rows * cols + c[None, :], mask=row_ok[:, None] & c_ok[None, :], other=0.0)
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
    else:
        # The norm needs the whole vector's sum of squares before any tile's product.
        if NORM:
            squares = tl.zeros((BLOCK_C,), tl.float32)
            for block in tl.static_range(COL_BLOCKS):
                c = block * BLOCK_C + tl.arange(0, BLOCK_C)
                vf = tl.load(v_ptr + c, mask=c < cols, other=0.0).to(tl.float32)
                squares += vf * vf
            factor = tl.rsqrt(tl.sum(squares, axis=0) / cols + eps)
        products = tl.zeros((BLOCK_R, BLOCK_C), tl.float32)
        if SWIGLU:
            products_up = tl.zeros((BLOCK_R, BLOCK_C), tl.float32)
        # Unrolled (static_range): the tiles' loads need not wait for each other.
        for block in tl.static_range(COL_BLOCKS):
            c = block * BLOCK_C + tl.arange(0, BLOCK_C)
            c_ok = c < cols
            mask = row_ok[:, None] & c_ok[None, :]
            v = tl.load(v_ptr + c, mask=c_ok, other=0.0)
            if NORM:
                weight = tl.load(norm_ptr + c, mask=c_ok, other=0.0)
                normed = (v.to(tl.float32) * factor).to(v.dtype)
                v = (weight.to(tl.float32) * normed.to(tl.float32)).to(v.dtype)
            vf = v.to(tl.float32)[None, :]
            products += tl.load(w_rows + c[None, :], mask=mask, other=0.0).to(tl.float32) * vf
            if SWIGLU:
                products_up += (
                    tl.load(w_rows + rows * cols + c[None, :], mask=mask, other=0.0).to(tl.float32) * vf
                )
        acc = tl.sum(products, axis=1)
        if SWIGLU:
            acc_up = tl.sum(products_up, axis=1)
    if BIAS:
        acc += tl.load(bias_ptr + row, mask=row_ok, other=0.0).to(tl.float32)
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
