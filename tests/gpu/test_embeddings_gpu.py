"""The embedding engine on CUDA: fp16/bf16 against sentence-transformers fp32 on the same GPU."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from altlas.embeddings import Embedder, default_model_path

from ..embedding_cases import EDGE_TEXTS, cosines, mixed_texts, model_path

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def reference():  # type: ignore[no-untyped-def]
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_path() or default_model_path()), device="cuda").float()


@pytest.mark.parametrize("precision", ["fp16", "bf16", "fp32"])
def test_gpu_matches_reference(precision: str, reference) -> None:  # type: ignore[no-untyped-def]
    embedder = Embedder(model_path(), device="cuda", precision=precision)
    texts = mixed_texts(3000, seed=np.random.SeedSequence().entropy % 2**32) + EDGE_TEXTS
    ours = embedder.encode(texts)
    theirs = reference.encode(texts, batch_size=256, convert_to_numpy=True, normalize_embeddings=True)
    worst = cosines(ours, theirs).min()
    floor = 0.99999 if precision == "fp32" else 0.999
    assert worst >= floor, (precision, worst)
    assert ours.dtype == np.float32 and np.isfinite(ours).all()


def test_gpu_and_cpu_agree() -> None:
    texts = mixed_texts(200, seed=11)
    gpu = Embedder(model_path(), device="cuda", precision="fp16").encode(texts)
    cpu = Embedder(model_path(), device="cpu").encode(texts)
    assert cosines(gpu, cpu).min() >= 0.999


def test_memory_budget_is_respected() -> None:
    import torch

    embedder = Embedder(model_path(), device="cuda", precision="fp16", gpu_memory_gb=2)
    texts = mixed_texts(20_000, seed=5)
    embedder.encode(texts)
    peak = embedder.last_stats.peak_gpu_bytes
    assert peak is not None and peak < 2e9, peak
    torch.cuda.set_per_process_memory_fraction(1.0)


def test_doctor_sees_the_gpu() -> None:
    from altlas.runtime import probe

    report = probe()
    assert report.cuda_available and report.gpus and report.kernel_check == "ok" and report.suitable
    assert report.driver_version
