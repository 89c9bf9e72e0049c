"""The fused top-k kernel against the float64 reference (Triton interpreter on CPU, CUDA on a GPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from altlas.search import topk
from altlas.search.fused_topk import fused_available, fused_topk

from .test_search import RNG, assert_same_neighbours, reference

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
pytestmark = pytest.mark.skipif(not fused_available(DEVICE), reason="needs triton (interpreter or CUDA)")


@pytest.mark.parametrize(
    ("n_queries", "n_rows", "dim", "k"),
    [(3, 200, 64, 5), (20, 130, 40, 10), (1, 70, 128, 1), (17, 9, 16, 10)],
)
def test_fused_candidates_give_the_reference_top_k(n_queries: int, n_rows: int, dim: int, k: int) -> None:
    q = RNG.standard_normal((n_queries, dim)).astype(np.float32)
    db = RNG.standard_normal((n_rows, dim)).astype(np.float32)
    scores, indices = topk(
        torch.from_numpy(q).to(DEVICE), torch.from_numpy(db).to(DEVICE), k, "ip", backend="fused"
    )
    want = reference(q, db, min(k, n_rows), "ip")
    assert_same_neighbours((scores.cpu().numpy(), indices.cpu().numpy()), want, rtol=1e-4)
    if n_rows < k:
        assert (indices[:, n_rows:] == -1).all()


def test_fused_output_is_fully_written() -> None:
    q = torch.from_numpy(RNG.standard_normal((5, 32)).astype(np.float32)).to(DEVICE)
    db = torch.from_numpy(RNG.standard_normal((150, 32)).astype(np.float32)).to(DEVICE)
    scores, indices = fused_topk(q, db, 4, splits=3, block_n=32)
    assert scores.shape == (5, 3, 16)
    assert bool(torch.isfinite(scores).all()) and bool((indices >= 0).all())  # 50 rows per split >= K=16


def test_fused_ties_keep_the_lower_index() -> None:
    db = torch.ones((40, 16), device=DEVICE)
    _, indices = topk(torch.ones((2, 16), device=DEVICE), db, 3, "ip", backend="fused")
    assert indices.tolist() == [[0, 1, 2]] * 2
