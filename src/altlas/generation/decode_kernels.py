"""Triton kernels for one decode step of a Llama-family model at batch 1.

At batch 1 every matrix product is a matrix-vector product, so a step is bound by kernel
launches and memory latency, not by arithmetic: torch's eager ops spend ~20 kernels per layer
on norms, rotary embedding, cache writes and activations. These kernels fuse them into 5
launches per layer: four matrix-vector products with the RMS norm, a bias, the SwiGLU
activation or the residual add folded in; and attention with the rotary embedding (and Qwen3's
per-head q/k norms) and the cache write folded in, a head's positions split over programs
(flash-decoding), their partial softmaxes combined by the output product as it reads them
(gemv_kernel's COMBINE) or, where that product cannot, by a launch of their own. The LM head is
one more product, the final norm folded in. They read the position from device memory,
so one CUDA graph replays every step; on Hopper they are launched as programmatic dependents
(PDL), each starting to load its weights while the kernel before it finishes.
References: transformers' LlamaRMSNorm, apply_rotary_pos_emb, eager attention, nn.Linear
and SiLU-gated MLP; tests compare against them (tests/unit/test_llama_decoder.py,
tests/unit/test_llm_families.py).
"""

from __future__ import annotations

import triton
import triton.language as tl

try:  # programmatic dependent launch (Hopper on): Triton 3.3 on
    from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

    PDL_AVAILABLE = True
except ImportError:  # pragma: no cover - older Triton: kernels are launched without PDL
    PDL_AVAILABLE = False

