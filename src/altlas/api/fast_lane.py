"""A fast lane for hot JSON routes: answered from the raw body, in front of the whole ASGI stack.

For a one-sentence embedding request, the framework's layers were most of the event loop's
time per request, and the event loop is what limits such a server, not the model: routing,
dependency solving and body parsing first (profiled under load), then the middleware chain
itself, a coroutine and a wrapped `send` per layer (FastAPI's error, telemetry and body-limit
layers, ours for request ids, keys, limits). A lane's request passes none of them: the lane
does what they would have done for it, in one place, and writes its answer as two ASGI
messages.

What the layers do for a lane's request, done here:
- request id: the client's X-Request-ID (if sane) or a new one, echoed in the answer, set for
  the logs; the request's log line;
- API keys, the body limit and the concurrency cap: a request that fails one (no valid key,
  no Content-Length or one over the limit, no free slot) is not taken: it goes down the
  stack, whose layers answer it as always (401, 413, 429). A taken request holds a slot of
  the concurrency cap until its answer is written;
- errors: an exception a lane raises gets the app's exception handler for its type, as it
  would in a route (the catch-all's included: a 500 naming the request id).

A lane takes the body bytes and the ASGI receive (to notice a client that leaves), and
returns an `Answer`, or None for a body it does not take (malformed, or anything unusual):
then the request goes down the stack to the app's own route with its body replayed, so that
every error keeps the shape and wording it always had. The route stays registered (OpenAPI,
and the answer to whatever a lane declines).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from altlas.api.middleware import (
    ApiKeys,
    ConcurrencyGate,
    log_request,
    read_body,
    refuse_body,
    replay,
    request_id_of,
)
from altlas.errors import AltlasError
from altlas.logs import request_id_var
from altlas.observability.metrics import Metrics

__all__ = ["Answer", "FastLane", "FastLaneMiddleware", "admits", "error_answer", "handler_for"]


@dataclass(frozen=True, slots=True)
class Answer:
    """A lane's whole response: a JSON body, its status and extra headers."""

    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    status: int = 200

    def header_pairs(self, request_id: str | None) -> list[tuple[bytes, bytes]]:
        """Every header the answer goes out with: its type and length, the request id (unless
        None: a layer outside adds it), its own."""
        pairs = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self.body)).encode()),
        ]
        if request_id is not None:
            pairs.append((b"x-request-id", request_id.encode()))
        pairs += [(name.lower().encode("latin-1"), value.encode("latin-1"))
                  for name, value in self.headers.items()]  # fmt: skip
        return pairs


# (JSON body, receive for what comes after it) -> the answer, or None: "not for me"
FastLane = Callable[[bytes, Receive], Awaitable[Answer | None]]
ExceptionHandler = Callable[[Request, Exception], Any]


