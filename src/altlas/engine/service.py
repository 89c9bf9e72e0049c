"""What the HTTP routes ask of the models, wherever they run: `ModelService`.

Two implementations answer it the same way: `LocalModels` in the API's own process (the loaded
models, altlas.orchestrator.serving) and altlas.engine.client.EngineClient in engine processes.
Both run the same model-side work (altlas.engine.work) and return the same replies
(altlas.engine.messages), so a route neither knows nor cares where its model runs. `receive`
(the request's ASGI receive, its body read) tells of a client that leaves: its work is
cancelled (never run if its batch was not gathered yet) and ClientGone is raised.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from altlas.engine import messages as wire
from altlas.engine.client import Embedded
from altlas.engine.work import TASKS, Batched, Submitted, submit
from altlas.orchestrator.serving import LoadedModels
from altlas.scheduling.waiting import Receive, wait_for

__all__ = ["LocalModels", "ModelService"]


class ModelService(Protocol):
    """The models' requests, as routes make them (see the module's docs)."""

    async def embed(
        self, model: str, texts: list[str], timeout_s: float, request_id: str = "", *, normalize: bool = True,
        dimensions: int | None = None, receive: Receive | None = None,
    ) -> Embedded: ...  # fmt: skip

    async def detect_speech(
        self, model: str, audio: bytes, timeout_s: float, request_id: str = "", *,
        receive: Receive | None = None, **settings: float,
    ) -> wire.Speech: ...  # fmt: skip

    async def classify(
        self, model: str, image: bytes, top_k: int, timeout_s: float, request_id: str = "", *,
        receive: Receive | None = None,
    ) -> wire.Labels: ...  # fmt: skip


class LocalModels:
    """ModelService over the models loaded in this process. Texts for a loaded model are
    submitted on the event loop (a lease is a dict read, a submit a queue put); a model to load,
    or an upload to check and decode, first goes to a worker thread."""

    def __init__(self, models: LoadedModels) -> None:
        self.models = models

    async def embed(
        self, model: str, texts: list[str], timeout_s: float, request_id: str = "", *, normalize: bool = True,
        dimensions: int | None = None, receive: Receive | None = None,
    ) -> Embedded:  # fmt: skip
        request = wire.Embed(0, request_id, model, texts, normalize, dimensions)
        reply, rows = await self._run(request, b"", timeout_s, receive, f"embedding {len(texts)} texts")
        assert isinstance(reply, wire.Vectors) and rows is not None
        return Embedded(rows, reply)

    async def detect_speech(
        self, model: str, audio: bytes, timeout_s: float, request_id: str = "", *,
        receive: Receive | None = None, **settings: float,
    ) -> wire.Speech:  # fmt: skip
        request = wire.DetectSpeech(0, request_id, model, **settings)
        reply, _ = await self._run(request, audio, timeout_s, receive, "voice detection")
        assert isinstance(reply, wire.Speech)
        return reply

    async def classify(
        self, model: str, image: bytes, top_k: int, timeout_s: float, request_id: str = "", *,
        receive: Receive | None = None,
    ) -> wire.Labels:  # fmt: skip
        request = wire.Classify(0, request_id, model, top_k)
        reply, _ = await self._run(request, image, timeout_s, receive, "classification")
        assert isinstance(reply, wire.Labels)
        return reply

    async def _run(
        self, request: Batched, data: bytes, timeout_s: float, receive: Receive | None, what: str
    ) -> tuple[wire.Reply, Any]:
        lease = None
        if isinstance(request, wire.Embed):
            lease = self.models.lease_if_loaded(request.model, TASKS[wire.Embed])
        if lease is not None:
            submitted = submit(request, data, lease)
        else:
            submitted = await asyncio.to_thread(self._submit, request, data)
        result = await wait_for(submitted.future, timeout_s, receive, what)
        return submitted.answer(request.id, result)

    def _submit(self, request: Batched, data: bytes) -> Submitted:
        return submit(request, data, self.models.lease(request.model, TASKS[type(request)]))
