"""The API process's side of the transport: requests to an engine, awaited on the event loop.

One DEALER socket per client (zmq.asyncio), one reader task matching replies to the requests
waiting for them by id. A request past its time limit, or whose caller is cancelled (the HTTP
client left), sends the engine a Cancel, so work not yet gathered into a batch never runs.
An engine's error comes back as the same AltlasError (altlas.errors.error_from_kind); its
internal errors as a RuntimeError (the API's catch-all answer, a 500 naming the request id).
An engine that dies is seen at once on the socket's monitor (the connection drops: no timer,
no heartbeat): the requests waiting on it fail with EngineUnavailableError (503, Retry-After);
the socket reconnects by itself when the engine is started again.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

from altlas.engine.messages import REPLIES, Cancel, Embed, Failed, Vectors, encode
from altlas.errors import EngineUnavailableError, TimedOutError, error_from_kind

__all__ = ["Embedded", "EngineClient"]


@dataclass(frozen=True)
class Embedded:
    """An Embed's answer: the vectors [rows, dim] (float32) and their header."""

    vectors: np.ndarray
    header: Vectors


class EngineClient:
    """Requests to the engine at `address`, from one event loop (`start` on it first, `close`
    at the end; or `async with EngineClient(address) as client`)."""

    def __init__(self, address: str, context: zmq.asyncio.Context | None = None) -> None:
        self.address = address
        self.context = context or zmq.asyncio.Context.instance()
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[tuple[Any, list[Any]]]] = {}
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
        for waiting in self._waiting.values():
            waiting.cancel()

    async def embed(
        self, model: str, texts: list[str], timeout_s: float, request_id: str = "", *, normalize: bool = True
    ) -> Embedded:
        """The vectors of `texts`, unit length unless `normalize` is False (TimedOutError past
        `timeout_s` seconds; 0: no limit)."""
        request = Embed(next(self._ids), request_id, model, texts, normalize)
        header, frames = await self._ask(request, timeout_s, f"embedding {len(texts)} texts")
        vectors = np.frombuffer(frames[0], dtype=np.float32).reshape(header.rows, header.dim)
        return Embedded(vectors, header)

    async def _ask(self, request: Embed, timeout_s: float, what: str) -> tuple[Any, list[Any]]:
        assert self._socket is not None, "start() the client first"
        waiting: asyncio.Future[tuple[Any, list[Any]]] = asyncio.get_running_loop().create_future()
        self._waiting[request.id] = waiting
        try:
            await self._socket.send(encode(request))
            try:
                return await asyncio.wait_for(waiting, timeout_s or None)
            except TimeoutError:
                raise TimedOutError(
                    f"{what} took longer than the {timeout_s:g} s limit", field="timeout"
                ) from None
        except BaseException:
            if not waiting.done() or waiting.cancelled():
                await self._socket.send(encode(Cancel(request.id)))
            raise
        finally:
            self._waiting.pop(request.id, None)

    async def _read(self) -> None:
        assert self._socket is not None
        while True:
            frames = await self._socket.recv_multipart(copy=False)
            reply = REPLIES.decode(frames[0].bytes)
            waiting = self._waiting.get(reply.id)
            if waiting is None or waiting.done():  # answered after its time-out: nobody waits
                continue
            if isinstance(reply, Failed):
                if reply.kind == "internal":
                    waiting.set_exception(RuntimeError(reply.message))
                else:
                    waiting.set_exception(
                        error_from_kind(reply.kind, reply.message, reply.field, reply.retry_after_s)
                    )
            else:
                waiting.set_result((reply, [frame.buffer for frame in frames[1:]]))

    async def _watch(self, monitor: zmq.asyncio.Socket) -> None:
        """The connection's ups and downs: a drop fails every request waiting on the engine."""
        try:
            while True:
                event = parse_monitor_message(await monitor.recv_multipart())
                if event["event"] == zmq.EVENT_CONNECTED:
                    self.connected.set()
                elif event["event"] == zmq.EVENT_DISCONNECTED:
                    self.connected.clear()
                    for waiting in self._waiting.values():
                        if not waiting.done():
                            waiting.set_exception(
                                EngineUnavailableError("the engine serving the model stopped; retry", "model")
                            )
        finally:
            monitor.close()
