"""The fast lane on a tiny FastAPI app with altlas's error handlers: it answers well-formed JSON
bodies itself, hands everything else to the route with the body intact, and its errors get the
same answers a route's get."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError
from starlette.responses import JSONResponse, Response
from starlette.testclient import TestClient
from starlette.types import Message, Receive

from altlas.api.errors import install_error_handlers
from altlas.api.fast_lane import FastLaneMiddleware
from altlas.api.middleware import BodyLimitMiddleware, RequestContextMiddleware
from altlas.errors import InvalidInputError, OverloadedError


class Echo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: StrictStr


class Recorder:
    def __init__(self) -> None:
        self.lane_bodies: list[bytes] = []
        self.route_bodies: list[bytes] = []


def make_app(recorder: Recorder, max_body: int = 1 << 20) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    async def answer(body: Echo) -> Response:
        if body.text == "refuse":
            raise InvalidInputError("is refused", field="text")
        if body.text == "busy":
            raise OverloadedError("the queue is full", retry_after_s=2.5)
        if body.text == "crash":
            raise RuntimeError("a bug")
        return JSONResponse({"echo": body.text})

    @app.post("/v1/echo")
    async def route(body: Echo, request: Request) -> Response:
        recorder.route_bodies.append(await request.body())
        return await answer(body)

    async def lane(raw: bytes, receive: Receive) -> Response | None:
        recorder.lane_bodies.append(raw)
        try:
            body = Echo.model_validate_json(raw)
        except ValidationError:
            return None
        if body.text == "for the route":  # a lane may decline a valid body too
            return None
        response = await answer(body)
        response.headers["x-lane"] = "1"
        return response

    app.add_middleware(FastLaneMiddleware, lanes={"/v1/echo": lane}, handlers=app.exception_handlers)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body)
    app.add_middleware(RequestContextMiddleware)
    return app


def post(client: TestClient, content: bytes, content_type: str = "application/json") -> Any:
    return client.post("/v1/echo", content=content, headers={"content-type": content_type})


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
        "query_string": b"", "headers": [(b"content-type", b"application/json")],
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
