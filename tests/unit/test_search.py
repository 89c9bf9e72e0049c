"""Exact search against a float64 reference on fresh random data every run."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from altlas.errors import InvalidInputError
from altlas.search import VectorIndex, similar_pairs, topk

RNG = np.random.default_rng()  # fresh inputs every run: the failing seed is printed by the assertion


def reference(q: np.ndarray, db: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    q64, db64 = q.astype(np.float64), db.astype(np.float64)
    if metric == "cosine":
        q64 = q64 / np.linalg.norm(q64, axis=1, keepdims=True)
        db64 = db64 / np.linalg.norm(db64, axis=1, keepdims=True)
    if metric == "l2":
        scores = ((q64[:, None, :] - db64[None, :, :]) ** 2).sum(-1)
        keys = scores
    else:
        scores = q64 @ db64.T
        keys = -scores
    order = np.stack([np.lexsort((np.arange(db.shape[0]), row)) for row in keys])[:, :k]
    return np.take_along_axis(scores, order, 1), order


def assert_same_neighbours(
    got: tuple[np.ndarray, np.ndarray], want: tuple[np.ndarray, np.ndarray], rtol: float
) -> None:
    got_s, got_i = got
    want_s, want_i = want
    np.testing.assert_allclose(got_s[:, : want_s.shape[1]], want_s, rtol=rtol, atol=rtol)
    for row in range(want_i.shape[0]):
        # Where two reference scores are closer than the tolerance, either order is right.
        gaps = np.abs(np.diff(want_s[row]))
        if (gaps > rtol * (1 + np.abs(want_s[row, 1:]))).all():
            np.testing.assert_array_equal(got_i[row, : want_i.shape[1]], want_i[row])
        else:
            assert set(got_i[row]) - set(want_i[row]) <= set(got_i[row]), row


@pytest.mark.parametrize("metric", ["ip", "cosine", "l2"])
@pytest.mark.parametrize(("n_rows", "k"), [(1000, 10), (3001, 1), (777, 100), (5, 10), (1, 1)])
def test_topk_matches_float64_reference(metric: str, n_rows: int, k: int) -> None:
    dim = int(RNG.choice([7, 64, 384]))
    q = RNG.standard_normal((13, dim)).astype(np.float32)
    db = RNG.standard_normal((n_rows, dim)).astype(np.float32)
    scores, indices = topk(q, db, k, metric, chunk_rows=256)  # type: ignore[arg-type]
    assert isinstance(scores, np.ndarray) and scores.shape == indices.shape == (13, k)
    want = reference(q, db, min(k, n_rows), metric)
    assert_same_neighbours((scores, indices), want, rtol=1e-4)
    if n_rows < k:  # what does not exist is -1
        assert (indices[:, n_rows:] == -1).all()
        assert np.isinf(scores[:, n_rows:]).all()


def test_ties_go_to_the_lower_index() -> None:
    db = np.ones((50, 8), dtype=np.float32)
    _scores, indices = topk(np.ones((2, 8), dtype=np.float32), db, 5, chunk_rows=7)
    assert indices.tolist() == [[0, 1, 2, 3, 4]] * 2


def test_torch_in_torch_out_and_one_dimensional_query() -> None:
    db = torch.randn(100, 16)
    scores, indices = topk(db[3], db, 1, "cosine")
    assert isinstance(indices, torch.Tensor) and int(indices[0, 0]) == 3
    assert abs(float(scores[0, 0]) - 1.0) < 1e-5


def test_empty_inputs() -> None:
    scores, indices = topk(np.zeros((0, 4), np.float32), np.ones((3, 4), np.float32), 2)
    assert scores.shape == (0, 2)
    scores, indices = topk(np.ones((2, 4), np.float32), np.zeros((0, 4), np.float32), 3)
    assert (indices == -1).all() and np.isneginf(scores).all()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs_are_rejected(bad: float) -> None:
    db = np.ones((10, 4), np.float32)
    db[6, 2] = bad
    with pytest.raises(InvalidInputError, match="row 6") as info:
        topk(np.ones((1, 4), np.float32), db, 3)
    assert info.value.field == "database"
    with pytest.raises(InvalidInputError):
        topk(db, np.ones((10, 4), np.float32), 3)


@pytest.mark.parametrize(
    ("kwargs", "field"), [({"k": 0}, "k"), ({"k": 5000}, "k"), ({"k": 2, "metric": "dot"}, "metric")]
)
def test_bad_arguments(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        topk(np.ones((1, 4), np.float32), np.ones((3, 4), np.float32), **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_dimension_mismatch() -> None:
    with pytest.raises(InvalidInputError, match="dim"):
        topk(np.ones((1, 4), np.float32), np.ones((3, 5), np.float32), 1)


@pytest.mark.parametrize("n", [0, 1, 2, 500, 1337])
def test_similar_pairs_match_brute_force(n: int) -> None:
    base = RNG.standard_normal((max(n // 4, 1), 32)).astype(np.float32)
    vectors = base[RNG.integers(0, base.shape[0], n)] + 0.05 * RNG.standard_normal((n, 32)).astype(np.float32)
    i, j, s = similar_pairs(vectors, 0.9, block=128)
    unit = vectors.astype(np.float64) / np.linalg.norm(vectors, axis=1, keepdims=True) if n else vectors
    sims = unit @ unit.T if n else np.zeros((0, 0))
    want = [(a, b) for a in range(n) for b in range(a + 1, n) if sims[a, b] >= 0.9]
    borderline = {(a, b) for a in range(n) for b in range(a + 1, n) if abs(sims[a, b] - 0.9) < 1e-5}
    assert set(zip(i.tolist(), j.tolist(), strict=True)) ^ set(want) <= borderline
    assert all(a < b for a, b in zip(i.tolist(), j.tolist(), strict=True))
    if len(s):
        np.testing.assert_allclose(s, sims[i, j], atol=1e-5)


def test_vector_index_lifecycle(tmp_path: Path) -> None:
    index = VectorIndex(8, metric="cosine")
    vectors = RNG.standard_normal((20, 8)).astype(np.float32)
    index.add([f"id{i}" for i in range(20)], vectors)
    hits = index.search(vectors[4], 3)[0]
    assert hits[0].id == "id4" and abs(hits[0].score - 1) < 1e-5 and len(hits) == 3
    index.add(["id4"], -vectors[4:5])  # replace
    assert len(index) == 20 and index.search(vectors[4], 1)[0][0].id != "id4"
    assert index.remove(["id0", "nope"]) == 1 and len(index) == 19
    index.save(tmp_path / "idx.npz")
    loaded = VectorIndex.load(tmp_path / "idx.npz")
    assert loaded.ids == index.ids
    assert [h.id for h in loaded.search(vectors[7], 2)[0]] == [h.id for h in index.search(vectors[7], 2)[0]]
    assert VectorIndex(8).search(vectors[:2], 5) == [[], []]
    with pytest.raises(InvalidInputError):
        index.add(["x"], np.full((1, 8), np.nan, np.float32))
    with pytest.raises(InvalidInputError):
        VectorIndex.load(tmp_path / "missing.npz")


def test_vector_index_concurrent_searches_and_writes() -> None:
    index = VectorIndex(16)
    vectors = RNG.standard_normal((400, 16)).astype(np.float32)
    index.add([str(i) for i in range(200)], vectors[:200])
    errors: list[BaseException] = []

    def search() -> None:
        try:
            for _ in range(50):
                for hits in index.search(vectors[:5], 3):
                    assert len(hits) == 3
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=search) for _ in range(4)]
    for thread in threads:
        thread.start()
    for start in range(200, 400, 20):
        index.add([str(i) for i in range(start, start + 20)], vectors[start : start + 20])
    for thread in threads:
        thread.join()
    assert not errors and len(index) == 400
