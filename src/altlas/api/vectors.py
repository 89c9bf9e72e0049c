"""Vectors on the wire: how many texts one embedding request may carry, and base64 vectors."""

from __future__ import annotations

import base64

import numpy as np

__all__ = ["MAX_TEXTS_PER_REQUEST", "encode_base64"]

MAX_TEXTS_PER_REQUEST = 4096  # /v1/embed and /v1/embeddings


def encode_base64(vector: np.ndarray) -> str:
    """A vector as base64 of little-endian float32 (what OpenAI's encoding_format=base64 sends)."""
    return base64.b64encode(np.ascontiguousarray(vector, dtype="<f4").tobytes()).decode("ascii")
