"""Search kernels on CUDA against a float64 CPU reference, on fresh random data every run.

The reference takes the vectors as they are stored (fp16/bf16 values widened to float64),
so the tolerance measures the kernels' accumulation, not the storage rounding.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from altlas.search import similar_pairs, topk

from ..unit.test_search import assert_same_neighbours

pytestmark = pytest.mark.gpu

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
RTOL = {"fp16": 1e-3, "bf16": 1e-3, "fp32": 1e-5}


def random_rows(n: int, dim: int, dtype: torch.dtype, generator: torch.Generator) -> torch.Tensor:
    """Rows of norm about 1 (the shape of embeddings), made on the GPU in chunks."""
    out = torch.empty((n, dim), dtype=dtype, device="cuda")
    for start in range(0, n, 1 << 20):
        rows = min(1 << 20, n - start)
        chunk = torch.randn((rows, dim), device="cuda", generator=generator) / dim**0.5
        out[start : start + rows] = chunk.to(dtype)
    return out


def reference_topk(q: torch.Tensor, db: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top k in float64 on the CPU, the database read in chunks; ties to the lower index."""
    q64 = q.double().cpu()
    best_s = torch.full((q.shape[0], 0), float("-inf"), dtype=torch.float64)
    best_i = torch.zeros((q.shape[0], 0), dtype=torch.int64)
    for start in range(0, db.shape[0], 1 << 20):
        chunk = db[start : start + (1 << 20)].cpu().double()
        scores = q64 @ chunk.T
        take = min(k, scores.shape[1])
        values, positions = torch.topk(scores, take, dim=1)
        best_s = torch.cat([best_s, values], dim=1)
        best_i = torch.cat([best_i, positions + start], dim=1)
        order = np.lexsort((best_i.numpy(), -best_s.numpy()))[:, :k]
        best_s = torch.from_numpy(np.take_along_axis(best_s.numpy(), order, 1))
        best_i = torch.from_numpy(np.take_along_axis(best_i.numpy(), order, 1))
    return best_s.numpy(), best_i.numpy()


@pytest.fixture
def generator() -> torch.Generator:
    gen = torch.Generator(device="cuda")
    gen.seed()  # fresh data every run; the seed is in the failure message
    return gen


CASES = [  # (N, dim, Q, k, dtype): odd N, the dims of the issue, both kernels (scan and selection)
    (200_003, 64, 33, 10, "fp16"),
    (200_003, 128, 33, 10, "fp16"),
    (200_003, 384, 33, 10, "fp16"),
    (200_003, 768, 33, 10, "fp16"),
    (100_001, 1000, 33, 10, "fp16"),
    (300_007, 384, 1, 1, "fp16"),
    (300_007, 384, 1024, 10, "fp16"),
    (300_007, 384, 7, 100, "fp16"),
    (300_007, 384, 5, 256, "fp16"),
    (200_003, 384, 64, 10, "bf16"),
    (200_003, 384, 64, 10, "fp32"),
    (2_001, 384, 17, 64, "fp16"),  # too few rows for a sample: the selection kernel
    (77, 384, 5, 10, "fp16"),
]


@pytest.mark.parametrize(("n_rows", "dim", "n_queries", "k", "precision"), CASES)
def test_fused_topk_matches_float64(
    n_rows: int, dim: int, n_queries: int, k: int, precision: str, generator: torch.Generator
) -> None:
    dtype = DTYPES[precision]
    db = random_rows(n_rows, dim, dtype, generator)
    q = random_rows(n_queries, dim, dtype, generator)
    scores, indices = topk(q, db, k, backend="fused")
    assert scores.shape == indices.shape == (n_queries, k)
    want = reference_topk(q, db, k)
    assert_same_neighbours((scores.cpu().numpy(), indices.cpu().numpy()), want, rtol=RTOL[precision])


def test_ten_million_rows(generator: torch.Generator) -> None:
    db = random_rows(10_000_000, 384, torch.float16, generator)
    q = random_rows(8, 384, torch.float16, generator)
    for k in (1, 10):
        scores, indices = topk(q, db, k)  # auto: the fused path on CUDA at this size
        assert_same_neighbours(
            (scores.cpu().numpy(), indices.cpu().numpy()), reference_topk(q, db, k), rtol=1e-3
        )


def test_cosine_and_library_path_on_gpu(generator: torch.Generator) -> None:
    db = random_rows(150_001, 384, torch.float16, generator) * 3
    q = random_rows(9, 384, torch.float16, generator)
    unit_db = torch.nn.functional.normalize(db.float(), dim=1).half()
    unit_q = torch.nn.functional.normalize(q.float(), dim=1).half()
    want = reference_topk(unit_q, unit_db, 10)
    for backend in ("fused", "library"):
        scores, indices = topk(q, db, 10, "cosine", backend=backend)  # type: ignore[arg-type]
        assert_same_neighbours((scores.cpu().numpy(), indices.cpu().numpy()), want, rtol=1e-3)


