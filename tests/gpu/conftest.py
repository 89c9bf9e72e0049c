"""GPU tests share one process: a memory cap one of them sets must not shrink the next."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def whole_card_after_each_test() -> Iterator[None]:
    """Undo any per-process memory fraction (an Embedder with gpu_memory_gb sets one, process-wide)."""
    yield
    if torch.cuda.is_available():
        for device in range(torch.cuda.device_count()):
            torch.cuda.set_per_process_memory_fraction(1.0, device)
