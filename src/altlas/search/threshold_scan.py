"""Fused distance + threshold filter in Triton: emit only the scores at or above a bar.

One kernel serves both searches that need the full score matrix but keep a tiny part of it:
- top-k (`threshold_topk`): a cheap first pass over a strided sample of the database gives
  every query a bar that at least k rows clear (the sample's k-th best, lowered by a
  rounding margin); the kernel then scans the whole database and appends each score
  above the bar to that query's candidate list; one small selection over the lists
  gives the exact top k. With a sample of 1/r of the rows about k x r candidates
  per query survive, so the kernel does a matmul and one comparison per score, not a
  running selection.
- near-duplicate pairs (`threshold_pairs`): the same scan of a matrix against itself,
  upper triangle only, with the caller's threshold as the bar for every row.

Candidates go to fixed-size buffers through atomic counters; a query (or the pair list)
whose count outgrows its buffer is redone, so the answer is exact whatever the data.
`altlas.search.topk` and `altlas.search.similar_pairs` hold the plain-torch references;
tests in tests/unit/test_threshold_scan.py (interpreter on CPU) and tests/gpu.
"""

from __future__ import annotations

import torch

from altlas.errors import InvalidInputError

__all__ = ["SCAN_MAX_ROWS", "scan_candidates", "threshold_pairs", "threshold_topk", "topk_bar"]

SCAN_MAX_ROWS = 2**31 - 1  # indices travel as int32

try:
    import triton
    import triton.language as tl

    from altlas.search.kernel_parts import tile_scores
except ImportError:  # pragma: no cover - triton is optional
    triton = None
    tl = None


if triton is not None:

    @triton.jit  # type: ignore[untyped-decorator]
    def _threshold_scan_kernel(  # type: ignore[no-untyped-def]
        q_ptr, db_ptr, bar_ptr, count_ptr, out_s_ptr, out_i_ptr, out_q_ptr,
        n_queries, n_rows, rows_per_split, capacity,
        stride_q, stride_db,
        DIM: tl.constexpr, BLOCK_Q: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
        PAIRS: tl.constexpr, TMA: tl.constexpr, PRECISION: tl.constexpr,
    ):  # fmt: skip
        pid_q = tl.program_id(0)
        pid_s = tl.program_id(1)
        offs_q = pid_q * BLOCK_Q + tl.arange(0, BLOCK_Q)
        q_mask = offs_q < n_queries
        bar = tl.load(bar_ptr + offs_q, mask=q_mask, other=float("inf"))
        row_start = pid_s * rows_per_split
        row_end = tl.minimum(row_start + rows_per_split, n_rows)
        if PAIRS:  # upper triangle: rows after the block's first query only
            row_start = tl.maximum(row_start, pid_q * BLOCK_Q + 1)
        if TMA:  # Hopper's tensor-memory copies: whole tiles, zero-filled past the end, 64-bit offsets
            q_desc = tl.make_tensor_descriptor(
                q_ptr, shape=[n_queries, DIM], strides=[stride_q, 1], block_shape=[BLOCK_Q, BLOCK_D]
            )
            db_desc = tl.make_tensor_descriptor(
                db_ptr, shape=[n_rows, DIM], strides=[stride_db, 1], block_shape=[BLOCK_N, BLOCK_D]
            )
        for n0 in range(row_start, row_end, BLOCK_N):
            offs_n = n0 + tl.arange(0, BLOCK_N)
            n_mask = offs_n < row_end
            if TMA:
                acc = tl.zeros((BLOCK_Q, BLOCK_N), tl.float32)
                for d0 in range(0, DIM, BLOCK_D):
                    q_tile = q_desc.load([pid_q * BLOCK_Q, d0])
                    db_tile = db_desc.load([n0, d0])
                    acc = tl.dot(q_tile, db_tile.T, acc, input_precision=PRECISION)
            else:
                acc = tile_scores(q_ptr, db_ptr, offs_q, offs_n, q_mask, n_mask, stride_q, stride_db, DIM,
                                  BLOCK_Q, BLOCK_N, BLOCK_D, PRECISION)  # fmt: skip
            _emit_hits(acc, bar, offs_q, n0, offs_n, n_mask, count_ptr, out_s_ptr, out_i_ptr,
                       out_q_ptr, capacity, BLOCK_N, PAIRS)  # fmt: skip

    @triton.jit  # type: ignore[untyped-decorator]
    def _emit_hits(  # type: ignore[no-untyped-def]
        acc, bar, offs_q, n0, offs_n, n_mask, count_ptr, out_s_ptr, out_i_ptr, out_q_ptr, capacity,
        BLOCK_N: tl.constexpr, PAIRS: tl.constexpr,
    ):  # fmt: skip
        """Append the tile's scores >= bar. Hits are rare per row and tile, so each round takes
        every row's best remaining hit with one row-vector of atomics; usually zero or one round."""
        hit = (acc >= bar[:, None]) & n_mask[None, :]
        if PAIRS:
            hit = hit & (offs_n[None, :] > offs_q[:, None])
        masked = tl.where(hit, acc, float("-inf"))
        top, where = tl.max(masked, axis=1, return_indices=True)
        has = top >= bar
        while tl.max(has.to(tl.int32), axis=0) > 0:
            if PAIRS:  # one list for all pairs
                slot = tl.atomic_add(count_ptr + 0 * offs_q, 1, mask=has)
                keep = has & (slot < capacity)
                tl.store(out_q_ptr + slot, offs_q, mask=keep)
                tl.store(out_i_ptr + slot, n0 + where, mask=keep)
                tl.store(out_s_ptr + slot, top, mask=keep)
            else:  # one list per query
                slot = tl.atomic_add(count_ptr + offs_q, 1, mask=has)
                keep = has & (slot < capacity)
                dst = offs_q.to(tl.int64) * capacity + slot
                tl.store(out_i_ptr + dst, n0 + where, mask=keep)
                tl.store(out_s_ptr + dst, top, mask=keep)
            masked = tl.where(tl.arange(0, BLOCK_N)[None, :] == where[:, None], float("-inf"), masked)
            top, where = tl.max(masked, axis=1, return_indices=True)
            has = top >= bar


