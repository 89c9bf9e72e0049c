"""A batched request's model-side work, wherever it runs (an engine process, or the API's own
process): submitted to its model's batcher, its answer built from the batch's result.

`submit` runs the checks the HTTP routes always ran (an upload's header, an image decoded as far
as the model needs, top_k), so the errors are the same on either side; `Submitted.answer` builds
the reply (and for vectors the array that travels beside it) from the batcher's result and the
lease's facts.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np

from altlas.engine import messages as wire
from altlas.errors import InvalidInputError
from altlas.orchestrator.serving import Lease

__all__ = ["TASKS", "Batched", "Submitted", "submit"]

Batched = wire.Batched
TASKS = {wire.Embed: "embedding", wire.DetectSpeech: "audio-vad", wire.Classify: "image-classification"}
_Build = Callable[[int, Any, wire.Served], tuple[wire.Reply, np.ndarray | None]]


@dataclass(frozen=True)
class Submitted:
    """A request in its model's queue: the batcher's future and how its result is answered."""

    future: Future[Any]
    lease: Lease
    build: _Build

    def answer(self, ident: int, result: Any) -> tuple[wire.Reply, np.ndarray | None]:
        """(the reply, the vectors beside it or None) from the batcher's result (its Served)."""
        served = wire.Served(
            result.run_ms, result.queue_ms, result.batch_size, result.batch_requests, result.device,
            self.lease.device, self.lease.gpu_bytes,
        )  # fmt: skip
        return self.build(ident, result.value, served)


def submit(message: Batched, data: bytes, lease: Lease) -> Submitted:
    """`message` (its upload `data`) submitted to the leased model (the lease checked its task)."""
    backend: Any = lease.backend
    if isinstance(message, wire.Embed):  # the hot path: nothing imported or decoded here
        if message.dimensions is not None and message.dimensions != (dimension := backend.embedder.dimension):
            raise InvalidInputError(f"this model gives {dimension} dimensions only", field="dimensions")
        future, request = backend.submit(message.texts, message.field, normalize=message.normalize)

        def vectors(ident: int, value: Any, served: wire.Served) -> tuple[wire.Reply, np.ndarray | None]:
            rows = np.ascontiguousarray(value, dtype=np.float32)
            return wire.Vectors(ident, int(rows.shape[0]), int(rows.shape[1]), request.tokens, served), rows

        return Submitted(future, lease, vectors)
    if isinstance(message, wire.DetectSpeech):
        from altlas.audio.decode import open_audio
        from altlas.orchestrator.backends import VadRequest

        audio = open_audio(data, message.field)  # the header checked; decoded as the detector reads it
        settings = (message.threshold, message.min_speech_ms, message.min_silence_ms, message.pad_ms)

        def speech(ident: int, value: Any, served: wire.Served) -> tuple[wire.Reply, np.ndarray | None]:
            segments, duration = value
            found = [(s.start, s.end, s.probability) for s in segments]
            return wire.Speech(ident, audio.rate, duration, found, served), None

        return Submitted(backend.batcher.submit(VadRequest(audio, *settings)), lease, speech)
    backend.classifier.check_top_k(message.top_k)
    image = backend.classifier.decode(data, message.field)  # only as far as the model needs

    def labels(ident: int, value: Any, served: wire.Served) -> tuple[wire.Reply, np.ndarray | None]:
        predictions = [(p.label, p.index, p.score) for p in value]
        return wire.Labels(ident, image.width, image.height, predictions, served), None

    return Submitted(backend.batcher.submit((image.pixels, message.top_k)), lease, labels)
