"""Fixtures unit tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from altlas.orchestrator.backends import EmbeddingBackend

from ..engine_threads import minilm_on_cpu


@pytest.fixture(scope="module")
def minilm_backend() -> Iterator[EmbeddingBackend]:
    """The real all-MiniLM-L6-v2 on the CPU as a loaded model's backend, one per test module."""
    with minilm_on_cpu() as served:
        yield served
