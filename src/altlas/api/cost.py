"""What a request cost, told without breaking OpenAI clients: X-Altlas-* headers, an `altlas` object."""

from __future__ import annotations

from typing import Any

from altlas.orchestrator.manager import Lease

__all__ = ["request_cost"]


def request_cost(lease: Lease, processing_ms: float, **extra: Any) -> tuple[dict[str, str], dict[str, Any]]:
    """(headers, the body's `altlas` object) for a request served under `lease`."""
    headers = {
        "X-Altlas-Processing-Ms": f"{processing_ms:.3f}",
        "X-Altlas-Queue-Ms": f"{lease.queue_ms:.3f}",
        "X-Altlas-Device": lease.device,
    }
    body = {
        "processing_ms": round(processing_ms, 3),
        "queue_ms": round(lease.queue_ms, 3),
        "device": lease.device,
        "batch_size": 1,
        "model_gpu_bytes": lease.gpu_bytes,
        **extra,
    }
    return headers, body
