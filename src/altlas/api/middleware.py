"""ASGI middleware: request ids, a request log line, a cap on body size, API keys, a concurrency cap."""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import logging
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from altlas.api.json_checks import check_json_body
from altlas.errors import AltlasError, InputTooLargeError, SlowRequestError
from altlas.logs import request_id_var
from altlas.observability.metrics import UNMATCHED, Metrics

__all__ = [
    "ApiKeyMiddleware",
    "ApiKeys",
    "ConcurrencyGate",
    "ConcurrencyLimitMiddleware",
    "RequestBodyMiddleware",
    "RequestContextMiddleware",
    "log_request",
    "read_body",
    "refuse_body",
    "replay",
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
            return supplied if _CLIENT_ID.fullmatch(supplied) else _new_request_id()
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
    """Take X-Request-ID from the client (if sane) or make one; echo it; log and count the request.

    An error no route handled is answered here, inside the request's context, by the app's
    handler for it (`handlers`; the catch-all logs the trace once and names the request id), so
    that a 500 carries the id like every other answer."""

    def __init__(
        self, app: ASGIApp, metrics: Metrics | None = None, handlers: Mapping[Any, Any] | None = None
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.handlers = handlers or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope["headers"])
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 0  # none sent yet

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if status:  # too late for an answer: the trace, once; the server ends the connection
                log.exception("error after the answer began", extra={"path": scope["path"]})
            else:
                status = await _answer_error(send_with_id, self.handlers, scope, exc, None)
        finally:
            status = status or 500
            route = scope.get("route")  # set by the router on a match: its template bounds the label
            template = getattr(route, "path", None) or UNMATCHED
            log_request(scope["method"], scope["path"], status, started, self.metrics, template)
            request_id_var.reset(token)


async def read_body(receive: Receive, max_bytes: int, timeout_s: float) -> list[Message]:
    """A request's body messages, read whole before any work is done for it: the messages up
    to the last body chunk, or up to the client leaving (an `http.disconnect`, kept for the
    app to see). Raises InputTooLargeError past `max_bytes` (Content-Length or not: chunked
    bodies are counted) and SlowRequestError when the body is not all in `timeout_s` seconds
    after the call, so a slow client holds neither a concurrency slot nor the model."""
    messages: list[Message] = []
    received = 0
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                message = await receive()
                messages.append(message)
                if message["type"] != "http.request":
                    return messages
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise InputTooLargeError(
                        f"request body is over the limit of {max_bytes:,} bytes", field="body"
                    )
                if not message.get("more_body", False):
                    return messages
    except TimeoutError:
        raise SlowRequestError(
            f"the request body did not arrive within {timeout_s:g} s", field="body"
        ) from None


def replay(messages: list[Message], receive: Receive) -> Receive:
    """A receive that gives `messages` again, in order, and then whatever `receive` gives."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


class RequestBodyMiddleware:
    """Read every request's body before the app sees the request (`read_body`: a size limit,
    413; a time limit, 408 and the connection closed), and check JSON bodies' shape (nesting
    depth, strings that are valid Unicode: 422 naming the field). The app gets the body replayed.

    `handlers` is the app's exception handlers: these errors are answered as a route's are."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float, handlers: Mapping[Any, Any]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.handlers = handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            messages = await read_body(receive, self.max_bytes, self.timeout_s)
            if messages[-1]["type"] == "http.request" and _is_json(scope["headers"]):
                body = b"".join(m.get("body", b"") for m in messages)
                if len(body) > _LOOP_CHECK_BYTES:  # a closer look may take a while: not on the loop
                    await asyncio.to_thread(check_json_body, body)
                else:
                    check_json_body(body)
        except AltlasError as exc:
            await refuse_body(send, self.handlers, scope, exc)
            return
        await self.app(scope, replay(messages, receive), send)


async def refuse_body(
    send: Send, handlers: Mapping[Any, Any], scope: Scope, exc: AltlasError, request_id: str | None = None
) -> int:
    """Answer a request whose body was refused as a route's error is answered, and close the
    connection: the rest of its body is never read, so it cannot carry another request.
    `request_id`: None where RequestContextMiddleware adds it. Returns the status."""
    return await _answer_error(send, handlers, scope, exc, request_id, [(b"connection", b"close")])


