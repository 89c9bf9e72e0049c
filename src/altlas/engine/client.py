"""The API process's side of the transport: requests to an engine, awaited on the event loop.

One DEALER socket per client (zmq.asyncio), one reader task putting each reply in its request's
queue by id (an embedding has one reply; a generation a stream: Begun, then Tokens). A request
past its time limit, or whose caller is cancelled (the HTTP client left), sends the engine a
Cancel, so work not yet gathered into a batch never runs and a generation stops.
An engine's error comes back as the same AltlasError (altlas.errors.error_from_kind); its
internal errors as a RuntimeError (the API's catch-all answer, a 500 naming the request id).
An engine that dies is seen at once on the socket's monitor (the connection drops: no timer,
no heartbeat): the requests waiting on it fail with EngineUnavailableError (503, Retry-After);
the socket reconnects by itself when the engine is started again. A request made while the
engine is not connected (not started yet, or restarting) waits up to `start_timeout_s` for it,
then fails the same way.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import numpy as np
import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

from altlas.engine import messages as wire
from altlas.engine.service import Asking, ModelService
from altlas.errors import EngineUnavailableError, TimedOutError, error_from_kind
from altlas.generation.engine import TokenEvent
from altlas.generation.sampling import SamplingParams
from altlas.scheduling.waiting import ClientGone, Receive, client_left

__all__ = ["EngineClient", "GenerationStream"]

_Replies = asyncio.Queue[tuple[Any, list[Any]] | BaseException]  # a request's replies, or its error


class EngineClient(ModelService):
    """Requests to the engine at `address`, from one event loop (`start` on it first, `close`
    at the end; or `async with EngineClient(address) as client`); `start_timeout_s`: how long a
    request waits for an engine that is not connected."""

    def __init__(
        self, address: str, context: zmq.asyncio.Context | None = None, *, start_timeout_s: float = 30.0
    ) -> None:
        self.address = address
        self.start_timeout_s = start_timeout_s
        self.context = context or zmq.asyncio.Context.instance()
        self._ids = itertools.count(1)
        self._waiting: dict[int, _Replies] = {}
        self._socket: zmq.asyncio.Socket | None = None
        self._reader: asyncio.Task[None] | None = None
        self._monitor: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()  # set while the engine's connection is up

    async def start(self) -> None:
        socket = self.context.socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        monitor = socket.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
        socket.connect(self.address)
        self._socket = socket
        self._reader = asyncio.create_task(self._read())
        self._monitor = asyncio.create_task(self._watch(monitor))

    async def __aenter__(self) -> EngineClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        for task in (self._reader, self._monitor):
            if task is not None:
                task.cancel()
        if self._socket is not None:
            self._socket.disable_monitor()
            self._socket.close()
        for replies in self._waiting.values():
            replies.put_nowait(asyncio.CancelledError())

    async def generate(
        self, model: str, sampling: SamplingParams, timeout_s: float, request_id: str = "", *,
        messages: list[tuple[str, str]] | None = None, prompt: str | None = None,
        max_tokens: int | None = None,
    ) -> GenerationStream:  # fmt: skip
        """A chat (`messages`) or completion (`prompt`) under way, once its prefill is done (the
        model's errors, a prompt too long or a full queue, are raised here); TimedOutError past
        `timeout_s` seconds without a start (0: no limit). Iterate it for the pieces; close it
        to stop early."""
        request = wire.Generate(
            self._new_id(), request_id, model, sampling, timeout_s, max_tokens, messages, prompt
        )
        replies = await self._open(request)
        try:
            begun, _ = await self._next(replies, timeout_s, f"starting a generation with {model!r}")
        except BaseException:
            await self._cancel(request.id)
            raise
        return GenerationStream(self, request.id, begun, replies)

    def _new_id(self) -> int:
        return next(self._ids)

    async def _ask(
        self, request: Asking, timeout_s: float, what: str, upload: bytes | None, receive: Receive | None
    ) -> tuple[wire.Reply, np.ndarray | None]:
        replies = await self._open(request, upload)
        watcher = asyncio.create_task(_watch_client(receive, replies)) if receive is not None else None
        try:
            reply, frames = await self._next(replies, timeout_s, what)
        except BaseException:
            await self._cancel(request.id)
            raise
        finally:
            if watcher is not None:
                watcher.cancel()
            self._waiting.pop(request.id, None)
        if isinstance(reply, wire.Vectors):  # the vectors travel as raw float32 beside it
            return reply, np.frombuffer(frames[0], dtype=np.float32).reshape(reply.rows, reply.dim)
        return reply, None

    async def _open(self, request: wire.Request, upload: bytes | None = None) -> _Replies:
        """Send `request` (and its `upload` as a second frame) once the engine is connected; its
        replies go to the queue returned."""
        assert self._socket is not None, "start() the client first"
        if not self.connected.is_set():
            try:
                await asyncio.wait_for(self.connected.wait(), self.start_timeout_s)
            except TimeoutError:
                raise EngineUnavailableError(
                    f"the engine serving the model is not running (waited {self.start_timeout_s:g} s); retry",
                    "model",
                ) from None
        replies: _Replies = asyncio.Queue()
        self._waiting[request.id] = replies
        try:
            await self._socket.send_multipart(
                [wire.encode(request)] if upload is None else [wire.encode(request), upload]
            )
        except BaseException:
            self._waiting.pop(request.id, None)
            raise
        return replies

    @staticmethod
    async def _next(replies: _Replies, timeout_s: float, what: str) -> tuple[Any, list[Any]]:
        """The next reply (its error raised), TimedOutError past `timeout_s` (0: no limit)."""
        try:
            reply = await asyncio.wait_for(replies.get(), timeout_s or None)
        except TimeoutError:
            raise TimedOutError(
                f"{what} took longer than the {timeout_s:g} s limit", field="timeout"
            ) from None
        if isinstance(reply, BaseException):
            raise reply
        return reply

    async def _cancel(self, ident: int) -> None:
        """The request needs no more replies: the engine drops its work (a no-op once done)."""
        if self._waiting.pop(ident, None) is not None and self._socket is not None:
            await self._socket.send(wire.encode(wire.Cancel(ident)))

    async def _read(self) -> None:
        assert self._socket is not None
        while True:
            frames = await self._socket.recv_multipart(copy=False)
            reply = wire.REPLIES.decode(frames[0].bytes)
            replies = self._waiting.get(reply.id)
            if replies is None:  # answered after its time-out or cancel: nobody waits
                continue
            if isinstance(reply, wire.Failed):
                if reply.kind == "internal":
                    replies.put_nowait(RuntimeError(reply.message))
                else:
                    replies.put_nowait(
                        error_from_kind(reply.kind, reply.message, reply.field, reply.retry_after_s)
                    )
            else:
                replies.put_nowait((reply, [frame.buffer for frame in frames[1:]]))

    async def _watch(self, monitor: zmq.asyncio.Socket) -> None:
        """The connection's ups and downs: a drop fails every request waiting on the engine."""
        try:
            while True:
                event = parse_monitor_message(await monitor.recv_multipart())
                if event["event"] == zmq.EVENT_CONNECTED:
                    self.connected.set()
                elif event["event"] == zmq.EVENT_DISCONNECTED:
                    self.connected.clear()
                    for replies in self._waiting.values():
                        replies.put_nowait(
                            EngineUnavailableError("the engine serving the model stopped; retry", "model")
                        )
        finally:
            monitor.close()


class GenerationStream:
    """A generation under way in an engine: `begun` (its facts), then `async for event in
    stream`: TokenEvents up to the one with a finish reason. `aclose()` (or leaving `async
    with`) before that sends a Cancel: the engine stops before its next token."""

    def __init__(self, client: EngineClient, ident: int, begun: wire.Begun, replies: _Replies) -> None:
        self.begun = begun
        self._client = client
        self._ident = ident
        self._replies = replies
        self._finished = False

    def __aiter__(self) -> GenerationStream:
        return self

    async def __anext__(self) -> TokenEvent:
        if self._finished:
            raise StopAsyncIteration
        try:
            token, _ = await self._client._next(self._replies, 0, "")
        except BaseException:
            await self.aclose()
            raise
        assert isinstance(token, wire.Token)
        if token.finish_reason is not None:
            self._finished = True
            self._client._waiting.pop(self._ident, None)
        return TokenEvent(
            token.text, token.finish_reason, token.completion_tokens, token.token_ids, token.prefill_ms,
            token.decode_ms, token.queue_ms,
        )  # fmt: skip

    async def aclose(self) -> None:
        if not self._finished:
            self._finished = True
            await self._client._cancel(self._ident)

    async def __aenter__(self) -> GenerationStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def _watch_client(receive: Receive, replies: _Replies) -> None:
    """ClientGone into `replies` when the HTTP client behind `receive` leaves."""
    await client_left(receive)
    replies.put_nowait(ClientGone())
