"""Slow and careless clients against a real server (issue 16, items 3, 11 and 12): a body that
trickles in holds no concurrency slot and gets 408 when late; a connection that sends no request
head is closed; a chunked body over the limit gets 413; an internal error's 500 names the request
id and carries it in X-Request-ID."""

from __future__ import annotations

import json
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import Server, start_server

BODY_TIMEOUT_S = 2.0
HEAD_TIMEOUT_S = 2.0
MAX_BODY = 100_000


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A segmentation server with short time limits for slow clients and a small body limit."""
    root = tmp_path_factory.mktemp("slow")
    env = {
        "ALTLAS_SERVICES": "segmentation",
        "ALTLAS_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
        "ALTLAS_HEADER_TIMEOUT_S": str(HEAD_TIMEOUT_S),
        "ALTLAS_MAX_BODY_BYTES": str(MAX_BODY),
    }
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        srv = start_server(root / "data", root / "server.log")
    yield srv
    srv.stop()


def _connect(server: Server) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=60)
    return sock


def _partial_segment(sock: socket.socket, length: int = 40) -> None:
    """The head of a POST /v1/segment and one byte of its body."""
    sock.sendall(
        b"POST /v1/segment HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n{" % length
    )


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (60 s at most)."""
    reply = b""
    while chunk := sock.recv(65536):
        reply += chunk
    return reply


def test_a_slow_body_gets_408_and_the_connection_is_closed(strict_server: Server) -> None:
    with _connect(strict_server) as sock:
        _partial_segment(sock)
        reply = _read_all(sock)  # the server ends the connection; before, it waited for ever
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), reply
    assert b"x-request-id: " in head.lower() and b"connection: close" in head.lower()
    error = json.loads(body)["error"]
    assert error["param"] == "body" and error["code"] == "request_timeout"


def test_connections_that_send_no_request_head_are_closed(strict_server: Server) -> None:
    with _connect(strict_server) as silent, _connect(strict_server) as trickling:
        trickling.sendall(b"POST /v1/segment HTTP/1.1\r\nHost: x\r\n")  # a head never finished
        assert _read_all(silent) == b""  # closed, without an answer
        assert _read_all(trickling) == b""
    with httpx.Client(base_url=strict_server.url, timeout=30) as client:  # others are served as ever
        assert client.post("/v1/segment", json={"command": "open notepad"}).status_code == 201


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(b"GET /healthz HTTP/1.1\nHost: x\n\n", id="bare-lf"),
        pytest.param(b"GET /healthz HTTP/1.1\rHost: x\r\r", id="bare-cr"),
        pytest.param(b"GET /healthz HTTP/1.1\r\nX-One: a\nX-Two: b\r\n\r\n", id="lf-in-a-header"),
    ],
)
def test_a_head_with_bare_line_ends_gets_400_and_is_closed(
    strict_server: Server, request_bytes: bytes
) -> None:
    """uvicorn's httptools parser (under the head-timeout protocol) refuses bare CR or LF line
    ends: 400 "Invalid HTTP request received." and the connection closed."""
    with _connect(strict_server) as sock:
        sock.sendall(request_bytes)
        answer = _read_all(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer[:300]
    assert b"\r\nconnection: close" in head and body == b"Invalid HTTP request received.", answer[:300]


def test_a_chunked_body_over_the_limit_gets_413(strict_server: Server) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"command": "'
        for _ in range(30):
            yield b"a" * 10_000
        yield b'"}'

    with httpx.Client(base_url=strict_server.url, timeout=30) as client:
        response = client.post("/v1/segment", content=chunks(), headers={"content-type": "application/json"})
        assert response.status_code == 413, response.text  # was 400 "error parsing the body"
        assert response.json()["error"]["param"] == "body"
        assert response.headers["x-request-id"]


def test_slow_bodies_take_no_slot_of_the_concurrency_cap(tmp_path: Path) -> None:
    """1,030 connections, each with half a body sent, and a normal request still answers."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ALTLAS_SERVICES", "segmentation")  # the cap is 1,024 concurrent requests
        srv = start_server(tmp_path / "data", tmp_path / "server.log")
    slow: list[socket.socket] = []
    try:
        for _ in range(1030):
            sock = _connect(srv)
            _partial_segment(sock)
            slow.append(sock)
        with httpx.Client(base_url=srv.url, timeout=30) as client:
            # every request body the server has taken in so far is in: the slow ones are read
            started = time.monotonic()
            response = client.post("/v1/segment", json={"command": "open notepad and take a screenshot"})
            took = time.monotonic() - started
            assert response.status_code == 201, response.text  # was 429 while the slow bodies were open
            assert took < 2.0, f"took {took:.2f} s"  # the bound, 100x a request's usual time
            health = client.get("/healthz")
            assert health.status_code == 200
    finally:
        for sock in slow:
            sock.close()
        srv.stop()


def test_an_internal_error_names_its_request_id(tmp_path: Path) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ALTLAS_SERVICES", "segmentation")
        srv = start_server(tmp_path / "data", tmp_path / "server.log")
    try:
        plans = srv.data_dir / "alt-files"  # the disk goes bad under the server: plans cannot be stored
        shutil.rmtree(plans)
        plans.write_text("not a folder")
        with httpx.Client(base_url=srv.url, timeout=30) as client:
            response = client.post(
                "/v1/segment", json={"command": "open notepad"}, headers={"x-request-id": "bad-disk-1"}
            )
        assert response.status_code == 500, response.text
        assert response.headers["x-request-id"] == "bad-disk-1"  # was missing
        error = response.json()["error"]
        assert error["code"] == "internal_error"
        assert "bad-disk-1" in error["message"] and "None" not in error["message"]
        assert "not a folder" not in response.text
    finally:
        srv.stop()
    lines = [json.loads(line) for line in srv.log_lines() if line.startswith("{")]
    traces = [line for line in lines if "exception" in line]
    logged = [
        line for line in lines if line.get("request_id") == "bad-disk-1" and line["message"] == "request"
    ]
    assert len(traces) == 1, traces  # the trace is logged once, under the request's id
    assert [line["status"] for line in logged] == [500]