def test_ties_overflow_the_candidate_lists_and_stay_exact() -> None:
    """Every score equal: each query's list overflows, and the redo keeps the lowest indices."""
    db = torch.ones((100_000, 64), dtype=torch.float16, device="cuda")
    scores, indices = topk(torch.ones((3, 64), dtype=torch.float16, device="cuda"), db, 10, backend="fused")
    assert indices.tolist() == [list(range(10))] * 3
    assert bool((scores == 64).all())


def test_outputs_are_written_over_poisoned_memory(generator: torch.Generator) -> None:
    """Memory the caching allocator hands out again is full of NaN first: none may leak out."""
    poison = torch.full((2**28,), float("nan"), dtype=torch.float32, device="cuda")
    del poison
    db = random_rows(250_000, 384, torch.float16, generator)
    q = random_rows(70, 384, torch.float16, generator)
    for k in (1, 10, 64):
        scores, indices = topk(q, db, k, backend="fused")
        assert bool(torch.isfinite(scores).all())
        assert bool(((indices >= 0) & (indices < db.shape[0])).all())
    i, j, s = similar_pairs(torch.cat([db[:5000], db[:5000]]), 0.99)
    assert bool(torch.isfinite(s).all()) and bool((i < j).all())


@pytest.mark.parametrize(
    ("n_queries", "k", "metric"), [(300, 10, "ip"), (40, 10, "ip"), (300, 100, "cosine")]
)
def test_repeated_searches_replay_from_graphs(
    n_queries: int, k: int, metric: str, generator: torch.Generator
) -> None:
    """Same database and shapes again: the graph replays over fresh queries, in-place changes
    to the database, and from several threads at once; a new database is not confused with it."""
    from concurrent.futures import ThreadPoolExecutor

    from altlas.search.topk import _GRAPHS as graphs

    def check(q: torch.Tensor, db: torch.Tensor) -> None:
        scores, indices = topk(q, db, k, metric, backend="fused")  # type: ignore[arg-type]
        if metric == "cosine":
            q, db = (torch.nn.functional.normalize(t.float(), dim=1).half() for t in (q, db))
        want = reference_topk(q, db, k)
        assert_same_neighbours((scores.cpu().numpy(), indices.cpu().numpy()), want, rtol=1e-3)

    db = random_rows(120_001, 384, torch.float16, generator)
    graphs_before = len(graphs)
    for _ in range(3):  # the second call captures, the third replays
        check(random_rows(n_queries, 384, torch.float16, generator), db)
    assert len(graphs) == graphs_before + 1
    db[:50_000] = random_rows(50_000, 384, torch.float16, generator)  # changed in place
    check(random_rows(n_queries, 384, torch.float16, generator), db)
    queries = [random_rows(n_queries, 384, torch.float16, generator) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda q, d=db: topk(q, d, k, metric, backend="fused"), queries))  # type: ignore[arg-type]
    for q, (_scores, indices) in zip(queries, results, strict=True):
        assert torch.equal(indices, topk(q, db, k, metric, backend="fused")[1])  # type: ignore[arg-type]
    shape = db.shape
    del db  # its memory goes back to the allocator: a new database of the same shape may land there
    check(
        random_rows(n_queries, 384, torch.float16, generator),
        random_rows(shape[0], shape[1], torch.float16, generator),
    )


def planted_duplicates(n: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    """Random rows where a tenth are noisy copies of others: cosine about 0.96 to 0.89."""
    rows = torch.randn((n, dim), device="cuda", generator=generator)
    copies = n // 10
    source = torch.randint(0, n - copies, (copies,), device="cuda", generator=generator)
    noise = torch.rand((copies, 1), device="cuda", generator=generator) * 0.3 + 0.25
    rows[n - copies :] = rows[source] + noise * torch.randn((copies, dim), device="cuda", generator=generator)
    return rows


@pytest.mark.parametrize(("n", "dim"), [(30_001, 384), (4_099, 64), (3_001, 1000)])
def test_similar_pairs_fused_matches_float64(n: int, dim: int, generator: torch.Generator) -> None:
    vectors = planted_duplicates(n, dim, generator).half()
    i, j, s = similar_pairs(vectors, 0.9, backend="fused")
    got = set(zip(i.tolist(), j.tolist(), strict=True))
    unit = torch.nn.functional.normalize(vectors.cpu().double(), dim=1)
    want: set[tuple[int, int]] = set()
    borderline: set[tuple[int, int]] = set()
    for start in range(0, n, 4096):
        sims = unit[start : start + 4096] @ unit.T
        rows, cols = torch.nonzero(sims >= 0.9 - 2e-3, as_tuple=True)
        for a, b, value in zip(
            (rows + start).tolist(), cols.tolist(), sims[rows, cols].tolist(), strict=True
        ):
            if a < b:
                (borderline if abs(value - 0.9) < 2e-3 else want).add((a, b))
    assert len(want) > n // 20  # the planted copies are there
    assert not (want - got), sorted(want - got)[:5]
    assert not (got - want - borderline), sorted(got - want - borderline)[:5]
    assert bool((i[1:] * n + j[1:] > i[:-1] * n + j[:-1]).all())  # sorted by (i, j)
    np.testing.assert_allclose(s.cpu().numpy(), (unit[i.cpu()] * unit[j.cpu()]).sum(dim=1).numpy(), atol=2e-3)