class FastLaneMiddleware:
    """Answer POST requests to `lanes` (path -> lane) with a JSON body; pass the rest on.

    Wraps the app's whole middleware stack (see module docs). `handlers` is the app's exception
    handlers (type -> handler); `max_body_bytes`, `keys` and `gate` are the limits the stack
    enforces, checked here so that a request the lane takes obeys them too."""

    def __init__(
        self,
        app: ASGIApp,
        lanes: Mapping[str, FastLane],
        handlers: Mapping[Any, ExceptionHandler],
        max_body_bytes: int,
        keys: ApiKeys | None = None,
        gate: ConcurrencyGate | None = None,
        metrics: Metrics | None = None,
        body_timeout_s: float = 30.0,
    ) -> None:
        self.app = app
        self.body_timeout_s = body_timeout_s
        self.metrics = metrics
        self.lanes = lanes
        self.handlers = handlers
        self.max_body_bytes = max_body_bytes
        self.keys = keys if keys is not None and keys.keys else None
        self.gate = gate if gate is not None and gate.limit > 0 else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = self.lanes.get(scope["path"]) if scope["type"] == "http" else None
        if lane is None or scope["method"] != "POST" or not self._takes(scope):
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope["headers"])
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        try:
            messages = await read_body(receive, self.max_body_bytes, self.body_timeout_s)
        except AltlasError as exc:  # too slow (its length was checked: never too large)
            status = await refuse_body(send, self.handlers, scope, exc, request_id)
            log_request("POST", scope["path"], status, started, self.metrics)
            request_id_var.reset(token)
            return
        if messages[-1]["type"] != "http.request":  # the client left mid-body: the app sees it so
            request_id_var.reset(token)
            await self.app(scope, replay(messages, receive), send)
            return
        body = b"".join(m.get("body", b"") for m in messages)
        status = 0  # 0: declined, the stack answers (and logs) it
        gate = self.gate
        if gate is not None:
            gate.in_flight += 1
        try:
            status = await self._answer(lane, body, scope, receive, send, request_id)
        finally:
            if gate is not None:
                gate.in_flight -= 1
            if status:
                log_request("POST", scope["path"], status, started, self.metrics)
            request_id_var.reset(token)
        if not status:  # the stack takes the same request id, so the lane's log lines match
            headers = [(n, v) for n, v in scope["headers"] if n != b"x-request-id"]
            scope = {**scope, "headers": [*headers, (b"x-request-id", request_id.encode())]}
            await self.app(scope, replay(messages, receive), send)

    def _takes(self, scope: Scope) -> bool:
        return admits(scope["headers"], self.max_body_bytes, self.keys, self.gate)

    async def _answer(
        self, lane: FastLane, body: bytes, scope: Scope, receive: Receive, send: Send, request_id: str
    ) -> int:
        """Run the lane and write its answer; the status written, or 0 if the lane declined."""
        try:
            answer = await lane(body, receive)
        except Exception as exc:
            handler = handler_for(self.handlers, exc)
            if handler is None:
                raise
            response = handler(Request(scope, receive), exc)
            if inspect.isawaitable(response):
                response = await response
            response.headers["x-request-id"] = request_id
            await response(scope, receive, send)
            return int(response.status_code)
        if answer is None:
            return 0
        headers = answer.header_pairs(request_id)
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})
        return answer.status


def handler_for(handlers: Mapping[Any, ExceptionHandler], exc: Exception) -> ExceptionHandler | None:
    """The app's exception handler for `exc`: the one for its nearest type (the catch-all's for
    Exception included), as Starlette picks it for a route."""
    return next((handlers[kind] for kind in type(exc).__mro__ if kind in handlers), None)


def admits(
    headers: list[tuple[bytes, bytes]],
    max_body_bytes: int,
    keys: ApiKeys | None,
    gate: ConcurrencyGate | None,
) -> bool:
    """Whether the stack would let a request with these headers through to a lane: JSON, a
    Content-Length within the limit, a valid key if keys are set, a free slot if requests are
    capped. (A request that fails one is left to the stack, which answers it as always.)"""
    content_type = length = authorization = None
    for name, value in headers:
        if name == b"content-type":
            content_type = value
        elif name == b"content-length":
            length = value
        elif name == b"authorization":
            authorization = value
    if content_type is None or content_type.split(b";", 1)[0].strip().lower() != b"application/json":
        return False
    if length is None or not length.isdigit() or int(length) > max_body_bytes:
        return False
    if keys is not None and keys.keys and not keys.authorized(authorization or b""):
        return False
    return not (gate is not None and gate.full())


def error_answer(handlers: Mapping[Any, ExceptionHandler], scope: Scope, exc: Exception) -> Answer:
    """The app's answer to `exc` (its exception handler for the type, the catch-all's included)
    as an Answer, for code that answers without ASGI. altlas's handlers await nothing, so the
    coroutine finishes in one step; one that does not gets a plain 500."""
    handler = handler_for(handlers, exc)
    response = None
    if handler is not None:
        result = handler(Request(scope), exc)
        if inspect.iscoroutine(result):
            try:
                result.send(None)
            except StopIteration as done:
                response = done.value
            else:
                result.close()
        else:
            response = result
    if response is None:
        return Answer(b'{"error": {"message": "internal error", "type": "server_error", '
                      b'"param": null, "code": "internal_error"}}', status=500)  # fmt: skip
    headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in response.raw_headers
               if name not in (b"content-length", b"content-type")}  # fmt: skip
    return Answer(bytes(response.body), headers, int(response.status_code))
