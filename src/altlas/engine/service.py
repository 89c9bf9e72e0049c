"""What the HTTP routes ask of the models, wherever they run: `ModelService`.

Two implementations answer it the same way: altlas.engine.local.LocalModels in the API's own
process (the loaded models, altlas.orchestrator.serving) and altlas.engine.client.EngineClient
in engine processes. This module needs no torch: an API process in front of engines loads none.
Both run the same model-side work (altlas.engine.work) and return the same replies
(altlas.engine.messages), so a route neither knows nor cares where its model runs. `receive`
(the request's ASGI receive, its body read) tells of a client that leaves: its work is
cancelled (never run if its batch was not gathered yet; a generation stops before its next
token) and ClientGone is raised.
"""

from __future__ import annotations

import asyncio
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from altlas.engine import messages as wire
from altlas.errors import TimedOutError
from altlas.generation.params import SamplingParams
from altlas.scheduling.waiting import ClientGone, Receive, client_left

__all__ = ["Asking", "Embedded", "GenerationStream", "ModelService", "Replies", "next_reply", "watch_client"]

Replies = asyncio.Queue[tuple[Any, list[Any]] | BaseException]  # a request's replies and frames, or its error


@dataclass(frozen=True)
class Embedded:
    """An Embed's answer: the vectors [rows, dim] (float32) and their header."""

    vectors: np.ndarray
    header: wire.Vectors


R = TypeVar("R")
Asking = wire.Batched | wire.OnThread  # what `_ask` answers: requests with one reply


class ModelService(ABC):
    """The models' requests, as routes make them (see the module's docs): each builds its
    message and `_ask`s it; a subclass says how a message is answered."""

    @abstractmethod
    async def start(self) -> None:
        """Ready to answer, on the event loop that will ask (the app's start)."""

    @abstractmethod
    async def close(self) -> None:
        """No more requests (the app's end)."""

    def _new_id(self) -> int:
        """The next request's id (unique among the requests in flight)."""
        return 0

    @abstractmethod
    async def _stream(self, request: wire.Generate) -> tuple[Replies, Callable[[bool], None]]:
        """(the queue `request`'s replies come to, its end): the generation is started; `end`
        is called once, with True when its last Token came, False to stop it before that."""

    @abstractmethod
    async def _ask(
        self, request: Asking, timeout_s: float, what: str, upload: bytes | None, receive: Receive | None
    ) -> tuple[wire.Reply, np.ndarray | None]:
        """(`request`'s reply, the vectors beside it or None); its error raised; TimedOutError
        past `timeout_s` (0: no limit), ClientGone when `receive`'s client leaves."""

    async def embed(
        self, model: str, texts: list[str], timeout_s: float, request_id: str = "", *, normalize: bool = True,
        dimensions: int | None = None, receive: Receive | None = None, field: str = "input",
    ) -> Embedded:  # fmt: skip
        """The vectors of `texts`, unit length unless `normalize` is False; `dimensions`: asked
        for, must be the model's; `field` names the texts in errors."""
        request = wire.Embed(self._new_id(), request_id, model, texts, normalize, dimensions, field)
        reply, rows = await self._ask(request, timeout_s, f"embedding {len(texts)} texts", None, receive)
        assert rows is not None
        return Embedded(rows, _expect(reply, wire.Vectors))

    async def generate(
        self, model: str, sampling: SamplingParams, timeout_s: float, request_id: str = "", *,
        messages: list[tuple[str, str]] | None = None, prompt: str | None = None,
        max_tokens: int | None = None, receive: Receive | None = None,
    ) -> GenerationStream:  # fmt: skip
        """A chat (`messages`) or completion (`prompt`) under way, once its prefill is done (the
        model's errors, a prompt too long or a full queue, are raised here); `timeout_s` bounds
        the wait for the model's turn (0: none; a model's load is not counted). Iterate it for
        the Tokens; close it to stop early; ClientGone when `receive`'s client leaves."""
        request = wire.Generate(
            self._new_id(), request_id, model, sampling, timeout_s, max_tokens, messages, prompt
        )
        replies, end = await self._stream(request)
        stream = GenerationStream(replies, end, receive)
        try:
            reply, _ = await next_reply(replies, 0, "")
            stream.begun = _expect(reply, wire.Begun)
        except BaseException:
            stream.close()
            raise
        return stream

    async def detect_speech(
        self, model: str, audio: bytes, timeout_s: float, request_id: str = "", *, threshold: float,
        min_speech_ms: float, min_silence_ms: float, pad_ms: float, receive: Receive | None = None,
        field: str = "file",
    ) -> wire.Speech:  # fmt: skip
        """Speech segments in the audio file `audio` (WAV, FLAC, OGG; its errors name `field`),
        with altlas.orchestrator.backends.VadRequest's settings."""
        settings = (threshold, min_speech_ms, min_silence_ms, pad_ms)
        request = wire.DetectSpeech(self._new_id(), request_id, model, *settings, field)
        reply, _ = await self._ask(request, timeout_s, "voice detection", audio, receive)
        return _expect(reply, wire.Speech)

    async def classify(
        self, model: str, image: bytes, top_k: int, timeout_s: float, request_id: str = "", *,
        receive: Receive | None = None, field: str = "file",
    ) -> wire.Labels:  # fmt: skip
        """The `top_k` likeliest labels of the image file `image` (JPEG, PNG, WebP, ...; its
        errors name `field`)."""
        request = wire.Classify(self._new_id(), request_id, model, top_k, field)
        reply, _ = await self._ask(request, timeout_s, "classification", image, receive)
        return _expect(reply, wire.Labels)

    async def search(
        self, index: str, queries: list[str], k: int, timeout_s: float, request_id: str = "", *,
        receive: Receive | None = None,
    ) -> wire.Hits:  # fmt: skip
        """The `k` documents of collection `index` closest to each query; `timeout_s`: their
        embedding's limit."""
        request = wire.Search(self._new_id(), request_id, index, queries, k, timeout_s)
        reply, _ = await self._ask(request, 0, "a search", None, receive)
        return _expect(reply, wire.Hits)

    async def add_documents(
        self, index: str, model: str, documents: list[tuple[str, str]], timeout_s: float,
        request_id: str = "", *, receive: Receive | None = None,
    ) -> wire.Done:  # fmt: skip
        """Embed `documents` (id, text) with `model` and store them in collection `index`."""
        request = wire.AddDocuments(self._new_id(), request_id, index, model, documents, timeout_s)
        reply, _ = await self._ask(request, 0, "adding documents", None, receive)
        return _expect(reply, wire.Done)

    async def remove_documents(self, index: str, ids: list[str], request_id: str = "") -> wire.Done:
        request = wire.RemoveDocuments(self._new_id(), request_id, index, ids)
        reply, _ = await self._ask(request, 0, "removing documents", None, None)
        return _expect(reply, wire.Done)

    async def admin(
        self, op: str, name: str = "", version: str = "", spec: Any = None, request_id: str = ""
    ) -> Any:
        """An operation on the model registry (altlas.engine.admin_work: list, status, register,
        load, unload, activate): the manager's data (a model's status; for list, every model's
        and the memory report). Not bounded in time: a load takes what it takes."""
        request = wire.Admin(
            self._new_id(), request_id, op, name, version, "" if spec is None else json.dumps(spec)
        )
        reply, _ = await self._ask(request, 0, f"the model operation {op}", None, None)
        return _expect(reply, wire.Result).payload

    async def similar_commands(self, command: str, k: int, request_id: str = "") -> list[dict[str, Any]]:
        """The `k` stored plans' commands closest to `command`: plan_id, command, score each."""
        request = wire.SimilarCommands(self._new_id(), request_id, command, k)
        reply, _ = await self._ask(request, 0, "finding similar commands", None, None)
        results: list[dict[str, Any]] = _expect(reply, wire.Result).payload
        return results

    async def dedupe(self, commands: list[str], threshold: float, request_id: str = "") -> dict[str, Any]:
        """The near-duplicates among `commands`: count, pairs (i, j, score), groups."""
        request = wire.Dedupe(self._new_id(), request_id, commands, threshold)
        reply, _ = await self._ask(request, 0, "finding near-duplicates", None, None)
        found: dict[str, Any] = _expect(reply, wire.Result).payload
        return found

    async def stats(self) -> bytes:
        """The models' metrics (Prometheus text format), for the API's /metrics."""
        reply, _ = await self._ask(wire.Stats(self._new_id()), 0, "collecting metrics", None, None)
        exposition: bytes = _expect(reply, wire.Result).payload
        return exposition

    async def list_indexes(self, request_id: str = "") -> wire.Indexes:
        reply, _ = await self._ask(wire.ListIndexes(self._new_id(), request_id), 0, "listing", None, None)
        return _expect(reply, wire.Indexes)


