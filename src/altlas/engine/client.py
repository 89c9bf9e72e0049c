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
from collections.abc import Callable

import numpy as np
import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

from altlas.engine import messages as wire
from altlas.engine.service import Asking, ModelService, Replies, next_reply, watch_client
from altlas.errors import EngineUnavailableError, error_from_kind
from altlas.scheduling.waiting import Receive

__all__ = ["EngineClient"]


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
        self._waiting: dict[int, Replies] = {}
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

    def _new_id(self) -> int:
        return next(self._ids)

    async def _stream(self, request: wire.Generate) -> tuple[Replies, Callable[[bool], None]]:
        replies = await self._open(request)

        def end(finished: bool) -> None:
            if finished:
                self._waiting.pop(request.id, None)
            else:
                self._cancel(request.id)

        return replies, end

    async def _ask(
        self, request: Asking, timeout_s: float, what: str, upload: bytes | None, receive: Receive | None
    ) -> tuple[wire.Reply, np.ndarray | None]:
        replies = await self._open(request, upload)
        watcher = asyncio.create_task(watch_client(receive, replies)) if receive is not None else None
        try:
            reply, frames = await next_reply(replies, timeout_s, what)
        except BaseException:
            self._cancel(request.id)
            raise
        finally:
            if watcher is not None:
                watcher.cancel()
            self._waiting.pop(request.id, None)
        if isinstance(reply, wire.Vectors):  # the vectors travel as raw float32 beside it
            return reply, np.frombuffer(frames[0], dtype=np.float32).reshape(reply.rows, reply.dim)
        return reply, None

    async def _open(self, request: wire.Request, upload: bytes | None = None) -> Replies:
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
        replies: Replies = asyncio.Queue()
        self._waiting[request.id] = replies
        try:
            await self._socket.send_multipart(
                [wire.encode(request)] if upload is None else [wire.encode(request), upload]
            )
        except BaseException:
            self._waiting.pop(request.id, None)
            raise
        return replies

    def _cancel(self, ident: int) -> None:
        """The request needs no more replies: the engine drops its work (a no-op once done).
        Synchronous, so that it runs in a task being cancelled too: the Cancel is sent at once
        when the socket has room (it nearly always has), else as soon as it has."""
        if self._waiting.pop(ident, None) is not None and self._socket is not None:
            self._socket.send(wire.encode(wire.Cancel(ident)))

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
