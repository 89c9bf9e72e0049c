"""The server's HTTP protocol with a direct lane, on a real uvicorn server on loopback, spoken to
over raw sockets: keep-alive, pipelining, requests the lane declines, errors, time limits,
clients that leave, API keys and the concurrency cap."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from altlas.api.errors import install_error_handlers
from altlas.api.fast_lane import Answer
from altlas.api.lane_protocol import DirectLane, Started, lane_protocol
from altlas.api.middleware import (
    ApiKeyMiddleware,
    ConcurrencyGate,
    ConcurrencyLimitMiddleware,
    RequestContextMiddleware,
)
from altlas.errors import InvalidInputError, OverloadedError
from altlas.observability.metrics import Metrics
from altlas.settings import Settings

pytest.importorskip("httptools")


@dataclass
class Lane:
    """A direct lane whose behaviour the request's text picks."""

    held: list[Future[Any]] = field(default_factory=list)
    started: list[str] = field(default_factory=list)

    def start(self, raw: bytes) -> Started | None:
        text = orjson.loads(raw).get("text")
        self.started.append(text)
        future: Future[Any] = Future()
        if text == "route":
            return None
        if text == "refuse":
            raise InvalidInputError("is refused", field="text")
        if text == "busy":
            future.set_exception(OverloadedError("the queue is full", retry_after_s=2.5))
        elif text in ("hold", "slow"):
            self.held.append(future)  # answered (or cancelled) later
        else:
            future.set_result(text)

        def finish(value: Any) -> Answer:
            if value == "bug":
                raise RuntimeError("a bug")
            return Answer(orjson.dumps({"echo": value}), {"X-Lane": "1"})

        return Started(future, finish, 0.3 if text == "slow" else 0, "echoing")


@dataclass
class Running:
    port: int
    lane: Lane
    gate: ConcurrencyGate
    metrics: Metrics


def serve(keys: tuple[str, ...] = (), limit: int = 0) -> Iterator[Running]:
    settings = Settings(api_keys=keys, max_concurrent_requests=limit)
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/v1/echo")
    async def route(request: Request) -> JSONResponse:
        body = orjson.loads(await request.body())
        return JSONResponse({"route": body["text"][:20], "length": len(body["text"])})

    lane = Lane()
    gate = ConcurrencyGate(limit)
    app.state.direct_lanes = {"/v1/echo": DirectLane(lane.start)}
    app.state.settings = settings
    app.state.concurrency = gate
    app.state.metrics = Metrics()
    if limit:
        app.add_middleware(ConcurrencyLimitMiddleware, gate=gate)
    if keys:
        app.add_middleware(ApiKeyMiddleware, keys=keys)
    app.add_middleware(RequestContextMiddleware)
    protocol = lane_protocol(app)
    assert protocol is not None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, http=protocol, log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield Running(port, lane, gate, app.state.metrics)
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def running() -> Iterator[Running]:
    yield from serve()


def request(text: str, *, headers: dict[str, str] | None = None, body: bytes | None = None) -> bytes:
    payload = body if body is not None else orjson.dumps({"text": text})
    head = ["POST /v1/echo HTTP/1.1", "Host: test", "Content-Type: application/json",
            f"Content-Length: {len(payload)}"]  # fmt: skip
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + payload


class Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.file = sock.makefile("rb")

    def answer(self) -> tuple[int, dict[str, list[str]], Any]:
        status = int(self.file.readline().split()[1])
        headers: dict[str, list[str]] = {}
        while (line := self.file.readline()) not in (b"\r\n", b""):
            name, value = line.decode().split(":", 1)
            headers.setdefault(name.strip().lower(), []).append(value.strip())
        body = self.file.read(int(headers["content-length"][0]))
        return status, headers, orjson.loads(body) if body else None


def connect(port: int) -> tuple[socket.socket, Reader]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock, Reader(sock)


def test_keep_alive_answers_from_the_lane_with_request_ids(running: Running) -> None:
    sock, reader = connect(running.port)
    with sock:
        for i in range(3):
            sock.sendall(request(f"hi {i}", headers={"X-Request-ID": f"client-{i}"}))
            status, headers, body = reader.answer()
            assert status == 200 and body == {"echo": f"hi {i}"}
            assert headers["x-request-id"] == [f"client-{i}"] and headers["x-lane"] == ["1"]
            assert headers["content-type"] == ["application/json"] and "date" in headers
        sock.sendall(request("fresh"))
        _, headers, _ = reader.answer()
        assert len(headers["x-request-id"][0]) == 32
    assert running.gate.in_flight == 0
    assert running.metrics.http_requests.labels("/v1/echo", "POST", "200")._value.get() == 4


