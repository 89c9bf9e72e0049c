"""The threshold-scan kernel (top-k for many queries, near-duplicate pairs) against float64 references.

Runs in the Triton interpreter on CPU (CI) and on CUDA; fresh random data every run.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from altlas.search import similar_pairs, topk
from altlas.search.fused_topk import fused_available
from altlas.search.threshold_scan import (
    sample_stride,
    scan_candidates,
    threshold_pairs,
    topk_bar,
    topk_keys,
)

from .test_search import RNG, assert_same_neighbours, reference

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
pytestmark = pytest.mark.skipif(not fused_available(DEVICE), reason="needs triton (interpreter or CUDA)")


def tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array).to(DEVICE)


@pytest.mark.parametrize(("n_queries", "n_rows", "dim", "k"), [(130, 3001, 40, 5), (3, 4000, 24, 100)])
def test_scan_top_k_matches_float64(n_queries: int, n_rows: int, dim: int, k: int) -> None:
    q = RNG.standard_normal((n_queries, dim)).astype(np.float32)
    db = RNG.standard_normal((n_rows, dim)).astype(np.float32)
    assert sample_stride(n_rows, k) >= 4  # these shapes take the scan, not the selection kernel
    scores, indices = topk(tensor(q), tensor(db), k, "ip", backend="fused")
    want = reference(q, db, k, "ip")
    assert_same_neighbours((scores.cpu().numpy(), indices.cpu().numpy()), want, rtol=1e-4)


def test_the_bar_is_reached_by_at_least_k_rows() -> None:
    q = tensor(RNG.standard_normal((7, 32)).astype(np.float32) * 10)
    db = tensor(RNG.standard_normal((5000, 32)).astype(np.float32))
    bar = topk_bar(q, db, 10, 16)
    reached = ((q.double() @ db.double().T) >= bar.double()[:, None]).sum(dim=1)
    assert bool((reached >= 10).all()) and bool((reached < 5000).all())


def test_overflowing_lists_are_redone_exactly() -> None:
    """All scores equal: every list overflows and the library path keeps the lowest indices."""
    db = torch.ones((3000, 16), device=DEVICE)
    scores, indices = topk(torch.ones((130, 16), device=DEVICE), db, 4, backend="fused")
    assert indices.tolist() == [[0, 1, 2, 3]] * 130 and bool((scores == 16).all())


def test_scan_counts_beyond_capacity() -> None:
    q = tensor(RNG.standard_normal((2, 16)).astype(np.float32))
    counts, keys = scan_candidates(q, tensor(np.ones((100, 16), np.float32)), q.sum(1) - 1, 8)
    assert counts.tolist() == [100, 100]
    _scores, rows = topk_keys(keys)
    assert bool((rows < 100).all()) and len(set(rows[0].tolist())) == 8  # the list is full, no repeats


def test_sort_keys_order_by_score_then_lower_row() -> None:
    values = np.array([1.5, -2.0, 0.0, -0.0, 1.5, -np.inf, 3e38, -1e-30, 0.0], np.float32)
    rows = np.array([7, 3, 9, 2, 4, 1, 8, 6, 5])
    bits = values.view(np.int32).astype(np.int64)
    bits[values == 0] = 0
    ordered = np.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    keys = torch.from_numpy((ordered << 32) | (0xFFFFFFFF - rows))
    scores, got_rows = topk_keys(torch.sort(keys, descending=True).values)
    want = sorted(zip(values.tolist(), rows.tolist(), strict=True), key=lambda vr: (-vr[0], vr[1]))
    assert list(zip(scores.tolist(), got_rows.tolist(), strict=True)) == want


def test_fused_pairs_match_brute_force_and_survive_overflow() -> None:
    n, dim = 700, 24
    base = RNG.standard_normal((n // 2, dim)).astype(np.float32)
    vectors = np.concatenate(
        [base, base[: n // 2] + 0.1 * RNG.standard_normal((n // 2, dim)).astype(np.float32)]
    )
    unit64 = vectors.astype(np.float64) / np.linalg.norm(vectors, axis=1, keepdims=True)
    sims = unit64 @ unit64.T
    want = {(a, b) for a, b in zip(*np.nonzero(np.triu(sims >= 0.9, 1)), strict=True)}
    borderline = {(a, b) for a, b in zip(*np.nonzero(np.triu(np.abs(sims - 0.9) < 1e-5, 1)), strict=True)}
    i, j, s = (t.cpu().numpy() for t in similar_pairs(tensor(vectors), 0.9, backend="fused"))
    assert set(zip(i.tolist(), j.tolist(), strict=True)) ^ want <= borderline  # type: ignore[union-attr]
    np.testing.assert_allclose(s, sims[i, j], atol=1e-5)
    unit = torch.nn.functional.normalize(tensor(vectors), dim=1)
    ti, tj, _ = threshold_pairs(unit, 0.9, capacity=4)  # the first list overflows: a second scan
    assert set(zip(ti.tolist(), tj.tolist(), strict=True)) == set(zip(i.tolist(), j.tolist(), strict=True))


def test_fused_pairs_edge_cases() -> None:
    assert similar_pairs(tensor(np.zeros((0, 8), np.float32)), 0.5, backend="fused")[0].shape == (0,)
    assert similar_pairs(tensor(np.ones((1, 8), np.float32)), 0.5, backend="fused")[0].shape == (0,)
    i, j, _s = similar_pairs(tensor(np.ones((3, 8), np.float32)), 0.999, backend="fused")
    assert list(zip(i.tolist(), j.tolist(), strict=True)) == [(0, 1), (0, 2), (1, 2)]