def scan_candidates(
    queries: torch.Tensor,
    database: torch.Tensor,
    bar: torch.Tensor,
    capacity: int,
    *,
    pairs: bool = False,
    block_q: int | None = None,
    block_n: int | None = None,
    block_d: int | None = None,
    rows_per_split: int | None = None,
    tma: bool | None = None,
    num_warps: int | None = None,
    num_stages: int = 3,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every (query, row, score) with score >= bar[query] (pairs: and row > query).

    Returns (counts, scores, rows, query_of_entry). Per query (pairs=False): counts [Q],
    scores/rows [Q, capacity] filled up to min(count, capacity), padded with -inf / -1.
    Pairs: counts [1], flat lists of `capacity` entries. A count above the capacity
    means entries were dropped: the caller redoes that query or list.
    """
    if triton is None:
        raise InvalidInputError("triton is not installed", field="backend")
    n_queries, dim = queries.shape
    n_rows = database.shape[0]
    if n_rows > SCAN_MAX_ROWS:
        raise InvalidInputError(f"the scan kernel takes up to {SCAN_MAX_ROWS} rows", field="database")
    device = database.device
    queries = queries.to(database.dtype).contiguous()
    if database.stride(1) != 1:
        database = database.contiguous()
    bar = bar.to(device=device, dtype=torch.float32).contiguous()
    if tma is None:
        tma = _tma_suits(queries, database)
    # Tiles measured on an H100 (fp16, d=384, N=1M; docs/search-notes.md): many queries
    # (128, 128, 64) with 8 warps through TMA, (128, 256, 64) without; up to 64 queries
    # (64, 128, 64); up to 16 queries (16, 64, 128), 4 warps. 3 stages throughout.
    if n_queries > 64:
        tile = (128, 128, 64, 8) if tma else (128, 256, 64, 8)
    elif n_queries > 16:
        tile = (64, 128, 64, 4)
    else:
        tile = (16, 64, 128, 4)
    BLOCK_Q, BLOCK_N = block_q or tile[0], block_n or tile[1]
    block_d, num_warps = block_d or tile[2], num_warps or tile[3]
    BLOCK_D = block_d if dim >= block_d else max(16, triton.next_power_of_2(dim))
    q_blocks = triton.cdiv(n_queries, BLOCK_Q)
    if rows_per_split is None:
        # ~528 programs measured as good as any count from 264 to 4224; fewer leave SMs idle.
        splits = max(1, min(triton.cdiv(n_rows, BLOCK_N), triton.cdiv(528, q_blocks)))
        rows_per_split = triton.cdiv(triton.cdiv(n_rows, splits), BLOCK_N) * BLOCK_N
    splits = max(1, triton.cdiv(n_rows, rows_per_split))
    if tma:
        _set_tma_allocator(device)
    counts = torch.zeros(1 if pairs else n_queries, dtype=torch.int32, device=device)
    shape = (capacity,) if pairs else (n_queries, capacity)
    out_s = torch.full(shape, float("-inf"), dtype=torch.float32, device=device)
    out_i = torch.full(shape, -1, dtype=torch.int32, device=device)
    out_q = torch.full(shape if pairs else (1,), -1, dtype=torch.int32, device=device)
    _threshold_scan_kernel[(q_blocks, splits)](
        queries, database, bar, counts, out_s, out_i, out_q,
        n_queries, n_rows, rows_per_split, capacity,
        queries.stride(0), database.stride(0),
        DIM=dim, BLOCK_Q=BLOCK_Q, BLOCK_N=BLOCK_N, BLOCK_D=BLOCK_D,
        PAIRS=pairs, TMA=tma,
        # fp32 data is multiplied in full fp32 ("ieee"), not TF32, so results match the reference
        PRECISION="ieee" if database.dtype == torch.float32 else "tf32",
        num_warps=num_warps, num_stages=num_stages,
    )  # fmt: skip
    return counts, out_s, out_i, out_q


def _tma_suits(queries: torch.Tensor, database: torch.Tensor) -> bool:
    """TMA needs a Hopper-class GPU and 16-byte aligned rows (fp16 d % 8 == 0)."""
    if database.device.type != "cuda" or torch.cuda.get_device_capability(database.device)[0] < 9:
        return False
    return all(
        t.data_ptr() % 16 == 0 and (t.stride(0) * t.element_size()) % 16 == 0 for t in (queries, database)
    )


def _set_tma_allocator(device: torch.device) -> None:
    """Tensor descriptors made inside a kernel need a little global scratch memory, on the
    data's own GPU. Triton keeps the allocator in a context variable, so it is set per call
    (each server thread has its own context)."""

    def alloc(size: int, alignment: int, stream: int | None) -> torch.Tensor:
        return torch.empty(size, dtype=torch.int8, device=device)

    triton.set_allocator(alloc)


def sample_stride(n_rows: int, k: int) -> int:
    """1 in r database rows sets the bar: about k x r candidates per query survive the scan.

    Measured on an H100 (Q=1024, N=1M, k=10): r = 8 costs 0.54 ms for the bar and leaves
    ~120 candidates (scan 2.05 ms); r = 32 costs 0.31 ms but leaves ~470 (scan 2.24 ms).
    Larger k takes a denser sample so the candidate lists stay short.
    """
    return max(1, min(8, 4096 // (k * 4), n_rows // (4 * k)))


def topk_bar(queries: torch.Tensor, database: torch.Tensor, k: int, stride: int) -> torch.Tensor:
    """Per query, a score that at least k database rows reach as the scan kernel computes them.

    From every stride-th row: the sample's scores are cut into groups, and the k-th best
    of the group maxima is the bar (k distinct rows reach it; a full top-k over the
    sample costs more than the scan saves). It is lowered by a bound on how far this
    product and the kernel's fp32 accumulation can disagree: rounding to the storage
    precision (cuBLAS may also reduce split-K partial sums in it) plus the fp32
    summation bound d x 2^-24 x |q| |x|, both for the sample's largest row, with room.
    """
    sample = database[::stride]
    scores = queries @ sample.T
    n_queries, n_sample = scores.shape
    groups = max(1, min(16, n_sample // (8 * k)))
    width = n_sample // groups
    # Groups of columns far apart (a strided max over whole rows): the fast reduction order.
    maxima = scores[:, : groups * width].view(n_queries, groups, width).amax(dim=1)
    values = torch.topk(maxima, k, dim=1, sorted=False).values.float()
    kth = values.min(dim=1).values
    storage_eps = torch.finfo(scores.dtype).eps
    row_norm = torch.linalg.vector_norm(sample, dim=1, dtype=torch.float32).max()
    scale = torch.linalg.vector_norm(queries, dim=1, dtype=torch.float32) * row_norm
    dim = queries.shape[1]
    margin = 4 * storage_eps * (values.abs().max(dim=1).values + scale) + 2 * dim * 2.0**-24 * scale
    bar: torch.Tensor = kth - margin
    return bar


def threshold_topk(
    queries: torch.Tensor, database: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact inner-product top k: (scores [Q, k], rows [Q, k] int64, complete [Q]).

    A query is complete when its candidate list held at least k entries, nothing was
    dropped, and no tie straddles the k-th place (ties keep the lower row, which a plain
    float top-k does not promise); the caller answers the others another way. Within
    the k, order is the caller's to fix (scores may tie).
    """
    stride = sample_stride(database.shape[0], k)
    bar = topk_bar(queries, database, k, stride)
    capacity = triton.next_power_of_2(max(512, 4 * k * stride))
    counts, scores, rows, _ = scan_candidates(queries, database, bar, capacity)
    # A float top-k over the short lists (a 64-bit key sort over them costs 0.4 ms at Q=1024).
    take = min(k + 1, capacity)
    values, positions = torch.topk(scores, take, dim=1)
    complete = (counts >= k) & (counts <= capacity) & torch.isfinite(bar)
    if take > k:
        complete &= values[:, k] != values[:, k - 1]
    return values[:, :k], rows.gather(1, positions[:, :k]).long(), complete


def threshold_pairs(
    unit: torch.Tensor, threshold: float, *, capacity: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(i, j, score) for every i < j with unit_i . unit_j >= threshold, in no particular order."""
    n = unit.shape[0]
    bar = torch.full((n,), float(threshold), dtype=torch.float32, device=unit.device)
    capacity = capacity or max(4 * n, 2**16)
    while True:
        # (128, 128, 64), 8 warps, 8192 rows per split: measured best on an H100 (100k x 384)
        counts, scores, rows, owners = scan_candidates(
            unit,
            unit,
            bar,
            capacity,
            pairs=True,
            block_q=128,
            block_n=128,
            block_d=64,
            num_warps=8,
            rows_per_split=8192,
        )
        found = int(counts[0])
        if found <= capacity:
            break
        capacity = found  # the list overflowed: one more scan with room for everything
    return owners[:found].long(), rows[:found].long(), scores[:found]
