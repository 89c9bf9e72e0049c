"""What API processes and engines say to each other: msgspec structs sent as MessagePack.

Each message is one frame, tagged with its type (a union decodes to the right struct) and laid
out as an array (no field names on the wire). Vectors travel beside their header as a second
frame of raw float32 bytes: never through MessagePack's per-number encoding. Every request
carries an `id` the client chose (unique per client), which its replies and a Cancel name.
"""

from __future__ import annotations

import msgspec

__all__ = ["REPLIES", "REQUESTS", "Cancel", "Embed", "Failed", "Reply", "Request", "Vectors", "encode"]


class Embed(msgspec.Struct, tag=True, array_like=True, frozen=True):
    """Embed `texts` with the embedding model `model` (loaded for it if it is not)."""

    id: int
    request_id: str  # the HTTP request's, for the engine's log lines
    model: str
    texts: list[str]
    normalize: bool = True  # unit vectors (False: as the model's pooling gives them)


class Cancel(msgspec.Struct, tag=True, array_like=True, frozen=True):
    """The client left or its time limit passed: work not yet gathered into a batch never runs."""

    id: int


class Vectors(msgspec.Struct, tag=True, array_like=True, frozen=True):
    """An Embed's answer: `rows` x `dim` float32 values in the next frame, what the texts cost,
    and the model's lease facts (for the answer's X-Altlas-* headers and cost object)."""

    id: int
    rows: int
    dim: int
    tokens: int
    run_ms: float
    queue_ms: float
    batch_size: int
    batch_requests: int
    device: str  # where the batch ran
    model_device: str  # the lease's: where the model lives
    gpu_bytes: int


class Failed(msgspec.Struct, tag=True, array_like=True, frozen=True):
    """A request's error: altlas.errors.error_kind's name, built again on the other side."""

    id: int
    kind: str
    message: str
    field: str | None = None
    retry_after_s: float | None = None


Request = Embed | Cancel
Reply = Vectors | Failed
REQUESTS = msgspec.msgpack.Decoder(Request)
REPLIES = msgspec.msgpack.Decoder(Reply)
encode = msgspec.msgpack.Encoder().encode
