"""Text embeddings: a fast engine for sentence-transformers models, on CUDA or CPU.

Names are imported on first use, so that tokenizer worker processes, which import
`altlas.embeddings.batching`, do not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from altlas.embeddings.engine import Embedder, EncodeStats
    from altlas.embeddings.model_files import (
        DEFAULT_MODEL,
        EncoderSpec,
        default_model_path,
        read_model_folder,
    )

__all__ = [
    "DEFAULT_MODEL",
    "Embedder",
    "EncodeStats",
    "EncoderSpec",
    "default_model_path",
    "read_model_folder",
]

_HOME = {
    "Embedder": "engine",
    "EncodeStats": "engine",
    "DEFAULT_MODEL": "model_files",
    "EncoderSpec": "model_files",
    "default_model_path": "model_files",
    "read_model_folder": "model_files",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"altlas.embeddings.{_HOME[name]}"), name)
    raise AttributeError(f"module 'altlas.embeddings' has no attribute {name!r}")
