"""Process-wide switches, set once in start-up code from the one Settings object.

Nothing else in altlas changes interpreter or library state for the whole process: not a
constructor, not an import. Whoever starts a process that serves or runs models (the CLI's
serve, embed and profile commands; a benchmark) calls `configure_process(settings)` first.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from altlas.settings import Settings

__all__ = ["StopFlag", "configure_process", "configure_tokenizer_worker", "die_with_parent"]


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


_PR_SET_PDEATHSIG = 1  # prctl(2)


def die_with_parent(parent: int) -> None:
    """In a child process (an engine) started by process `parent`: be sent SIGTERM when the
    parent dies, even by SIGKILL, so that no engine outlives the server that started it and
    burns the machine's cores (Linux: prctl's parent-death signal; elsewhere nothing). A parent
    already gone (this process re-parented before the signal was asked for): SIGTERM now."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)


class StopFlag:
    """A request to stop that a signal handler may make: `set()` takes no lock. Python runs a
    handler in the main thread between two bytecodes, possibly inside threading.Event.set; a
    second signal there (the parent's death signal, then a SIGTERM) took the Event's lock again
    and hung the process forever. Readers poll `is_set()`."""

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set
