"""What a request cost, told without breaking OpenAI clients: X-Altlas-* headers, an `altlas` object."""

from __future__ import annotations

from typing import Any

from altlas.engine.messages import Begun, Served

__all__ = ["generation_cost", "served_cost"]


def served_cost(served: Served, **extra: Any) -> tuple[dict[str, str], dict[str, Any]]:
    """(headers, the body's `altlas` object) of a batched request as its model's service told it
    (altlas.engine.messages.Served: the batch that ran it; device: where it ran, which for a
    model's CPU replica serving its GPU's overflow is not where the model lives)."""
    batch = (served.batch_size, served.batch_requests)
    return _cost(served.device, served.gpu_bytes, served.run_ms, served.queue_ms, *batch, **extra)


def generation_cost(
    begun: Begun, processing_ms: float, **extra: Any
) -> tuple[dict[str, str], dict[str, Any]]:
    """(headers, the body's `altlas` object) of a generation (altlas.engine.messages.Begun: the
    wait for the model, where the model lives); processing_ms: its work, the wait left out."""
    return _cost(begun.model_device, begun.gpu_bytes, processing_ms, begun.queue_ms, 1, 1, **extra)


def _cost(
    device: str, gpu_bytes: int, processing_ms: float, queue_ms: float, batch_size: int, batch_requests: int,
    **extra: Any,
) -> tuple[dict[str, str], dict[str, Any]]:  # fmt: skip
    headers = {
        "X-Altlas-Processing-Ms": f"{processing_ms:.3f}",
        "X-Altlas-Queue-Ms": f"{queue_ms:.3f}",
        "X-Altlas-Device": device,
    }
    body = {
        "processing_ms": round(processing_ms, 3),
        "queue_ms": round(queue_ms, 3),
        "device": device,
        "batch_size": batch_size,
        "batch_requests": batch_requests,
        "model_gpu_bytes": gpu_bytes,
        **extra,
    }
    return headers, body
