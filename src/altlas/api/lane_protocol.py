"""The server's HTTP protocol: hot requests answered by lanes without an ASGI task.

uvicorn runs every request as an asyncio task speaking ASGI: a task (registered in asyncio's
task set), an `asyncio.Event`, message dicts for the body and each part of the answer, and,
for a request that waits on a model, a second task watching for the client to leave. For a
one-sentence embedding request that machinery was most of the event loop's time, and the
event loop is what bounds a server of small requests: the model's batches are cheap.

For a path with a *direct lane*, this protocol takes the request itself once its body is in:
the lane's `start` runs on the event loop (parse, validate, submit to the model's batcher) and
the answer is written straight to the socket when the batcher's future is done. No task, no
ASGI messages, no watcher: a client that leaves is noticed by `connection_lost`, which cancels
its future, so a request whose batch has not been gathered yet is never run. A request past
its time limit is cancelled the same way and answered 504.

Everything else stays uvicorn's: other paths; requests a lane declines (`start` returns None:
an unusual body, a model still loading, many texts), which go the ASGI way with their body
and the same request id; keep-alive; pipelined requests (one that arrives while another is in
flight waits its turn, as in uvicorn); flow control; shutdown. A lane's request obeys the
stack's rules (altlas.api.fast_lane.admits): JSON, a body within the limit (and within 64 KiB,
past which uvicorn would wait for an ASGI app to read it), a valid key if keys are set, a slot
of the concurrency cap; a request that fails one goes down the stack, which answers it.
Request ids, the log line, and errors (through the app's exception handlers) are as elsewhere.

It extends uvicorn's httptools protocol (the hooks `_start_asgi_task`, `on_message_complete`,
`connection_lost`); `lane_protocol` returns None where that protocol is not there (no httptools,
or another uvicorn), and the server runs uvicorn's own, the ASGI fast lane answering instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from altlas.api.fast_lane import Answer
from altlas.api.lane_requests import DirectLanes, LaneRequest

__all__ = ["DirectLane", "Started", "lane_protocol"]


@dataclass(frozen=True, slots=True)
class Started:
    """A request a direct lane took: its work's future, and how to turn the result into the
    answer (called on the event loop)."""

    future: Future[Any]
    finish: Callable[[Any], Answer]
    timeout_s: float  # 0: no limit
    what: str  # for the timeout's message: "embedding 1 texts"


@dataclass(frozen=True, slots=True)
class DirectLane:
    """start(body) -> Started, or None for a request it leaves to the ASGI way. Runs on the event
    loop: it must not block. An exception it raises is answered by the app's handlers."""

    start: Callable[[bytes], Started | None]


def lane_protocol(app: Any) -> type[asyncio.Protocol] | None:
    """uvicorn's httptools protocol with `app.state.direct_lanes` (path -> DirectLane) answered
    directly; None where uvicorn's httptools protocol is not available as expected."""
    try:
        from uvicorn.protocols.http import httptools_impl
    except ImportError:  # no httptools: uvicorn speaks h11
        return None
    base = getattr(httptools_impl, "HttpToolsProtocol", None)
    status_lines: dict[int, bytes] | None = getattr(httptools_impl, "STATUS_LINE", None)
    hooks = (
        "_start_asgi_task", "on_message_begin", "on_headers_complete", "on_message_complete",
        "on_response_complete", "connection_made", "connection_lost",
    )  # fmt: skip
    if base is None or not isinstance(status_lines, dict) or not all(hasattr(base, h) for h in hooks):
        return None
    lines: dict[int, bytes] = status_lines
    lanes = DirectLanes(app)
    head_timeout_s: float = app.state.settings.header_timeout_s
    body_timeout_s: float = app.state.settings.body_timeout_s

    class LaneProtocol(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._waiting_body: tuple[Any, Any] | None = None  # (cycle, lane): its body still coming
            self._in_flight: LaneRequest | None = None  # taken, its answer not yet written
            self._cycle: Any = None  # the in-flight request's uvicorn cycle
            self._head_timer: asyncio.TimerHandle | None = None  # a request head still coming
            self._body_timer: asyncio.TimerHandle | None = None  # a lane request's body still coming

        # asyncio's and uvicorn's hooks

        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            self._head_timer = self.loop.call_later(head_timeout_s, self._head_late)

        def on_message_begin(self) -> None:  # a request's first byte: its head has a time limit
            super().on_message_begin()
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(head_timeout_s, self._head_late)

        def on_headers_complete(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
            super().on_headers_complete()

        def _start_asgi_task(self, cycle: Any, app: Any) -> None:
            scope = cycle.scope
            lane = lanes.take(scope["method"], scope["path"], scope["headers"])
            if (
                lane is None
                or app is not self.app  # uvicorn's own 503 (its limit_concurrency), not the app
                or cycle.waiting_for_100_continue
                or scope["http_version"] != "1.1"
            ):
                super()._start_asgi_task(cycle, app)
                return
            if cycle.more_body:
                self._waiting_body = (cycle, lane)
                self._body_timer = self.loop.call_later(body_timeout_s, self._body_late)
            else:  # a pipelined request, its body read while the one before it was answered
                self._begin(cycle, lane)

        def on_message_complete(self) -> None:
            super().on_message_complete()
            waiting = self._waiting_body
            if waiting is not None and not waiting[0].more_body:
                self._waiting_body = None
                self._cancel_body_timer()
                self._begin(*waiting)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._in_flight is not None:
                self._in_flight.client_left()
                self._in_flight = None
            self._waiting_body = None
            self._cancel_body_timer()
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
            super().connection_lost(exc)

        # slow clients

        def _head_late(self) -> None:
            """No complete request head in time (nothing sent, or a head trickling in): close."""
            self._head_timer = None
            if not self.transport.is_closing():
                self.transport.close()

        def _body_late(self) -> None:
            """A lane request's body not in within the limit: it goes the ASGI way, whose body
            reading answers 408 if the rest does not come either."""
            self._body_timer = None
            waiting, self._waiting_body = self._waiting_body, None
            if waiting is not None:
                super()._start_asgi_task(waiting[0], self.app)

        def _cancel_body_timer(self) -> None:
            if self._body_timer is not None:
                self._body_timer.cancel()
                self._body_timer = None

        # a lane's request

        def _begin(self, cycle: Any, lane: Any) -> None:
            self._cycle = cycle
            request = lanes.begin(lane, cycle.scope, bytes(cycle.body), self._write, self.loop)
            if request.declined:  # the ASGI way, under the same request id
                headers = [(n, v) for n, v in cycle.scope["headers"] if n != b"x-request-id"]
                cycle.scope["headers"] = [*headers, (b"x-request-id", request.request_id.encode())]
                super()._start_asgi_task(cycle, self.app)
            elif not request.done:
                self._in_flight = request

        def _write(self, answer: Answer, request_id: str) -> None:
            """The answer on the socket, then uvicorn's end of a response (keep-alive, the next
            pipelined request)."""
            self._in_flight = None
            cycle = self._cycle
            if cycle.disconnected or self.transport.is_closing():
                return
            head = [lines[answer.status]]
            for name, value in self.server_state.default_headers:
                head += [name, b": ", value, b"\r\n"]
            for name, value in answer.header_pairs(request_id):
                head += [name, b": ", value, b"\r\n"]
            if not cycle.keep_alive:
                head.append(b"connection: close\r\n")
            head += [b"\r\n", answer.body]
            self.transport.write(b"".join(head))
            cycle.response_started = cycle.response_complete = True
            cycle.message_event.set()
            if not cycle.keep_alive:
                self.transport.close()
            self.on_response_complete()

    return LaneProtocol
