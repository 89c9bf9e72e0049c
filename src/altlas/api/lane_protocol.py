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
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import Any

from altlas.api.fast_lane import Answer, admits, error_answer
from altlas.api.middleware import ApiKeys, ConcurrencyGate, log_request, request_id_of
from altlas.errors import TimedOutError
from altlas.logs import request_id_var
from altlas.scheduling.waiting import on_loop

__all__ = ["DirectLane", "Started", "lane_protocol"]

_MAX_BODY = 65_536  # uvicorn's read buffer: past it, reading waits for an ASGI app to take the body


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


class _InFlight:
    """One request a lane is answering on a connection."""

    __slots__ = ("app", "cycle", "done", "lane", "request_id", "started", "started_at", "timer")

    def __init__(self, cycle: Any, app: Any, lane: DirectLane) -> None:
        self.cycle = cycle
        self.app = app
        self.lane = lane
        self.request_id = ""
        self.started_at = 0.0
        self.started: Started | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.done = False


def lane_protocol(app: Any) -> type[asyncio.Protocol] | None:
    """uvicorn's httptools protocol with `app.state.direct_lanes` (path -> DirectLane) answered
    directly; None where uvicorn's httptools protocol is not available as expected."""
    try:
        from uvicorn.protocols.http import httptools_impl
    except ImportError:  # no httptools: uvicorn speaks h11
        return None
    base = getattr(httptools_impl, "HttpToolsProtocol", None)
    status_lines: dict[int, bytes] | None = getattr(httptools_impl, "STATUS_LINE", None)
    hooks = ("_start_asgi_task", "on_message_complete", "on_response_complete", "connection_lost")
    if base is None or not isinstance(status_lines, dict) or not all(hasattr(base, h) for h in hooks):
        return None
    lines: dict[int, bytes] = status_lines
    lanes: Mapping[str, DirectLane] = app.state.direct_lanes
    settings = app.state.settings
    handlers = app.exception_handlers
    keys = ApiKeys(settings.api_keys)
    gate: ConcurrencyGate | None = app.state.concurrency if app.state.concurrency.limit > 0 else None
    max_body = min(settings.max_body_bytes, _MAX_BODY)
    metrics = getattr(app.state, "metrics", None)

    class LaneProtocol(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._waiting_body: _InFlight | None = None  # taken, its body still coming
            self._in_flight: _InFlight | None = None  # started, its answer not yet written

        # uvicorn's hooks

        def _start_asgi_task(self, cycle: Any, app: Any) -> None:
            scope = cycle.scope
            lane = lanes.get(scope["path"]) if scope["method"] == "POST" else None
            if (
                lane is None
                or app is not self.app  # uvicorn's own 503 (its limit_concurrency), not the app
                or cycle.waiting_for_100_continue
                or scope["http_version"] != "1.1"
                or not admits(scope["headers"], max_body, keys, gate)
            ):
                super()._start_asgi_task(cycle, app)
                return
            state = _InFlight(cycle, app, lane)
            if cycle.more_body:
                self._waiting_body = state
            else:  # a pipelined request, its body read while the one before it was answered
                self._begin(state)

        def on_message_complete(self) -> None:
            super().on_message_complete()
            state = self._waiting_body
            if state is not None and not state.cycle.more_body:
                self._waiting_body = None
                self._begin(state)

        def connection_lost(self, exc: Exception | None) -> None:
            state = self._in_flight
            if state is not None and not state.done:
                assert state.started is not None
                state.started.future.cancel()  # not run, if its batch is not gathered yet
                self._close(state, 499)
            self._waiting_body = None
            super().connection_lost(exc)

        # a lane's request

        def _begin(self, state: _InFlight) -> None:
            cycle = state.cycle
            state.request_id = request_id_of(cycle.scope["headers"])
            state.started_at = time.perf_counter()
            token = request_id_var.set(state.request_id)
            try:
                started = state.lane.start(bytes(cycle.body))
            except Exception as exc:
                self._in_flight = state
                if gate is not None:
                    gate.in_flight += 1
                self._write(state, error_answer(handlers, cycle.scope, exc))
                return
            finally:
                request_id_var.reset(token)
            if started is None:  # the ASGI way, under the same request id
                headers = [(n, v) for n, v in cycle.scope["headers"] if n != b"x-request-id"]
                cycle.scope["headers"] = [*headers, (b"x-request-id", state.request_id.encode())]
                super()._start_asgi_task(cycle, state.app)
                return
            state.started = started
            self._in_flight = state
            if gate is not None:
                gate.in_flight += 1
            on_loop(started.future, self.loop).add_done_callback(partial(self._answered, state))
            if started.timeout_s > 0:
                state.timer = self.loop.call_later(started.timeout_s, self._time_out, state)

        def _answered(self, state: _InFlight, waiting: asyncio.Future[Any]) -> None:
            if state.done:  # timed out, or the client left
                return
            assert state.started is not None
            token = request_id_var.set(state.request_id)
            try:
                if waiting.cancelled():  # by no one here: say so rather than hang up
                    exc: BaseException | None = RuntimeError(f"{state.started.what} was cancelled")
                else:
                    exc = waiting.exception()
                if exc is None:
                    answer = state.started.finish(waiting.result())
                else:
                    answer = error_answer(handlers, state.cycle.scope, exc)  # type: ignore[arg-type]
            except Exception as failed:
                answer = error_answer(handlers, state.cycle.scope, failed)
            finally:
                request_id_var.reset(token)
            self._write(state, answer)

        def _time_out(self, state: _InFlight) -> None:
            if state.done:
                return
            assert state.started is not None
            state.started.future.cancel()
            limit, what = state.started.timeout_s, state.started.what
            exc = TimedOutError(f"{what} took longer than the {limit:g} s limit", field="timeout")
            self._write(state, error_answer(handlers, state.cycle.scope, exc))

        def _write(self, state: _InFlight, answer: Answer) -> None:
            """The answer on the socket, then uvicorn's end of a response (keep-alive, the next
            pipelined request)."""
            self._close(state, answer.status)
            cycle = state.cycle
            if cycle.disconnected or self.transport.is_closing():
                return
            head = [lines[answer.status]]
            for name, value in self.server_state.default_headers:
                head += [name, b": ", value, b"\r\n"]
            for name, value in answer.header_pairs(state.request_id):
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

        def _close(self, state: _InFlight, status: int) -> None:
            """Book-keeping of a request's end: its timer, its slot, its log line."""
            state.done = True
            if state.timer is not None:
                state.timer.cancel()
            if gate is not None:
                gate.in_flight -= 1
            if self._in_flight is state:
                self._in_flight = None
            token = request_id_var.set(state.request_id)
            try:
                log_request("POST", state.cycle.scope["path"], status, state.started_at, metrics)
            finally:
                request_id_var.reset(token)

    return LaneProtocol
