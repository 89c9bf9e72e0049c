"""What a request cost, told without breaking OpenAI clients: X-Altlas-* headers, an `altlas` object."""

from __future__ import annotations

from typing import Any

from altlas.engine.messages import Served
from altlas.orchestrator.serving import Lease

__all__ = ["request_cost", "served_cost"]


def served_cost(served: Served, **extra: Any) -> tuple[dict[str, str], dict[str, Any]]:
    """request_cost of a batched request as its model's service told it (altlas.engine.messages.Served)."""
    batch = (served.batch_size, served.batch_requests)
    return _cost(served.device, served.gpu_bytes, served.run_ms, served.queue_ms, *batch, **extra)


def request_cost(
    lease: Lease,
    processing_ms: float,
    queue_ms: float = 0.0,
    batch_size: int = 1,
    batch_requests: int = 1,
    served_on: str = "",
    **extra: Any,
) -> tuple[dict[str, str], dict[str, Any]]:
    """(headers, the body's `altlas` object) for a request served under `lease`.

    processing_ms: the work that served this request (for a batched request, its batch's run);
    queue_ms: arrival at the model's queue to the start of that work; batch_size: texts (images,
    files) that ran together; batch_requests: the requests they came from; served_on: the
    device that ran it (`Served.device`) when that may differ from the lease's (a model's CPU
    replica serves its GPU's overflow)."""
    return _cost(
        served_on or lease.device,
        lease.gpu_bytes,
        processing_ms,
        queue_ms,
        batch_size,
        batch_requests,
        **extra,
    )


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
