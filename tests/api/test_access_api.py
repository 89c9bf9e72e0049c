"""API keys and the cap on concurrent requests: the admission layer alone on a tiny app (deterministic,
no sleeps), then through a real server on loopback as a client meets them."""

from __future__ import annotations

import asyncio
import hmac
import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect

from altlas.api.admission import Admission, ApiKeys

from .conftest import Server, start_server

KEYS = ("key-one-5f0c1e9a", "key-two-8b2d47c3")  # distinctive, so a grep of the log cannot miss them


class _Reply(Protocol):  # httpx's Response, or the one starlette's TestClient returns
    def json(self) -> Any: ...


def error_of(response: _Reply) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    error: dict[str, Any] = body["error"]
    return error


# --- the admission layer on a tiny app ---------------------------------------------------------------


async def _ok(request: Request) -> Response:
    return PlainTextResponse("ok")


async def _echo_socket(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("hello")
    await websocket.close()


def tiny_app() -> Starlette:
    routes = [
        Route(path, _ok, methods=["GET", "POST"]) for path in ("/v1/thing", "/metrics", "/healthz", "/docs")
    ]
    return Starlette(routes=[*routes, WebSocketRoute("/v1/socket", _echo_socket)])


def keyed_client(protect_metrics: bool = False, keys: tuple[str, ...] = KEYS) -> TestClient:
    return TestClient(Admission(tiny_app(), ApiKeys(keys, protect_metrics)))


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer wrong",
        f"Bearer {KEYS[0]}x",
        f"Bearer {KEYS[0][:-1]}",
        f"Basic {KEYS[0]}",
        KEYS[0],
        f"Bearer {KEYS[0]},{KEYS[1]}",
    ],
)
def test_missing_or_wrong_key_is_401(authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    with keyed_client() as client:
        response = client.post("/v1/thing", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert error_of(response) == {
        "message": "a valid API key is required: send Authorization: Bearer <key>",
        "type": "authentication_error",
        "param": "authorization",
        "code": "invalid_api_key",
    }


@pytest.mark.parametrize("authorization", [f"Bearer {KEYS[0]}", f"Bearer {KEYS[1]}", f"bearer  {KEYS[1]} "])
def test_any_configured_key_passes(authorization: str) -> None:
    with keyed_client() as client:
        response = client.get("/v1/thing", headers={"Authorization": authorization})
    assert response.status_code == 200 and response.text == "ok"


def test_every_key_is_compared_even_after_a_match(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[bytes] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append(b)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    keys = ("first", "second", "third")
    with keyed_client(keys=keys) as client:
        assert client.get("/v1/thing", headers={"Authorization": "Bearer first"}).status_code == 200
    assert compared == [k.encode() for k in keys]  # the match on the first did not stop the loop


def test_health_docs_and_metrics_stay_open_by_default() -> None:
    with keyed_client() as client:
        for path in ("/healthz", "/docs", "/metrics"):
            assert client.get(path).status_code == 200, path


def test_metrics_needs_a_key_when_asked() -> None:
    with keyed_client(protect_metrics=True) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": f"Bearer {KEYS[0]}"}).status_code == 200
        assert client.get("/healthz").status_code == 200


def test_no_keys_passes_everything() -> None:
    with keyed_client(protect_metrics=True, keys=()) as client:
        assert client.get("/v1/thing").status_code == 200
        assert client.get("/metrics").status_code == 200


def test_websockets_under_v1_need_a_key_too() -> None:
    with keyed_client() as client:
        with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/v1/socket"):
            pass
        assert refused.value.code == 1008
        with client.websocket_connect("/v1/socket", headers={"Authorization": f"Bearer {KEYS[1]}"}) as ws:
            assert ws.receive_text() == "hello"


class Held:
    """A tiny app whose /v1 endpoints wait until released: a plain one, and a stream that waits
    after its first chunk (it must keep its slot until its last chunk is sent)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = 0

    async def wait(self, request: Request) -> Response:
        self.entered += 1
        await self.release.wait()
        return JSONResponse({"done": True})

    async def stream(self, request: Request) -> Response:
        async def chunks() -> Any:
            yield b"first\n"
            await self.release.wait()
            yield b"last\n"

        return StreamingResponse(chunks(), media_type="text/plain")

    async def fail(self, request: Request) -> Response:
        raise RuntimeError("boom")

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/wait", self.wait, methods=["POST"]),
                Route("/v1/stream", self.stream),
                Route("/v1/fail", self.fail),
                Route("/v1/quick", _ok),
                Route("/healthz", _ok),
            ]
        )


async def _until(check: Any) -> None:
    for _ in range(1000):
        if check():
            return
        await asyncio.sleep(0)
    raise AssertionError("never happened")


def test_concurrency_limit_answers_429_at_the_cap_and_frees_slots() -> None:
    async def scenario() -> None:
        held = Held()
        limited = Admission(held.app(), limit=2)
        transport = httpx.ASGITransport(app=limited)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            slow = [asyncio.create_task(client.post("/v1/wait")) for _ in range(2)]
            await _until(lambda: held.entered == 2)
            assert limited.in_flight == 2

            over = await asyncio.gather(*(client.get("/v1/quick") for _ in range(5)))
            for response in over:
                assert response.status_code == 429
                assert response.headers["retry-after"] == "1"
                assert error_of(response) == {
                    "message": "the server is at its limit of 2 concurrent requests; retry shortly",
                    "type": "rate_limit_error",
                    "param": None,
                    "code": "too_many_requests",
                }
            assert limited.in_flight == 2  # refused requests never took (or gave back) a slot
            assert (await client.get("/healthz")).status_code == 200  # not counted, not refused

            held.release.set()
            assert [r.status_code for r in await asyncio.gather(*slow)] == [200, 200]
            assert limited.in_flight == 0
            assert (await client.get("/v1/quick")).status_code == 200

    asyncio.run(scenario())


def test_a_stream_holds_its_slot_until_its_last_chunk() -> None:
    async def scenario() -> None:
        held = Held()
        limited = Admission(held.app(), limit=1)
        sent: list[dict[str, Any]] = []
        first_chunk = asyncio.Event()

        bodies = [{"type": "http.request", "body": b"", "more_body": False}]

        async def receive() -> dict[str, Any]:
            if bodies:  # the request's (empty) body, read by admission first
                return bodies.pop()
            await asyncio.Event().wait()  # the client never disconnects
            raise AssertionError

        async def send(message: Any) -> None:
            sent.append(message)
            if message["type"] == "http.response.body" and message.get("body") == b"first\n":
                first_chunk.set()

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/v1/stream",
            "raw_path": b"/v1/stream",
            "root_path": "",
            "query_string": b"",
            "headers": [],
            "server": ("test", 80),
            "client": ("test", 1),
        }
        streaming = asyncio.create_task(limited(scope, receive, send))
        await first_chunk.wait()
        assert limited.in_flight == 1  # headers and a chunk are out, the stream is not done

        transport = httpx.ASGITransport(app=limited)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/v1/quick")).status_code == 429
            held.release.set()
            await streaming
            assert limited.in_flight == 0
            assert (await client.get("/v1/quick")).status_code == 200
        assert b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body") == (
            b"first\nlast\n"
        )

    asyncio.run(scenario())


def test_a_failing_request_gives_its_slot_back() -> None:
    held = Held()
    limited = Admission(held.app(), limit=1)
    with TestClient(limited, raise_server_exceptions=False) as client:
        for _ in range(3):
            assert client.get("/v1/fail").status_code == 500
        assert limited.in_flight == 0
        assert client.get("/v1/quick").status_code == 200


# --- through a real server -----------------------------------------------------------------------


def _serve(tmp: Path, env: dict[str, str]) -> Server:
    with pytest.MonkeyPatch.context() as mp:
        for name in ("ALTLAS_API_KEYS", "ALTLAS_METRICS_REQUIRE_KEY", "ALTLAS_MAX_CONCURRENT_REQUESTS"):
            mp.delenv(name, raising=False)
        mp.setenv("ALTLAS_SERVICES", "segmentation")  # no models to load
        for name, value in env.items():
            mp.setenv(name, value)
        return start_server(tmp / "data", tmp / "server.log")


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = _serve(tmp_path_factory.mktemp("keyed"), {"ALTLAS_API_KEYS": ",".join(KEYS)})
    yield srv
    srv.stop()


def test_server_requires_a_key_on_v1(keyed_server: Server) -> None:
    with keyed_server.client() as client:
        for headers in (
            {},
            {"Authorization": "Bearer wrong-key-0000"},
            {"Authorization": f"Basic {KEYS[0]}"},
        ):
            response = client.post("/v1/segment", json={"command": "open notepad"}, headers=headers)
            assert response.status_code == 401, response.text
            assert response.headers["www-authenticate"] == "Bearer"
            assert error_of(response)["code"] == "invalid_api_key"
            assert error_of(response)["type"] == "authentication_error"
            assert error_of(response)["param"] == "authorization"
            assert response.headers["x-request-id"]

        ok = client.post(
            "/v1/segment", json={"command": "open notepad"}, headers={"Authorization": f"Bearer {KEYS[1]}"}
        )
        assert ok.status_code == 201, ok.text
        assert ok.json()["segments"]


def test_server_health_stays_open(keyed_server: Server) -> None:
    with keyed_server.client() as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code in (200, 503)  # open: readiness, never a 401


def test_server_401_is_logged_with_its_request_id(keyed_server: Server) -> None:
    with keyed_server.client() as client:
        response = client.get("/v1/alt-files", headers={"X-Request-ID": "access-test-401"})
    assert response.status_code == 401 and response.headers["x-request-id"] == "access-test-401"

    def logged() -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in keyed_server.log_lines() if line.startswith("{")]
        return [
            e for e in lines if e.get("request_id") == "access-test-401" and e.get("message") == "request"
        ]

    deadline = time.monotonic() + 10
    while not logged() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [e["status"] for e in logged()] == [401]


def test_server_metrics_open_unless_asked(keyed_server: Server) -> None:
    with keyed_server.client() as client:
        response = client.get("/metrics")
    assert response.status_code != 401  # 404 until a /metrics route exists; never the key check


def test_server_metrics_need_a_key_when_asked(tmp_path: Path) -> None:
    srv = _serve(tmp_path, {"ALTLAS_API_KEYS": ",".join(KEYS), "ALTLAS_METRICS_REQUIRE_KEY": "1"})
    try:
        with srv.client() as client:
            response = client.get("/metrics")
            assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
            keyed = client.get("/metrics", headers={"Authorization": f"Bearer {KEYS[0]}"})
            assert keyed.status_code != 401
            assert client.get("/healthz").status_code == 200
    finally:
        srv.stop()


def test_server_never_logs_a_key(keyed_server: Server) -> None:
    with keyed_server.client() as client:
        for key in (*KEYS, "wrong-key-0000"):
            client.post(
                "/v1/segment", json={"command": "open notepad"}, headers={"Authorization": f"Bearer {key}"}
            )
    time.sleep(0.2)  # the last request's log line
    log = keyed_server.log_path.read_text(encoding="utf-8")
    assert '"status": 201' in log  # the log is written at all
    for secret in (*KEYS, "wrong-key-0000"):
        assert secret not in log


class HeldRequest:
    """A /v1 request held in flight by its client: it downloads a job's result file (~8 MB of
    plans) but reads nothing until `finish`, so the server's streamed writes wait (flow
    control) and the request keeps its slot. (A request whose body is still coming holds no
    slot: see test_slow_clients_api.py.)"""

    def __init__(self, server: Server, path: str) -> None:
        host, port = server.url.removeprefix("http://").split(":")
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
        self.sock.settimeout(60)
        self.sock.connect((host, int(port)))
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        self.reply = b""
        while b"\r\n" not in self.reply:  # its status line: the answer has begun, the slot is held
            self.reply += self.sock.recv(64)
        assert self.reply.startswith(b"HTTP/1.1 200"), self.reply

    def finish(self) -> int:
        """Read the whole answer; its status."""
        with self.sock:
            while chunk := self.sock.recv(1 << 20):
                self.reply += chunk
        return int(self.reply.split(b" ", 2)[1])


def _plans_file(client: httpx.Client) -> str:
    """The path of a finished segment-bulk job's result: 8,000 plans, a JSONL file of ~8 MB."""
    commands = [f"open notepad {i}" for i in range(8000)]
    job = client.post("/v1/jobs", json={"kind": "segment-bulk", "input": {"commands": commands}})
    assert job.status_code == 202, job.text
    path = f"/v1/jobs/{job.json()['id']}"
    deadline = time.monotonic() + 600
    while (status := client.get(path).json()["status"]) not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, "the embed job did not end"
        time.sleep(0.2)
    assert status == "succeeded"
    return path + "/result"


def test_server_caps_concurrent_requests(tmp_path: Path) -> None:
    srv = _serve(tmp_path, {"ALTLAS_MAX_CONCURRENT_REQUESTS": "2"})
    held: list[HeldRequest] = []
    try:
        with srv.client() as client:
            result = _plans_file(client)
            held.append(HeldRequest(srv, result))
            held.append(HeldRequest(srv, result))

            def one() -> httpx.Response:
                return client.post("/v1/segment", json={"command": "open notepad"})

            first = one()  # the two held requests are writing their answers: every other is 429
            assert first.status_code == 429, first.text
            assert first.headers["retry-after"] == "1" and first.headers["x-request-id"]
            assert error_of(first)["code"] == "too_many_requests"
            assert error_of(first)["type"] == "rate_limit_error"
            with ThreadPoolExecutor(16) as pool:
                burst = list(pool.map(lambda _: one(), range(32)))
            assert {r.status_code for r in burst} == {429}
            assert client.get("/healthz").status_code == 200  # health is not counted

            assert [request.finish() for request in held] == [200, 200]
            assert one().status_code == 201

            # a burst against the cap: some may be turned away, none fails, and the rest succeed
            with ThreadPoolExecutor(16) as pool:
                statuses = [r.status_code for r in pool.map(lambda _: one(), range(64))]
            assert all(s in (201, 429) for s in statuses), statuses
            assert 201 in statuses
            assert one().status_code == 201
    finally:
        for request in held:
            request.sock.close()
        srv.stop()
