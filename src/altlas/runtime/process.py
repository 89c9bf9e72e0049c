"""Process-wide switches, set once in start-up code from the one Settings object.

Nothing else in altlas changes interpreter or library state for the whole process: not a
constructor, not an import. Whoever starts a process that serves or runs models (the CLI's
serve, embed and profile commands; a benchmark) calls `configure_process(settings)` first.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from altlas.settings import Settings

__all__ = ["configure_process", "configure_tokenizer_worker"]


def configure_process(settings: Settings) -> None:
    """The GIL switch interval and torch's attention backends, as the settings say."""
    import torch

    sys.setswitchinterval(settings.gil_switch_interval_ms / 1e3)
    # A flag, not a CUDA call: it needs no GPU and only changes which kernel CUDA attention picks.
    torch.backends.cuda.enable_cudnn_sdp(settings.cudnn_sdpa)


def configure_tokenizer_worker() -> None:
    """In a tokenizer worker process: one thread, since the pool of workers is the parallelism.

    Only the workers: the serving process keeps the Rust tokenizer's own threads for batches.
    """
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
