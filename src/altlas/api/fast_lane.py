"""A fast lane for hot JSON routes: answered from the raw body, before FastAPI's routing,
dependency solving and body parsing.

For a one-sentence embedding request those steps were about half of the event loop's time per
request (profiled under load: included-router matching, `solve_dependencies`, `Request.json`,
the request handler's bookkeeping); the loop is what limits such a server, not the model.

A lane takes the body bytes and the ASGI receive, and returns a response, or None for a body
it does not take (malformed, or anything unusual); then the request goes on to the app's own
route with its body replayed, so that every error keeps the shape and wording it always had.
An exception a lane raises gets the app's exception handler for its type, as in a route.
The route stays registered (OpenAPI, and the answer to whatever a lane declines).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["FastLane", "FastLaneMiddleware"]

# (JSON body, receive for what comes after it) -> the answer, or None: "not for me"
FastLane = Callable[[bytes, Receive], Awaitable[Response | None]]
ExceptionHandler = Callable[[Request, Exception], Any]


class FastLaneMiddleware:
    """Answer POST requests to `lanes` (path -> lane) with a JSON body; pass the rest on.

    Add it before the other middlewares (innermost), so request ids, API keys, the concurrency
    cap and the body limit apply to its requests as to any other. `handlers` is the app's
    exception handlers (type -> handler); a lane's exception with none for its type propagates,
    as it would from a route, to the server error handler (a 500 with the request id)."""

    def __init__(
        self, app: ASGIApp, lanes: Mapping[str, FastLane], handlers: Mapping[Any, ExceptionHandler]
    ) -> None:
        self.app = app
        self.lanes = lanes
        self.handlers = handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = self.lanes.get(scope["path"]) if scope["type"] == "http" else None
        if lane is None or scope["method"] != "POST" or not _json_body(scope):
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":  # the client left mid-body: the app sees it so
                await self.app(scope, _replay(messages, receive), send)
                return
            if not message.get("more_body", False):
                break
        body = b"".join(m.get("body", b"") for m in messages)
        try:
            response = await lane(body, receive)
        except Exception as exc:
            handler = self._handler_for(exc)
            if handler is None:
                raise
            response = handler(Request(scope, receive), exc)
            if inspect.isawaitable(response):
                response = await response
        if response is None:
            await self.app(scope, _replay(messages, receive), send)
            return
        await response(scope, receive, send)

    def _handler_for(self, exc: Exception) -> ExceptionHandler | None:
        for kind in type(exc).__mro__:
            if kind is Exception:  # the catch-all is the server error handler's, outside us
                return None
            if kind in self.handlers:
                return self.handlers[kind]
        return None


def _json_body(scope: Scope) -> bool:
    """Content-Type application/json (parameters allowed), the only body a lane reads."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            return bool(value.split(b";", 1)[0].strip().lower() == b"application/json")
    return False


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A receive that gives `messages` again, in order, and then whatever `receive` gives."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
