"""One JSON error shape for every failure: altlas errors, validation errors, HTTP errors.

Bad input never becomes a 500; a real 500 logs its trace and tells the client only
the request id.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.routing import Match

from altlas.api.admission import error_body
from altlas.errors import (
    AltlasError,
    EngineUnavailableError,
    InputTooLargeError,
    InsufficientMemoryError,
    ModelUnavailableError,
    NotFoundError,
    OverloadedError,
    SlowRequestError,
    TimedOutError,
    UnsupportedAudioError,
    UnsupportedImageError,
    WrongTaskError,
)
from altlas.logs import request_id_var
from altlas.scheduling.waiting import ClientGone

__all__ = ["install_error_handlers"]

log = logging.getLogger("altlas.http")
# pydantic names the member of a union that failed in the error's location: str, list[str], ...
_UNION_TAG = re.compile(
    r"^(str|int|float|bool|bytes|list\[.*\]|dict\[.*\]|tuple\[.*\]|[a-z-]+\[.*\]|Literal\[.*\])$"
)


def _status_of(exc: AltlasError) -> tuple[int, str]:
    """HTTP status and error code of an AltlasError: the first matching row, subclasses before
    their bases (insufficient GPU memory is a kind of model unavailable; too large, of invalid)."""
    from altlas.jobs.store import JobStateError

    table: tuple[tuple[type[AltlasError] | tuple[type[AltlasError], ...], int, str], ...] = (
        ((UnsupportedAudioError, UnsupportedImageError), 415, "unsupported_media"),
        (InputTooLargeError, 413, "too_large"),
        (NotFoundError, 404, "not_found"),
        (WrongTaskError, 400, "wrong_task"),
        (InsufficientMemoryError, 503, "insufficient_gpu_memory"),
        (EngineUnavailableError, 503, "engine_unavailable"),
        (ModelUnavailableError, 503, "model_unavailable"),
        (OverloadedError, 429, "overloaded"),
        (JobStateError, 409, "conflict"),
        (TimedOutError, 504, "timeout"),
        (SlowRequestError, 408, "request_timeout"),
    )
    return next(
        ((status, code) for kinds, status, code in table if isinstance(exc, kinds)), (422, "invalid_value")
    )


async def _altlas_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AltlasError)
    status, code = _status_of(exc)
    kind = {404: "not_found_error", 429: "rate_limit_error", 503: "server_error", 504: "server_error"}.get(
        status, "invalid_request_error"
    )
    headers = None
    if isinstance(exc, OverloadedError | EngineUnavailableError):  # whole seconds, as RFC 9110 asks; never 0
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))}
    return JSONResponse(error_body(str(exc), exc.field, code, kind), status_code=status, headers=headers)


async def _client_gone(request: Request, exc: Exception) -> Response:
    """Nobody is left to read an answer; 499 (nginx's "client closed request") for the log."""
    return Response(status_code=499)


def _location(loc: tuple[Any, ...]) -> str:
    parts = list(loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc)
    text = ""
    for part in parts:
        if isinstance(part, str) and _UNION_TAG.fullmatch(part):  # which member of a union, not a field
            continue
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text or (str(loc[0]) if loc else "body")


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if errors:  # of a union's failed members (same field), the deepest says most: input[0], not input
        field_of_first = tuple(errors[0].get("loc", ()))[:2]
        same_field = [e for e in errors if tuple(e.get("loc", ()))[:2] == field_of_first]
        errors = [max(same_field, key=lambda e: len(e.get("loc", ())))] + [
            e for e in errors if e not in same_field
        ]
    first: dict[str, Any] = (
        dict(errors[0]) if errors else {"loc": ("body",), "msg": "invalid", "type": "invalid"}
    )
    field = _location(tuple(first.get("loc", ())))
    kind = str(first.get("type", ""))
    if kind == "json_invalid":
        reason = (first.get("ctx") or {}).get("error", "malformed JSON")
        return JSONResponse(
            error_body(f"request body is not valid JSON: {reason}", "body", "invalid_json"), 400
        )
    if kind == "model_attributes_type" and field == "body":
        return JSONResponse(error_body("request body must be a JSON object", "body", "invalid_type"), 422)
    if kind == "missing" and field == "body":
        return JSONResponse(error_body("request body is required: a JSON object", "body", "missing"), 422)
    message = f"{field}: {first.get('msg', 'invalid value')}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return JSONResponse(error_body(message, field, kind or "invalid_value"), 422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else "request failed"
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route {request.method} {request.url.path}"
    kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:  # every method the path takes: its routes are several (GET, DELETE)
        headers["Allow"] = ", ".join(_methods_of(request))
    body = error_body(detail, None, str(exc.status_code), kind)
    return JSONResponse(body, exc.status_code, headers=headers)


def _methods_of(request: Request) -> list[str]:
    """The methods of every route whose path matches the request's (HEAD where GET is)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if getattr(route, "methods", None) and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods
    return sorted(methods)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", extra={"path": request.url.path})
    request_id = request_id_var.get()
    message = f"internal error; quote request id {request_id} when reporting it"
    return JSONResponse(error_body(message, None, "internal_error", "server_error"), 500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AltlasError, _altlas_error)
    app.add_exception_handler(ClientGone, _client_gone)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
