"""Liveness and readiness probes: GET and HEAD (issue 16, item 15: HEAD answered 405)."""

from __future__ import annotations

import socket

import httpx
import pytest

from .conftest import Server


def _exchange(server: Server, request: bytes) -> bytes:
    """Everything the server sends back on one connection for `request`, until it closes."""
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        received = []
        while chunk := sock.recv(65536):
            received.append(chunk)
    return b"".join(received)


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_head_answers_as_get_does_without_a_body(server: Server, path: str) -> None:
    raw = _exchange(server, f"HEAD {path} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n".encode())
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    assert status_line == "HTTP/1.1 200 OK", raw
    assert body == b"", raw
    headers = {name.lower(): value for name, value in (line.split(": ", 1) for line in lines)}
    got = httpx.get(server.url + path, timeout=30)
    assert got.status_code == 200
    # the headers of the GET answer: its type, and the length its body would have
    assert headers["content-type"] == got.headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(got.content) > 0
