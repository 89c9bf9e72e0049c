"""Requests a direct lane answers outside ASGI, whichever code carries their bytes.

Two carriers take a hot request (POST /v1/embeddings) off the ASGI path: the server's own HTTP
protocol (altlas.api.lane_protocol), for connections the server process reads itself, and the
front hub (altlas.api.front.hub), for requests the HTTP front processes read and pass on over a
local socket. Both need the same steps, kept here once:

- whether the stack would let the request through to a lane (`DirectLanes.take`: JSON, a body
  within the limit, a valid key if keys are set, a free slot of the concurrency cap);
- its request id (the client's X-Request-ID if sane, else a new one), set for the logs;
- the lane's `start` (parse, validate, submit to the model's batcher), the answer once the
  batcher's future is done, or the app's exception handler's answer to an error;
- its time limit (cancel, 504), a client that leaves (cancel: a request whose batch has not
  been gathered is never run), the concurrency slot it holds until answered, its log line.

A carrier gives `begin` a `reply(answer, request_id)` that writes the answer, and calls
`LaneRequest.client_left()` when its client goes. `reply` is called once at most, on the event
loop; never after `client_left`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

from altlas.api.fast_lane import Answer, ExceptionHandler, admits, error_answer
from altlas.api.middleware import ApiKeys, ConcurrencyGate, log_request, request_id_of
from altlas.errors import TimedOutError
from altlas.logs import request_id_var
from altlas.scheduling.waiting import on_loop

__all__ = ["MAX_LANE_BODY", "DirectLanes", "LaneRequest", "Reply"]

# uvicorn's read buffer: past it, its protocol waits for an ASGI app to take the body
MAX_LANE_BODY = 65_536

Reply = Callable[[Answer, str], None]  # (answer, request id) -> written


class DirectLanes:
    """An app's direct lanes (`app.state.direct_lanes`: path -> DirectLane) with the rules
    its stack applies to every request."""

    def __init__(self, app: Any) -> None:
        self.lanes: Mapping[str, Any] = app.state.direct_lanes
        self.handlers: Mapping[Any, ExceptionHandler] = app.exception_handlers
        self.keys = ApiKeys(app.state.settings.api_keys, admin_keys=app.state.settings.admin_keys)
        concurrency: ConcurrencyGate = app.state.concurrency
        self.gate: ConcurrencyGate | None = concurrency if concurrency.limit > 0 else None
        self.max_body = min(app.state.settings.max_body_bytes, MAX_LANE_BODY)
        self.metrics = getattr(app.state, "metrics", None)

    def take(self, method: str, path: str, headers: list[tuple[bytes, bytes]]) -> Any | None:
        """The lane for this request, or None where the stack must answer it (no lane for the
        path, or a rule it fails: the stack's layers answer that as always)."""
        lane = self.lanes.get(path) if method == "POST" else None
        if lane is None or not admits(headers, self.max_body, self.keys, self.gate):
            return None
        return lane

    def begin(
        self, lane: Any, scope: dict[str, Any], body: bytes, reply: Reply, loop: asyncio.AbstractEventLoop
    ) -> LaneRequest:
        """Start the request (on the event loop). Declined (`.declined`) when the lane leaves
        it to the ASGI way: nothing was answered, nothing is held."""
        request = LaneRequest(self, scope, reply)
        token = request_id_var.set(request.request_id)
        try:
            started = lane.start(body)
        except Exception as exc:
            request.hold()
            request.finish(error_answer(self.handlers, scope, exc))
            return request
        finally:
            request_id_var.reset(token)
        if started is None:
            request.declined = True
            return request
        request.started = started
        request.hold()
        on_loop(started.future, loop).add_done_callback(request.answered)
        if started.timeout_s > 0:
            request.timer = loop.call_later(started.timeout_s, request.time_out)
        return request


class LaneRequest:
    """One request a direct lane took (see the module's docs)."""

    __slots__ = (
        "declined",
        "done",
        "lanes",
        "reply",
        "request_id",
        "scope",
        "started",
        "started_at",
        "timer",
    )

    def __init__(self, lanes: DirectLanes, scope: dict[str, Any], reply: Reply) -> None:
        self.lanes = lanes
        self.scope = scope
        self.reply = reply
        self.request_id = request_id_of(scope["headers"])
        self.started_at = time.perf_counter()
        self.started: Any = None  # altlas.api.lane_protocol.Started
        self.timer: asyncio.TimerHandle | None = None
        self.declined = False
        self.done = False

    def hold(self) -> None:
        """Take a slot of the concurrency cap until answered."""
        if self.lanes.gate is not None:
            self.lanes.gate.in_flight += 1

    def client_left(self) -> None:
        """The client closed its connection: cancel the work (never run if its batch is not
        gathered yet) and log a 499; nothing is replied."""
        if self.done or self.declined:
            return
        self.started.future.cancel()
        self._close(499)

    def answered(self, waiting: asyncio.Future[Any]) -> None:
        if self.done:  # timed out, or the client left
            return
        token = request_id_var.set(self.request_id)
        try:
            if waiting.cancelled():  # by no one here: say so rather than hang up
                exc: BaseException | None = RuntimeError(f"{self.started.what} was cancelled")
            else:
                exc = waiting.exception()
            if exc is None:
                answer = self.started.finish(waiting.result())
            else:
                answer = error_answer(self.lanes.handlers, self.scope, exc)  # type: ignore[arg-type]
        except Exception as failed:
            answer = error_answer(self.lanes.handlers, self.scope, failed)
        finally:
            request_id_var.reset(token)
        self.finish(answer)

    def time_out(self) -> None:
        if self.done:
            return
        self.started.future.cancel()
        limit, what = self.started.timeout_s, self.started.what
        exc = TimedOutError(f"{what} took longer than the {limit:g} s limit", field="timeout")
        self.finish(error_answer(self.lanes.handlers, self.scope, exc))

    def finish(self, answer: Answer) -> None:
        """Close the request's books and hand its answer to the carrier."""
        self._close(answer.status)
        self.reply(answer, self.request_id)

    def _close(self, status: int) -> None:
        """Book-keeping of a request's end: its timer, its slot, its log line."""
        self.done = True
        if self.timer is not None:
            self.timer.cancel()
        if self.lanes.gate is not None:
            self.lanes.gate.in_flight -= 1
        token = request_id_var.set(self.request_id)
        try:
            log_request("POST", self.scope["path"], status, self.started_at, self.lanes.metrics)
        finally:
            request_id_var.reset(token)