async def _answer_error(
    send: Send,
    handlers: Mapping[Any, Any],
    scope: Scope,
    exc: Exception,
    request_id: str | None,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> int:
    """Send the app's answer to `exc` (its exception handler's); the status."""
    from altlas.api.fast_lane import error_answer

    answer = error_answer(handlers, scope, exc)
    headers = [*answer.header_pairs(request_id), *(extra or [])]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})
    return answer.status


_LOOP_CHECK_BYTES = 1 << 20  # bodies up to this size are checked on the event loop (~ms at most)


def _is_json(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether FastAPI would read the body as JSON: no content type, application/json, or +json."""
    for name, value in headers:
        if name == b"content-type":
            kind = value.split(b";", 1)[0].strip().lower()
            return kind == b"application/json" or kind.endswith(b"+json")
    return True


class ApiKeys:
    """The server's API keys: which requests need a key, which an admin key, and whether a
    request's Authorization header holds one.

    `keys` set: /v1 (and /metrics if asked) needs one of them, or an admin key. Model
    administration (any request under /v1/models but a read: register, load, unload,
    activate, delete) needs one of `admin_keys` once keys of either kind are set; with none of
    those, nobody may administer. No keys at all: everything is open (one user on loopback)."""

    def __init__(
        self, keys: tuple[str, ...], protect_metrics: bool = False, admin_keys: tuple[str, ...] = ()
    ) -> None:
        self.admin_keys = tuple(key.encode() for key in admin_keys)
        # what an ordinary route takes; empty while ordinary routes are open
        self.keys = (*(key.encode() for key in keys), *self.admin_keys) if keys else ()
        self.administered = bool(keys or admin_keys)
        self.prefixes = ("/v1", "/metrics") if protect_metrics else ("/v1",)

    def guards(self, scope: Scope) -> bool:
        """Whether this request needs a key (never, with no keys)."""
        return bool(self.keys) and scope["type"] in ("http", "websocket") and _under(scope, self.prefixes)

    def administers(self, scope: Scope) -> bool:
        """Whether this request administers models, so needs an admin key (never, with no keys).
        Any method but a read under /v1/models: a route added there later is covered too."""
        if not self.administered or scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return False
        path: str = scope["path"]
        return path == _MODELS or path.startswith(_MODELS + "/")

    def authorized(self, header: bytes) -> bool:
        """Whether an Authorization header's value is "Bearer <one of the keys>" (an admin key included)."""
        return _bearer_of(header, self.keys)

    def admin(self, header: bytes) -> bool:
        """Whether an Authorization header's value is "Bearer <one of the admin keys>"."""
        return _bearer_of(header, self.admin_keys)


_MODELS = "/v1/models"


def _bearer_of(header: bytes, keys: tuple[bytes, ...]) -> bool:
    scheme, _, token = header.strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return False
    token = token.strip()
    matched = False
    for key in keys:  # every key, no early exit: the time taken says nothing of which matched
        matched |= hmac.compare_digest(token, key)
    return matched


class ApiKeyMiddleware:
    """Require "Authorization: Bearer <key>" on /v1 (and /metrics if asked), an admin key for
    model administration (ApiKeys); health and docs stay open. 401 without a valid key, 403 for
    a valid key that is not an admin key on an admin route.

    With no keys it passes everything through, so create_app may add it unconditionally."""

    def __init__(
        self,
        app: ASGIApp,
        keys: tuple[str, ...],
        protect_metrics: bool = False,
        admin_keys: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.keys = ApiKeys(keys, protect_metrics, admin_keys)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        keys = self.keys
        administers = keys.administers(scope)
        if not administers and not keys.guards(scope):
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization", b"")
        if keys.admin(header) if administers else keys.authorized(header):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":  # refuse the handshake; browsers see 403, never the socket
            await send({"type": "websocket.close", "code": 1008})
            return
        if administers and keys.authorized(header):
            body = error_body(
                "administering models (register, load, unload, activate) needs an admin key "
                "(ALTLAS_ADMIN_KEYS); this key is not one",
                "authorization",
                "admin_key_required",
                "permission_error",
            )
            await _send_error(send, 403, body)
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


def error_body(
    message: str, param: str | None, code: str, kind: str = "invalid_request_error"
) -> dict[str, Any]:
    """The one error shape of every altlas endpoint (OpenAI's)."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