__all__ = [
    "PDL_AVAILABLE",
    "attention_combine_kernel",
    "combine_parts",
    "gemv_kernel",
    "greedy_kernel",
    "online_softmax_block",
    "rmsnorm_kernel",
    "rope_attention_kernel",
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


@triton.jit
def online_softmax_block(q, keys, values, valid, best, total, acc):  # type: ignore[no-untyped-def]
    """Fold one block of positions (keys, values [block, dim], fp32; `valid` masks the block's
    tail, or all of it) into a running softmax-weighted sum: (best score, weight total,
    weighted values); (-inf, 0, 0) while no position was valid."""
    scores = tl.where(valid, tl.sum(keys * q[None, :], axis=1), float("-inf"))
    new_best = tl.maximum(best, tl.max(scores, axis=0))
    shift = tl.where(new_best == float("-inf"), 0.0, new_best)  # nothing valid yet: weights 0, not NaN
    weights = tl.exp(scores - shift)
    correction = tl.exp(best - shift)
    acc = acc * correction + tl.sum(weights[:, None] * values, axis=0)
    total = total * correction + tl.sum(weights, axis=0)
    return new_best, total, acc


@triton.jit  # type: ignore[untyped-decorator]
def attend_positions(  # type: ignore[no-untyped-def]
    q, k_cache_ptr, v_cache_ptr, base, start, end, cache_pos_stride,
    HEAD_DIM: tl.constexpr, BLOCK_POS: tl.constexpr, best, total, acc,
):  # fmt: skip
    """(best, total, acc) of q [HEAD_DIM] (fp32, scaled) folded over cache positions
    start..end-1 of one KV head (at `base`), a block of positions at a time, online softmax in
    fp32, from the running (best, total, acc) given."""
    dims = tl.arange(0, HEAD_DIM)
    for block in range(start, end, BLOCK_POS):
        positions = block + tl.arange(0, BLOCK_POS)
        valid = positions < end
        at = base + positions[:, None] * cache_pos_stride + dims[None, :]
        keys = tl.load(k_cache_ptr + at, mask=valid[:, None], other=0.0).to(tl.float32)
        values = tl.load(v_cache_ptr + at, mask=valid[:, None], other=0.0).to(tl.float32)
        best, total, acc = online_softmax_block(q, keys, values, valid, best, total, acc)
    return best, total, acc


@triton.jit  # type: ignore[untyped-decorator]
def rope_head(  # type: ignore[no-untyped-def]
    ptr, cos, sin, norm_ptr, eps, HEAD_DIM: tl.constexpr, QK_NORM: tl.constexpr,
):  # fmt: skip
    """One head's q or k at ptr [HEAD_DIM], as [1, HEAD_DIM] in the model's dtype, after the
    per-head RMS norm (QK_NORM) and rotary embedding (cos, sin: the position's [HEAD_DIM] rows
    in fp32): what rotate_qkv does to every head, for one."""
    half = HEAD_DIM // 2
    dims = tl.arange(0, HEAD_DIM)
    partner = tl.where(dims < half, dims + half, dims - half)
    sign = tl.where(dims < half, -1.0, 1.0)
    x = tl.load(ptr + dims[None, :])
    x_partner = tl.load(ptr + partner[None, :])
    if QK_NORM:
        x, x_partner = head_rms_norm(x, x_partner, norm_ptr, dims, partner, eps, HEAD_DIM)
    return rotate(x, x_partner, cos, sin, sign)


@triton.jit  # type: ignore[untyped-decorator]
def rope_attention_kernel(  # type: ignore[no-untyped-def]
    qkv_ptr, cos_ptr, sin_ptr, pos_ptr, k_cache_ptr, v_cache_ptr, out_ptr, scale,
    cache_head_stride, cache_pos_stride, q_norm_ptr, k_norm_ptr, eps,
    HEADS: tl.constexpr, GROUP: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_POS: tl.constexpr,
    SPLITS: tl.constexpr, QK_NORM: tl.constexpr, PDL: tl.constexpr,
):  # fmt: skip
    """A decode step's attention for one query head (program 0) from the layer's [q; k; v]
    product: rotary embedding of its q and of its KV head's k at the step's position (after the
    per-head q/k norms when QK_NORM), that k and v written into the cache there (by the group's
    first head), then an online softmax in fp32 over the cached positions 0..pos-1 and the new
    one, held in registers (grouped-query attention: GROUP query heads share a KV head).

    SPLITS == 1: one program per head writes the head's output to out_ptr. SPLITS > 1
    (flash-decoding for long contexts): program (head, split) takes the split-th of SPLITS equal
    shares (whole blocks) of the cached positions, the last share also the new position, and
    writes its partial softmax to out_ptr [heads, SPLITS, HEAD_DIM + 2] (weighted values, best
    score, weight total; an empty share: 0, -inf, 0) for attention_combine_kernel: one program
    per head waits on every position one block after another, most of the GPU idle.
    PDL: launched as a programmatic dependent of the previous kernel; the rotary tables (not
    written by it) are read before waiting for it."""
    if PDL:
        gdc_launch_dependents()
    head = tl.program_id(0)
    split = tl.program_id(1)
    kv_head = head // GROUP
    pos = tl.load(pos_ptr)
    dims = tl.arange(0, HEAD_DIM)
    cos = tl.load(cos_ptr + pos * HEAD_DIM + dims).to(tl.float32)
    sin = tl.load(sin_ptr + pos * HEAD_DIM + dims).to(tl.float32)
    share = tl.cdiv(tl.cdiv(pos, SPLITS), BLOCK_POS) * BLOCK_POS
    start = split * share
    end = tl.minimum(start + share, pos)
    base = kv_head * cache_head_stride
    # The share's first block of cached positions (written by earlier steps, not by the kernel
    # before this one) is read before waiting for that kernel.
    first = start + tl.arange(0, BLOCK_POS)
    first_valid = first < end
    first_at = base + first[:, None] * cache_pos_stride + dims[None, :]
    first_keys = tl.load(k_cache_ptr + first_at, mask=first_valid[:, None], other=0.0)
    first_values = tl.load(v_cache_ptr + first_at, mask=first_valid[:, None], other=0.0)
    if PDL:
        gdc_wait()
    q = rope_head(qkv_ptr + head * HEAD_DIM, cos, sin, q_norm_ptr, eps, HEAD_DIM, QK_NORM)
    k_ptr = qkv_ptr + (HEADS + kv_head) * HEAD_DIM
    k = rope_head(k_ptr, cos, sin, k_norm_ptr, eps, HEAD_DIM, QK_NORM)
    v = tl.load(qkv_ptr + (HEADS + HEADS // GROUP + kv_head) * HEAD_DIM + dims[None, :])
    if (head % GROUP == 0) & (split == 0):
        at = base + pos * cache_pos_stride + dims[None, :]
        tl.store(k_cache_ptr + at, k)
        tl.store(v_cache_ptr + at, v)
    qf = tl.sum(q.to(tl.float32), axis=0) * scale  # [HEAD_DIM]
    best, total, acc = online_softmax_block(
        qf, first_keys.to(tl.float32), first_values.to(tl.float32), first_valid,
        tl.full((1,), float("-inf"), tl.float32), tl.zeros((1,), tl.float32),
        tl.zeros((HEAD_DIM,), tl.float32),
    )  # fmt: skip
    best, total, acc = attend_positions(
        qf, k_cache_ptr, v_cache_ptr, base, start + BLOCK_POS, end, cache_pos_stride, HEAD_DIM,
        BLOCK_POS, best, total, acc,
    )  # fmt: skip
    if split == SPLITS - 1:  # the new position, from registers
        new = tl.arange(0, 1) < 1
        best, total, acc = online_softmax_block(qf, k.to(tl.float32), v.to(tl.float32), new, best, total, acc)
    if SPLITS == 1:
        tl.store(out_ptr + head * HEAD_DIM + dims, (acc / total).to(out_ptr.dtype.element_ty))
    else:
        part = out_ptr + (head * SPLITS + split) * (HEAD_DIM + 2)
        tl.store(part + dims, acc)
        tl.store(part + HEAD_DIM + tl.arange(0, 1), best)
        tl.store(part + HEAD_DIM + 1 + tl.arange(0, 1), total)


@triton.jit  # type: ignore[untyped-decorator]
def combine_parts(  # type: ignore[no-untyped-def]
    part_ptr, first_head, heads, HEADS_BLOCK: tl.constexpr, SPLITS: tl.constexpr, HEAD_DIM: tl.constexpr,
):  # fmt: skip
    """Attention outputs [HEADS_BLOCK, HEAD_DIM] (fp32) of heads first_head.. (zeros past
    `heads`) from rope_attention_kernel's SPLITS partial softmaxes a head: each rescaled to the
    best score of all (an empty share weighs 0), summed, divided once."""
    head = first_head + tl.arange(0, HEADS_BLOCK)
    real = head < heads
    part = (head[:, None] * SPLITS + tl.arange(0, SPLITS)[None, :]) * (HEAD_DIM + 2)  # [heads, splits]
    best = tl.load(part_ptr + part + HEAD_DIM, mask=real[:, None], other=float("-inf"))
    total = tl.load(part_ptr + part + HEAD_DIM + 1, mask=real[:, None], other=0.0)
    dims = tl.arange(0, HEAD_DIM)
    acc = tl.load(part_ptr + part[:, :, None] + dims[None, None, :], mask=real[:, None, None], other=0.0)
    # A real head's last share holds the new position: its best score is finite.
    weight = tl.exp(best - tl.where(real, tl.max(best, axis=1), 0.0)[:, None])
    totals = tl.where(real, tl.sum(total * weight, axis=1), 1.0)
    return tl.sum(acc * weight[:, :, None], axis=1) / totals[:, None]


@triton.jit  # type: ignore[untyped-decorator]
def attention_combine_kernel(  # type: ignore[no-untyped-def]
    part_ptr, out_ptr, HEAD_DIM: tl.constexpr, SPLITS: tl.constexpr, PDL: tl.constexpr,
):  # fmt: skip
    """One head's attention output (program 0) from rope_attention_kernel's SPLITS partial
    softmaxes (combine_parts), where the product after attention cannot fold them in."""
    if PDL:
        gdc_launch_dependents()
        gdc_wait()
    head = tl.program_id(0)
    out = combine_parts(part_ptr, head, head + 1, 1, SPLITS, HEAD_DIM)
    dims = tl.arange(0, HEAD_DIM)[None, :]
    tl.store(out_ptr + head * HEAD_DIM + dims, out.to(out_ptr.dtype.element_ty))


@triton.jit  # type: ignore[untyped-decorator]
def gemv_kernel(  # type: ignore[no-untyped-def]
    w_ptr, v_ptr, norm_ptr, bias_ptr, out_ptr, rows, cols, eps,
    NORM: tl.constexpr, SWIGLU: tl.constexpr, RESIDUAL: tl.constexpr, BIAS: tl.constexpr,
    BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr, COL_BLOCKS: tl.constexpr, PDL: tl.constexpr,
    COMBINE: tl.constexpr = 0, HEAD_DIM: tl.constexpr = 0,
):  # fmt: skip
    """out[r] = W[r] . v for BLOCK_R rows per program, fp32 accumulation, rounded once like
    cuBLAS. COL_BLOCKS == 1: one tile spans the row (BLOCK_C >= cols); else the row is read in
    COL_BLOCKS tiles of BLOCK_C (rows longer than one tile takes, e.g. 14336).

    NORM: v is first RMS-normalised and scaled by norm_ptr (the layer's norm folded in).
    BIAS: bias_ptr[r] is added in fp32 before the rounding (nn.Linear's addmm does the same).
    SWIGLU: W holds [gate; up] (2 x rows rows): out = silu(gate . v) * (up . v).
    RESIDUAL: out[r] += result in place (the residual stream).
    COMBINE (one tile only, BLOCK_C a multiple of HEAD_DIM): v_ptr holds rope_attention_kernel's
    COMBINE partial softmaxes a head, not v; each program combines every head's (combine_parts)
    into v, rounded to the model's dtype as attention_combine_kernel writes it: flash-decoding
    without a launch of its own (the output product after attention).
    PDL: launched as a programmatic dependent of the previous kernel (Hopper on): a one-tile
    program issues its weight loads before waiting for that kernel (which writes v and out), so
    the weights stream in while the previous kernel finishes.
    Rounding follows transformers step by step, so the fused path matches its forward."""
    if PDL:
        gdc_launch_dependents()
    row = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    row_ok = row < rows
    w_rows = w_ptr + row.to(tl.int64)[:, None] * cols
    if BIAS:  # the model's: read before waiting for the kernel before
        bias = tl.load(bias_ptr + row, mask=row_ok, other=0.0).to(tl.float32)
    if COL_BLOCKS == 1:
        c = tl.arange(0, BLOCK_C)
        c_ok = c < cols
        # Every load is issued up front, so a program waits for memory once; at batch 1 this
        # latency, not bandwidth, sets the time.
        tile = tl.load(w_rows + c[None, :], mask=row_ok[:, None] & c_ok[None, :], other=0.0)
        if SWIGLU:
            up = tl.load(w_rows + rows * cols + c[None, :], mask=row_ok[:, None] & c_ok[None, :], other=0.0)
        if NORM:
            weight = tl.load(norm_ptr + c, mask=c_ok, other=0.0)
        if PDL:
            gdc_wait()
        if RESIDUAL:  # read with v, not after the product: one wait for memory, not two
            residual = tl.load(out_ptr + row, mask=row_ok, other=0.0)
        if COMBINE:
            heads = combine_parts(v_ptr, 0, cols // HEAD_DIM, BLOCK_C // HEAD_DIM, COMBINE, HEAD_DIM)
            v = tl.reshape(heads.to(out_ptr.dtype.element_ty), (BLOCK_C,))
        else:
            v = tl.load(v_ptr + c, mask=c_ok, other=0.0)
        if NORM:
            vf = v.to(tl.float32)
            normed = (vf * tl.rsqrt(tl.sum(vf * vf, axis=0) / cols + eps)).to(v.dtype)
            v = (weight.to(tl.float32) * normed.to(tl.float32)).to(v.dtype)
        vf = v.to(tl.float32)
        acc = tl.sum(tile.to(tl.float32) * vf[None, :], axis=1)
        if SWIGLU:
            acc_up = tl.sum(up.to(tl.float32) * vf[None, :], axis=1)
    else:
        if PDL:
            gdc_wait()
        if RESIDUAL:
            residual = tl.load(out_ptr + row, mask=row_ok, other=0.0)
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
        acc += bias
    dtype = out_ptr.dtype.element_ty
    result = acc.to(dtype)
    if SWIGLU:
        gate = result.to(tl.float32)
        activated = (gate / (1.0 + tl.exp(-gate))).to(dtype)
        result = (activated.to(tl.float32) * acc_up.to(dtype).to(tl.float32)).to(dtype)
    if RESIDUAL:
        result = (residual.to(tl.float32) + result.to(tl.float32)).to(dtype)
    tl.store(out_ptr + row, result, mask=row_ok)


@triton.jit  # type: ignore[untyped-decorator]
def greedy_kernel(  # type: ignore[no-untyped-def]
    logits_ptr, vocab, choice_ptr, token_ptr, pos_ptr, last_position,
    BLOCK: tl.constexpr, NO_TOKEN: tl.constexpr, PDL: tl.constexpr,
):  # fmt: skip
    """The step's greedy choice, at the end of the step (one program): choice_ptr[0] = the
    argmax of the logits by sampling.next_token's greedy rule (NaN never chosen, +inf as the
    largest float, the first of equal maxima as torch.argmax; NO_TOKEN when no logit is
    usable); token_ptr[0] = the same id (0 when none is usable: it is the next step's input,
    an index), pos_ptr[0] advanced by one (at most to last_position): so a greedy caller feeds
    the next step without a launch of its own."""
    if PDL:
        gdc_launch_dependents()
        gdc_wait()
    lanes = tl.arange(0, BLOCK)
    best = tl.full((BLOCK,), float("-inf"), tl.float32)
    best_at = tl.zeros((BLOCK,), tl.int32)
    for start in range(0, vocab, BLOCK):
        at = start + lanes
        x = tl.load(logits_ptr + at, mask=at < vocab, other=float("-inf")).to(tl.float32)
        x = tl.where(x != x, float("-inf"), tl.minimum(x, 3.4028234663852886e38))  # NaN, +inf
        better = x > best  # strictly: a lane keeps its first maximum
        best = tl.where(better, x, best)
        best_at = tl.where(better, at, best_at)
    top = tl.max(best, axis=0)
    usable = top > float("-inf")
    index = tl.min(tl.where(best == top, best_at, vocab), axis=0).to(tl.int64)
    index = tl.where(usable, index, 0)
    tl.store(token_ptr, index)
    tl.store(choice_ptr, tl.where(usable, index, NO_TOKEN))
    tl.store(pos_ptr, tl.minimum(tl.load(pos_ptr) + 1, last_position))
