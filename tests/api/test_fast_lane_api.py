"""The fast lane in front of a tiny FastAPI app with altlas's error handlers and middlewares: it
answers well-formed JSON bodies itself, hands everything else to the route with the body intact,
its errors get the same answers a route's get, and the stack's limits (keys, body size,
concurrency) hold for its requests too."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError
from starlette.responses import JSONResponse, Response
from starlette.testclient import TestClient
from starlette.types import Message, Receive

from altlas.api.errors import install_error_handlers
from altlas.api.fast_lane import Answer, FastLaneMiddleware
from altlas.api.middleware import (
    ApiKeyMiddleware,
    ApiKeys,
    ConcurrencyGate,
    ConcurrencyLimitMiddleware,
    RequestBodyMiddleware,
    RequestContextMiddleware,
)
from altlas.errors import InvalidInputError, OverloadedError
from altlas.observability.metrics import Metrics


class Echo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: StrictStr


class Recorder:
    def __init__(self) -> None:
        self.lane_bodies: list[bytes] = []
        self.route_bodies: list[bytes] = []
        self.release = asyncio.Event()
        self.metrics = Metrics()


def make_app(
    recorder: Recorder,
    max_body: int = 1 << 20,
    keys: tuple[str, ...] = (),
    gate: ConcurrencyGate | None = None,
) -> Any:
    app = FastAPI()
    install_error_handlers(app)

    async def answer(body: Echo) -> dict[str, str]:
        if body.text == "refuse":
            raise InvalidInputError("is refused", field="text")
        if body.text == "busy":
            raise OverloadedError("the queue is full", retry_after_s=2.5)
        if body.text == "crash":
            raise RuntimeError("a bug")
        if body.text == "wait":
            await recorder.release.wait()
        return {"echo": body.text}

    @app.post("/v1/echo")
    async def route(body: Echo, request: Request) -> Response:
        recorder.route_bodies.append(await request.body())
        return JSONResponse(await answer(body))

    async def lane(raw: bytes, receive: Receive) -> Answer | None:
        recorder.lane_bodies.append(raw)
        try:
            body = Echo.model_validate_json(raw)
        except ValidationError:
            return None
        if body.text == "for the route":  # a lane may decline a valid body too
            return None
        return Answer(orjson.dumps(await answer(body)), {"X-Lane": "1"})

    if gate is not None:
        app.add_middleware(ConcurrencyLimitMiddleware, gate=gate)
    app.add_middleware(
        RequestBodyMiddleware, max_bytes=max_body, timeout_s=30.0, handlers=app.exception_handlers
    )
    if keys:
        app.add_middleware(ApiKeyMiddleware, keys=keys)
    app.add_middleware(RequestContextMiddleware, metrics=recorder.metrics, handlers=app.exception_handlers)
    return FastLaneMiddleware(
        app, {"/v1/echo": lane}, app.exception_handlers, max_body, ApiKeys(keys), gate, recorder.metrics
    )


def post(client: TestClient, content: bytes, content_type: str = "application/json", **headers: str) -> Any:
    return client.post("/v1/echo", content=content, headers={"content-type": content_type, **headers})


def test_a_well_formed_body_takes_the_lane() -> None:
    recorder = Recorder()
    with TestClient(make_app(recorder)) as client:
        response = post(client, b'{"text": "hi"}', "application/json; charset=utf-8")
    assert response.status_code == 200 and response.json() == {"echo": "hi"}
    assert response.headers["x-lane"] == "1" and response.headers["x-request-id"]
    assert recorder.lane_bodies == [b'{"text": "hi"}'] and recorder.route_bodies == []


def test_bodies_the_lane_declines_reach_the_route_intact_and_get_its_errors() -> None:
    recorder = Recorder()
    with TestClient(make_app(recorder)) as client:
        declined = post(client, b'{"text": "for the route"}')
        bad_json = post(client, b'{"text": ')
        wrong_type = post(client, b'{"text": 1}')
        extra = post(client, b'{"text": "x", "more": 1}')
    assert declined.status_code == 200 and declined.json() == {"echo": "for the route"}
    assert recorder.route_bodies == [b'{"text": "for the route"}']  # replayed whole
    assert len(recorder.lane_bodies) == 4
    assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == "invalid_json"
    assert wrong_type.status_code == 422 and wrong_type.json()["error"]["param"] == "text"
    assert extra.status_code == 422 and extra.json()["error"]["param"] == "more"
    assert "x-lane" not in wrong_type.headers


def test_other_content_types_and_methods_skip_the_lane() -> None:
    recorder = Recorder()
    with TestClient(make_app(recorder)) as client:
        text = post(client, b'{"text": "hi"}', "text/plain")
        get = client.get("/v1/echo")
    assert recorder.lane_bodies == []
    assert text.status_code == 422  # the route's answer to a body that is not JSON
    assert get.status_code == 405


def test_errors_raised_in_the_lane_get_the_apps_handlers() -> None:
    recorder = Recorder()
    with TestClient(make_app(recorder), raise_server_exceptions=False) as client:
        refused = post(client, b'{"text": "refuse"}')
        busy = post(client, b'{"text": "busy"}')
        crash = post(client, b'{"text": "crash"}')
    assert recorder.route_bodies == []
    assert refused.status_code == 422
    assert refused.json()["error"] == {
        "message": "text: is refused",
        "type": "invalid_request_error",
        "param": "text",
        "code": "invalid_value",
    }
    assert busy.status_code == 429 and busy.headers["retry-after"] == "3"
    assert crash.status_code == 500
    assert crash.json()["error"]["code"] == "internal_error" and "a bug" not in crash.text


def test_the_body_limit_still_applies() -> None:
    recorder = Recorder()
    with TestClient(make_app(recorder, max_body=64)) as client:
        response = post(client, b'{"text": "' + b"x" * 100 + b'"}')
    assert response.status_code == 413 and recorder.lane_bodies == []


def test_a_body_in_chunks_and_a_client_that_leaves_mid_body() -> None:
    recorder = Recorder()
    app = make_app(recorder)
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/echo", "raw_path": b"/v1/echo", "root_path": "",
        "query_string": b"", "headers": [(b"content-type", b"application/json"), (b"content-length", b"14")],
        "server": ("test", 80), "client": ("test", 1),
    }  # fmt: skip

    async def call(messages: list[Message]) -> list[Message]:
        sent: list[Message] = []

        async def receive() -> Message:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            sent.append(message)

        await app(scope, receive, send)
        return sent

    chunks: list[Message] = [
        {"type": "http.request", "body": b'{"te', "more_body": True},
        {"type": "http.request", "body": b'xt": "hi"}', "more_body": False},
    ]
    sent = asyncio.run(call(chunks))
    assert sent[0]["status"] == 200 and sent[1]["body"] == b'{"echo":"hi"}'
    assert recorder.lane_bodies == [b'{"text": "hi"}']

    left: list[Message] = [
        {"type": "http.request", "body": b'{"te', "more_body": True},
        {"type": "http.disconnect"},
    ]
    asyncio.run(call(left))  # the route meets the disconnect as it would have without the lane
    assert recorder.lane_bodies == [b'{"text": "hi"}']  # the lane never ran on half a body


def test_request_ids_are_echoed_and_kept_when_the_lane_declines() -> None:
    recorder = Recorder()
    with TestClient(make_app(recorder)) as client:
        taken = post(client, b'{"text": "hi"}', **{"x-request-id": "client-id-1"})
        declined = post(client, b'{"text": "for the route"}', **{"x-request-id": "client-id-2"})
        fresh = post(client, b'{"text": 1}')
    assert taken.headers["x-request-id"] == "client-id-1" and taken.headers["x-lane"] == "1"
    assert declined.headers["x-request-id"] == "client-id-2" and declined.status_code == 200
    assert fresh.status_code == 422 and len(fresh.headers["x-request-id"]) == 32
    assert fresh.headers.get_list("x-request-id") == [fresh.headers["x-request-id"]]  # one, not two


def test_api_keys_hold_for_the_lane() -> None:
    recorder = Recorder()
    with TestClient(make_app(recorder, keys=("k1",))) as client:
        missing = post(client, b'{"text": "hi"}')
        wrong = post(client, b'{"text": "hi"}', authorization="Bearer nope")
        right = post(client, b'{"text": "hi"}', authorization="Bearer k1")
    assert missing.status_code == 401 and wrong.status_code == 401
    assert missing.json()["error"]["code"] == "invalid_api_key"
    assert right.status_code == 200 and right.headers["x-lane"] == "1"
    assert recorder.lane_bodies == [b'{"text": "hi"}'] and recorder.route_bodies == []


def test_lane_requests_hold_a_concurrency_slot() -> None:
    recorder = Recorder()
    gate = ConcurrencyGate(1)
    app = make_app(recorder, gate=gate)
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/echo", "raw_path": b"/v1/echo", "root_path": "",
        "query_string": b"", "server": ("test", 80), "client": ("test", 1),
    }  # fmt: skip

    async def call(text: str) -> list[Message]:
        body = orjson.dumps({"text": text})
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        messages: list[Message] = [{"type": "http.request", "body": body}]
        sent: list[Message] = []

        async def receive() -> Message:
            if messages:
                return messages.pop(0)
            await asyncio.Event().wait()  # the client stays
            raise AssertionError

        async def send(message: Message) -> None:
            sent.append(message)

        await app({**scope, "headers": headers}, receive, send)
        return sent

    async def main() -> tuple[list[Message], list[Message]]:
        waiting = asyncio.create_task(call("wait"))
        while gate.in_flight == 0:
            await asyncio.sleep(0)
        refused = await call("hi")  # the slot is taken: the stack's middleware answers 429
        recorder.release.set()
        return await waiting, refused

    first, refused = asyncio.run(main())
    assert first[0]["status"] == 200 and refused[0]["status"] == 429
    assert gate.in_flight == 0


def test_lane_and_stack_requests_are_each_counted_once() -> None:
    recorder = Recorder()
    with TestClient(make_app(recorder)) as client:
        post(client, b'{"text": "hi"}')  # the lane
        post(client, b'{"text": "for the route"}')  # declined: the stack
        post(client, b'{"text": "refuse"}')  # the lane, an error
    counter = recorder.metrics.http_requests
    assert counter.labels("/v1/echo", "POST", "200")._value.get() == 2
    assert counter.labels("/v1/echo", "POST", "422")._value.get() == 1
