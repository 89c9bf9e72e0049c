"""Admission: the one place that decides whether and how a request enters the app.

Every HTTP request passes one ASGI middleware, `Admission`, before any route sees it. In order:
1. its request id: the client's X-Request-ID if sane, else a new one (`RequestIds`), set for
   the logs and echoed on every answer (401, 408, 413, 429 and 500 included);
2. API keys (`ApiKeys`): 401 without a valid key where one is needed, 403 for a key that is not
   an admin key on a model-administration route; checked before the body is read, so a request
   without a key never takes anything;
3. the body, read whole before any work is done for it (`read_body`): 413 past the size limit
   (chunked bodies counted), 408 when it does not arrive in time, either answered with the
   connection closed (the rest of the body is never read); JSON bodies' shape checked (nesting
   depth, valid Unicode: 422 naming the field), so a slow client holds no slot;
4. the concurrency cap on /v1: 429 with Retry-After: 1 when the cap's requests are in flight;
   a request holds its slot until its last body chunk is sent (streams whole), or it fails;
5. errors no route handled: the app's exception handler's answer (the catch-all's 500 names the
   request id), inside the request's context;
6. the one log line per request and its count and duration under its route template.
Websockets: the key check only (a refused handshake is closed with 1008).
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping
from itertools import count
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from altlas.api.json_checks import check_json_body
from altlas.errors import AltlasError, InputTooLargeError, SlowRequestError
from altlas.logs import request_id_var
from altlas.observability.metrics import UNMATCHED, Metrics

__all__ = ["Admission", "ApiKeys", "RequestIds", "error_body", "read_body"]

log = logging.getLogger("altlas.http")
ExceptionHandler = Callable[[Request, Exception], Any]

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_MODELS = "/v1/models"
_LOOP_CHECK_BYTES = 1 << 20  # bodies up to this size are checked on the event loop (~ms at most)


class RequestIds:
    """Request ids of one app: a random prefix and a counter. (uuid4 per request read the
    kernel's random source each time: ~0.3 ms a request on a loaded 2-core machine.)"""

    def __init__(self) -> None:
        self.prefix = secrets.token_hex(8)
        self.counter = count(1)

    def of(self, headers: list[tuple[bytes, bytes]]) -> str:
        """The client's X-Request-ID if it is sane, else a new id."""
        for name, value in headers:
            if name == b"x-request-id":
                supplied = value.decode("latin-1")
                if _CLIENT_ID.fullmatch(supplied):
                    return supplied
                break
        return f"{self.prefix}{next(self.counter):016x}"


class ApiKeys:
    """The server's API keys: which requests need a key, which an admin key, and whether a
    request's Authorization header holds one.

    `keys` set: /v1 (and /metrics if asked) needs one of them, or an admin key. Model
    administration (any request under /v1/models but a read: register, load, unload,
    activate, delete) needs one of `admin_keys` once keys of either kind are set; with none of
    those, nobody may administer. No keys at all: everything is open (one user on loopback)."""

    def __init__(
        self, keys: tuple[str, ...] = (), protect_metrics: bool = False, admin_keys: tuple[str, ...] = ()
    ) -> None:
        self.admin_keys = tuple(key.encode() for key in admin_keys)
        # what an ordinary route takes; empty while ordinary routes are open
        self.keys = (*(key.encode() for key in keys), *self.admin_keys) if keys else ()
        self.administered = bool(keys or admin_keys)
        self.prefixes = ("/v1", "/metrics") if protect_metrics else ("/v1",)

    def guards(self, scope: Scope) -> bool:
        """Whether this request needs a key (never, with no keys)."""
        return bool(self.keys) and scope["path"].startswith(self.prefixes)

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

    def refusal(self, scope: Scope) -> tuple[int, dict[str, Any], list[tuple[bytes, bytes]]] | None:
        """None if the request may pass, else the answer: (status, error body, extra headers)."""
        administers = self.administers(scope)
        if not administers and not self.guards(scope):
            return None
        header = dict(scope["headers"]).get(b"authorization", b"")
        if self.admin(header) if administers else self.authorized(header):
            return None
        if administers and self.authorized(header):
            message = (
                "administering models (register, load, unload, activate) needs an admin key "
                "(ALTLAS_ADMIN_KEYS); this key is not one"
            )
            return 403, error_body(message, "authorization", "admin_key_required", "permission_error"), []
        message = "a valid API key is required: send Authorization: Bearer <key>"
        body = error_body(message, "authorization", "invalid_api_key", "authentication_error")
        return 401, body, [(b"www-authenticate", b"Bearer")]


def _bearer_of(header: bytes, keys: tuple[bytes, ...]) -> bool:
    scheme, _, token = header.strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return False
    token = token.strip()
    matched = False
    for key in keys:  # every key, no early exit: the time taken says nothing of which matched
        matched |= hmac.compare_digest(token, key)
    return matched


class Admission:
    """The app's one admission layer (see the module's docs). `limit`: /v1 requests in flight
    at most (0: no cap); `handlers`: the app's exception handlers (type -> handler), which answer
    the errors met here as a route's are answered; `metrics`: where each request is counted."""

    def __init__(
        self,
        app: ASGIApp,
        keys: ApiKeys | None = None,
        limit: int = 0,
        max_body_bytes: int = 1 << 20,
        body_timeout_s: float = 30.0,
        metrics: Metrics | None = None,
        handlers: Mapping[Any, ExceptionHandler] | None = None,
    ) -> None:
        self.app = app
        self.keys = keys or ApiKeys()
        self.limit = limit
        self.in_flight = 0  # /v1 requests holding a slot of the cap (one event loop: a plain count)
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.metrics = metrics
        self.handlers = handlers if handlers is not None else {}
        self.ids = RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            if self.keys.refusal(scope) is not None:  # refuse the handshake; browsers see 403
                await send({"type": "websocket.close", "code": 1008})
                return
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = self.ids.of(scope["headers"])
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 0  # none sent yet

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self._admit(scope, receive, send_with_id)
        except Exception as exc:
            if status:  # too late for an answer: the trace, once; the server ends the connection
                log.exception("error after the answer began", extra={"path": scope["path"]})
            else:
                await self._answer_error(scope, receive, send_with_id, exc)
        finally:
            route = scope.get("route")  # set by the router on a match: its template bounds the label
            template = getattr(route, "path", None) or UNMATCHED
            log_request(scope["method"], scope["path"], status or 500, started, self.metrics, template)
            request_id_var.reset(token)

    async def _admit(self, scope: Scope, receive: Receive, send: Send) -> None:
        refused = self.keys.refusal(scope)
        if refused is not None:
            await _send_error(send, *refused)
            return
        try:
            messages = await read_body(receive, self.max_body_bytes, self.body_timeout_s)
            if messages[-1]["type"] == "http.request" and _is_json(scope["headers"]):
                body = b"".join(m.get("body", b"") for m in messages)
                if len(body) > _LOOP_CHECK_BYTES:  # a closer look may take a while: not on the loop
                    await asyncio.to_thread(check_json_body, body)
                else:
                    check_json_body(body)
        except AltlasError as exc:  # the rest of the body is never read: it cannot carry another request
            await self._answer_error(scope, receive, send, exc, [(b"connection", b"close")])
            return
        capped = self.limit > 0 and scope["path"].startswith("/v1")
        if capped and self.in_flight >= self.limit:
            message = f"the server is at its limit of {self.limit:,} concurrent requests; retry shortly"
            error = error_body(message, None, "too_many_requests", "rate_limit_error")
            await _send_error(send, 429, error, [(b"retry-after", b"1")])
            return
        self.in_flight += capped
        try:  # the app returns only after the last body chunk is sent, so streams are counted whole
            await self.app(scope, replay(messages, receive), send)
        finally:
            self.in_flight -= capped

    async def _answer_error(
        self, scope: Scope, receive: Receive, send: Send, exc: Exception,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:  # fmt: skip
        """The app's answer to `exc`: its exception handler's for the nearest type (the
        catch-all's included), else a plain 500."""
        handler = next((self.handlers[kind] for kind in type(exc).__mro__ if kind in self.handlers), None)
        response: Response | None = None
        if handler is not None:
            answered = handler(Request(scope, receive), exc)
            response = await answered if inspect.isawaitable(answered) else answered
        if response is None:
            log.exception("unhandled error", extra={"path": scope["path"]}, exc_info=exc)
            body = error_body("internal error", None, "internal_error", "server_error")
            await _send_error(send, 500, body, extra or [])
            return
        for name, value in extra or []:
            response.headers[name.decode("latin-1")] = value.decode("latin-1")
        await response(scope, receive, send)


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


def _is_json(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether FastAPI would read the body as JSON: no content type, application/json, or +json."""
    for name, value in headers:
        if name == b"content-type":
            kind = value.split(b";", 1)[0].strip().lower()
            return kind == b"application/json" or kind.endswith(b"+json")
    return True


async def _send_error(
    send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    encoded = json.dumps(body).encode()
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(encoded)).encode()),
            *(headers or []),
        ],
    }
    await send(start)
    await send({"type": "http.response.body", "body": encoded})


def error_body(
    message: str, param: str | None, code: str, kind: str = "invalid_request_error"
) -> dict[str, Any]:
    """The one error shape of every altlas endpoint (OpenAI's)."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
