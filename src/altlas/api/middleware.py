"""ASGI middleware: request ids, a request log line, a cap on body size, API keys, a concurrency cap."""

from __future__ import annotations

import hmac
import itertools
import json
import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from altlas.logs import request_id_var
from altlas.observability.metrics import UNMATCHED, Metrics

__all__ = [
    "ApiKeyMiddleware",
    "ApiKeys",
    "BodyLimitMiddleware",
    "ConcurrencyGate",
    "ConcurrencyLimitMiddleware",
    "RequestContextMiddleware",
    "log_request",
    "request_id_of",
]

log = logging.getLogger("altlas.http")
# Request ids: a random prefix per process and a counter. uuid4 per request read the kernel's
# random source each time, which cost ~0.3 ms per request on a loaded 2-core machine.
_ID_PREFIX = uuid.uuid4().hex[:16]
_ID_COUNTER = itertools.count(1)


def _new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id_of(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's X-Request-ID if it is sane, else a new id."""
    for name, value in headers:
        if name == b"x-request-id":
            supplied = value.decode("latin-1")
            return supplied if _CLIENT_ID.match(supplied) else _new_request_id()
    return _new_request_id()


def log_request(
    method: str,
    path: str,
    status: int,
    started: float,
    metrics: Metrics | None = None,
    route: str | None = None,
) -> None:
    """The one log line per request (in the request id's context), and its count and duration
    in `metrics` under its route template (`route`; the path itself when None)."""
    seconds = time.perf_counter() - started
    if metrics is not None:
        metrics.observe_request(route or path, method, status, seconds)
    if log.isEnabledFor(logging.INFO):  # the line's fields cost more than the check
        log.info(
            "request",
            extra={"method": method, "path": path, "status": status, "duration_ms": round(seconds * 1000, 3)},
        )


class RequestContextMiddleware:
    """Take X-Request-ID from the client (if sane) or make one; echo it; log and count the request."""

    def __init__(self, app: ASGIApp, metrics: Metrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope["headers"])
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")  # set by the router on a match: its template bounds the label
            template = getattr(route, "path", None) or UNMATCHED
            log_request(scope["method"], scope["path"], status, started, self.metrics, template)
            request_id_var.reset(token)


class BodyLimitMiddleware:
    """Answer 413 to bodies over `max_bytes`, by Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit():
            if int(length) > self.max_bytes:
                await self._reject(send)
                return
            # The server reads exactly Content-Length bytes of body (HTTP/1.1 framing), so a body
            # declared under the limit stays under it: no chunk counting, no wrapped receive/send.
            await self.app(scope, receive, send)
            return
        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not response_started:
                await self._reject(send)

    async def _reject(self, send: Send) -> None:
        message = f"request body is over the limit of {self.max_bytes:,} bytes"
        await _send_error(send, 413, error_body(message, "body", "too_large"))


class ApiKeys:
    """The server's API keys: which paths need one, and whether a request's header holds one."""

    def __init__(self, keys: tuple[str, ...], protect_metrics: bool = False) -> None:
        self.keys = tuple(key.encode() for key in keys)
        self.prefixes = ("/v1", "/metrics") if protect_metrics else ("/v1",)

    def guards(self, scope: Scope) -> bool:
        """Whether this request needs a key (never, with no keys)."""
        return bool(self.keys) and scope["type"] in ("http", "websocket") and _under(scope, self.prefixes)

    def authorized(self, header: bytes) -> bool:
        """Whether an Authorization header's value is "Bearer <one of the keys>"."""
        scheme, _, token = header.strip().partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        token = token.strip()
        matched = False
        for key in self.keys:  # every key, no early exit: the time taken says nothing of which matched
            matched |= hmac.compare_digest(token, key)
        return matched


class ApiKeyMiddleware:
    """Require "Authorization: Bearer <key>" on /v1 (and /metrics if asked); health and docs stay open.

    With no keys it passes everything through, so create_app may add it unconditionally."""

    def __init__(self, app: ASGIApp, keys: tuple[str, ...], protect_metrics: bool = False) -> None:
        self.app = app
        self.keys = ApiKeys(keys, protect_metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.keys.guards(scope) or self.keys.authorized(
            dict(scope["headers"]).get(b"authorization", b"")
        ):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":  # refuse the handshake; browsers see 403, never the socket
            await send({"type": "websocket.close", "code": 1008})
            return
        body = error_body(
            "a valid API key is required: send Authorization: Bearer <key>",
            "authorization",
            "invalid_api_key",
            "authentication_error",
        )
        await _send_error(send, 401, body, [(b"www-authenticate", b"Bearer")])


class ConcurrencyGate:
    """A count of /v1 requests in flight against a limit; one event loop runs every request, so a
    plain counter is enough. Shared by the middleware and the fast lane, which counts its own."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0

    def full(self) -> bool:
        return self.limit > 0 and self.in_flight >= self.limit


class ConcurrencyLimitMiddleware:
    """Answer 429 at once when `limit` /v1 requests are already in flight (streams count until done).

    The queues behind the models bound each model; this bounds the process as a whole, so a flood
    of cheap requests cannot pile up unbounded tasks and sockets."""

    def __init__(self, app: ASGIApp, limit: int = 0, gate: ConcurrencyGate | None = None) -> None:
        self.app = app
        self.gate = gate or ConcurrencyGate(limit)

    @property
    def in_flight(self) -> int:
        return self.gate.in_flight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gate = self.gate
        if scope["type"] != "http" or gate.limit <= 0 or not _under(scope, ("/v1",)):
            await self.app(scope, receive, send)
            return
        if gate.full():
            body = error_body(
                f"the server is at its limit of {gate.limit:,} concurrent requests; retry shortly",
                None,
                "too_many_requests",
                "rate_limit_error",
            )
            await _send_error(send, 429, body, [(b"retry-after", b"1")])
            return
        gate.in_flight += 1
        try:  # the app returns only after the last body chunk is sent, so streams are counted whole
            await self.app(scope, receive, send)
        finally:
            gate.in_flight -= 1


def _under(scope: Scope, prefixes: tuple[str, ...]) -> bool:
    # A plain prefix test: it may guard a path that does not exist (/v1x, a 404 anyway), never miss one.
    path: str = scope["path"]
    return path.startswith(prefixes)


async def _send_error(
    send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    encoded = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(encoded)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": encoded})


class _BodyTooLarge(Exception):
    pass


def error_body(
    message: str, param: str | None, code: str, kind: str = "invalid_request_error"
) -> dict[str, Any]:
    """The one error shape of every altlas endpoint (OpenAI's)."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
