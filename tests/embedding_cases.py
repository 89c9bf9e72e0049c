"""Shared inputs and the reference for embedding accuracy tests (CPU and GPU)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np

EDGE_TEXTS = [
    "",
    "   ",
    "\t\n",
    "Open Firefox",
    "Firefox'u aç ve İzmir'de ucuz otelleri ara",
    "🙂🙂🙂 🚀",
    "ÇĞİÖŞÜ çğıöşü",
    "word " * 600,  # far past max_seq_length: truncated like the reference
    "Şu dosyayı sil. " * 100,
    "a",
]


def model_path() -> Path | None:
    """ALTLAS_TEST_MODEL (e.g. an fp16 copy carried to a GPU machine), else the shipped model."""
    value = os.environ.get("ALTLAS_TEST_MODEL")
    return Path(value) if value else None


def mixed_texts(count: int, seed: int) -> list[str]:
    """Fresh random commands of mixed length, both languages, plus the edge cases."""
    rng = random.Random(seed)
    words_en = "open search the report for cheap hotels and send it to Ali then summarize results".split()
    words_tr = "aç ara raporu ucuz otelleri ve Ali'ye gönder sonra sonuçları özetle dosyayı sil".split()
    texts = list(EDGE_TEXTS)
    for i in range(count):
        words = words_en if i % 2 else words_tr
        texts.append(" ".join(rng.choice(words) for _ in range(rng.randint(1, 60))))
    rng.shuffle(texts)
    return texts


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return (a64 * b64).sum(1) / np.linalg.norm(a64, axis=1) / np.linalg.norm(b64, axis=1)