def test_pipelined_requests_are_answered_in_order(running: Running) -> None:
    sock, reader = connect(running.port)
    with sock:
        sock.sendall(request("one") + request("route") + request("two") + request("three"))
        answers = [reader.answer() for _ in range(4)]
    assert [a[2] for a in answers] == [
        {"echo": "one"},
        {"route": "route", "length": 5},
        {"echo": "two"},
        {"echo": "three"},
    ]


def test_declined_and_large_requests_go_the_asgi_way_under_one_request_id(running: Running) -> None:
    sock, reader = connect(running.port)
    with sock:
        sock.sendall(request("route", headers={"X-Request-ID": "mine"}))
        status, headers, body = reader.answer()
        assert status == 200 and body["route"] == "route" and headers["x-request-id"] == ["mine"]
        sock.sendall(request("route"))
        _, headers, _ = reader.answer()
        assert len(headers["x-request-id"]) == 1  # the lane's id, taken by the stack: not two
        big = "x" * 100_000  # over the 64 KiB a lane takes
        sock.sendall(request(big))
        status, _, body = reader.answer()
        assert status == 200 and body == {"route": "x" * 20, "length": 100_000}
    assert running.lane.started.count("x" * 100_000) == 0


def test_errors_get_the_apps_answers(running: Running) -> None:
    sock, reader = connect(running.port)
    with sock:
        sock.sendall(request("refuse"))
        status, _, body = reader.answer()
        assert status == 422 and body["error"]["param"] == "text"
        sock.sendall(request("busy"))
        status, headers, body = reader.answer()
        assert status == 429 and headers["retry-after"] == ["3"] and body["error"]["code"] == "overloaded"
        sock.sendall(request("bug", headers={"X-Request-ID": "bug-1"}))
        status, _, body = reader.answer()
        assert status == 500 and "bug-1" in body["error"]["message"] and "a bug" not in str(body)
        sock.sendall(request("still here"))  # the connection lives on
        assert reader.answer()[0] == 200


def test_a_request_past_its_time_limit_is_cancelled_and_answered_504(running: Running) -> None:
    sock, reader = connect(running.port)
    with sock:
        sock.sendall(request("slow"))
        status, _, body = reader.answer()
    assert status == 504 and "0.3 s limit" in body["error"]["message"]
    assert running.lane.held[-1].cancelled()
    assert running.gate.in_flight == 0


def test_a_client_that_leaves_has_its_work_cancelled(running: Running) -> None:
    sock, reader = connect(running.port)
    sock.sendall(request("hold"))
    deadline = time.monotonic() + 5
    while not running.lane.held:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    reader.file.close()
    sock.close()
    while not running.lane.held[0].cancelled():
        assert time.monotonic() < deadline, "the held work was not cancelled"
        time.sleep(0.01)


def test_connection_close_is_honoured(running: Running) -> None:
    sock, reader = connect(running.port)
    with sock:
        sock.sendall(request("bye", headers={"Connection": "close"}))
        status, headers, _ = reader.answer()
        assert status == 200 and headers["connection"] == ["close"]
        assert reader.file.read() == b""  # closed by the server


def test_keys_and_the_concurrency_cap_hold_for_the_lane() -> None:
    for running in serve(keys=("k1",), limit=1):
        sock, reader = connect(running.port)
        with sock:
            sock.sendall(request("hi"))
            status, _, body = reader.answer()
            assert status == 401 and body["error"]["code"] == "invalid_api_key"
            assert running.lane.started == []
            sock.sendall(request("hold", headers={"Authorization": "Bearer k1"}))
            deadline = time.monotonic() + 5
            while running.gate.in_flight != 1:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            other, other_reader = connect(running.port)
            with other:
                other.sendall(request("hi", headers={"Authorization": "Bearer k1"}))
                status, headers, _ = other_reader.answer()
                assert status == 429 and headers["retry-after"] == ["1"]
            running.lane.held[0].set_result("released")
            status, _, body = reader.answer()
            assert status == 200 and body == {"echo": "released"}
        assert running.gate.in_flight == 0