class GenerationStream:
    """A generation under way: `begun` (its facts), then `async for token in stream`: Tokens up
    to the one with a finish reason. `close()` (or leaving `async with`) before that stops it
    before its next token; so does its client leaving (ClientGone is raised)."""

    begun: wire.Begun

    def __init__(self, replies: Replies, end: Callable[[bool], None], receive: Receive | None) -> None:
        self._replies = replies
        self._end = end
        self._finished = False
        self._watcher = None if receive is None else asyncio.create_task(watch_client(receive, replies))

    def __aiter__(self) -> GenerationStream:
        return self

    async def __anext__(self) -> wire.Token:
        if self._finished:
            raise StopAsyncIteration
        try:
            reply, _ = await next_reply(self._replies, 0, "")
            token = _expect(reply, wire.Token)
        except BaseException:
            self.close()
            raise
        if token.finish_reason is not None:
            self._close(finished=True)
        return token

    def close(self) -> None:
        """Stop the generation (a no-op once it has finished). Synchronous, so that it runs even
        in a task being cancelled."""
        self._close(finished=False)

    def _close(self, finished: bool) -> None:
        if not self._finished:
            self._finished = True
            if self._watcher is not None:
                self._watcher.cancel()
            self._end(finished)

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> GenerationStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


async def next_reply(replies: Replies, timeout_s: float, what: str) -> tuple[Any, list[Any]]:
    """The next reply and its frames (its error raised), TimedOutError past `timeout_s` (0: no
    limit)."""
    try:
        reply = await asyncio.wait_for(replies.get(), timeout_s or None)
    except TimeoutError:
        raise TimedOutError(f"{what} took longer than the {timeout_s:g} s limit", field="timeout") from None
    if isinstance(reply, BaseException):
        raise reply
    return reply


async def watch_client(receive: Receive, replies: Replies) -> None:
    """ClientGone into `replies` when the HTTP client behind `receive` leaves."""
    await client_left(receive)
    replies.put_nowait(ClientGone())


def _expect(reply: wire.Reply, kind: type[R]) -> R:
    if not isinstance(reply, kind):
        raise RuntimeError(f"a {type(reply).__name__} reply where a {kind.__name__} was due")
    return reply
