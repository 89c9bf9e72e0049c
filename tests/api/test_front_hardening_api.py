"""Front processes (`altlas serve --http-workers 1`) against malformed, incomplete and flooding
clients, over raw sockets: a head with bare line ends gets uvicorn's own 400 and is closed; a head
not complete within the header timeout is closed; a client that pipelines bytes while its lane
request runs does not grow the front's memory, and the server keeps answering others.

The server runs with a 3 s batch window, so an embeddings request is in flight for 3 s at least
(its batch waits that long for others), and a 2 s header timeout."""

from __future__ import annotations

import select
import socket
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest

from .conftest import peak_rss_growth
from .test_front_processes_api import Fronted, fronted_server

pytestmark = pytest.mark.skipif(
    sys.platform != "linux", reason="front processes need Linux (SO_REUSEPORT, SCM_RIGHTS)"
)

MODEL = "tiny-embedder"
HEADER_TIMEOUT_S = 2
EMBED = orjson.dumps({"model": MODEL, "input": "open the browser"})


def embed_request(extra_head: bytes = b"") -> bytes:
    return (
        b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + extra_head
        + b"Content-Length: %d\r\n\r\n%s" % (len(EMBED), EMBED)
    )


def connect(fronted: Fronted) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", fronted.port))
    sock.settimeout(30)
    return sock


def read_to_end(sock: socket.socket) -> bytes:
    """Everything the server writes until it closes the connection (socket.timeout if it does not)."""
    data = b""
    while chunk := sock.recv(65_536):
        data += chunk
    return data


@pytest.fixture(scope="module")
def fronted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fronted]:
    """One front process, no API keys, a 3 s batch window and a 2 s header timeout."""
    env: dict[str, str | None] = {
        "ALTLAS_API_KEYS": None, "ALTLAS_MAX_BODY_BYTES": None, "ALTLAS_BATCH_MAX_WAIT_MS": "3000",
        "ALTLAS_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
    }  # fmt: skip
    with fronted_server(tmp_path_factory.mktemp("front-hardening"), workers=1, env=env) as server:
        yield server


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(b"GET /healthz HTTP/1.1\nHost: x\n\n", id="bare-lf"),
        pytest.param(b"GET /healthz HTTP/1.1\nHost: x\n", id="bare-lf-head-incomplete"),
        pytest.param(b"GET /healthz HTTP/1.1\rHost: x\r\r", id="bare-cr"),
        pytest.param(embed_request(b"X-One: a\nX-Two: b\r\n"), id="lane-request-lf-in-a-header"),
    ],
)
def test_a_head_with_bare_line_ends_gets_uvicorns_400_and_is_closed(
    fronted: Fronted, request_bytes: bytes
) -> None:
    """uvicorn, without fronts, answers these bytes 400 "Invalid HTTP request received." and
    closes: so does a server with fronts (its uvicorn answers them)."""
    with connect(fronted) as sock:
        sock.sendall(request_bytes)
        answer = read_to_end(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer[:300]
    assert b"\r\nconnection: close" in head and body == b"Invalid HTTP request received.", answer[:300]


def test_a_head_not_complete_within_the_header_timeout_is_closed(fronted: Fronted) -> None:
    """A client trickling a head that never ends (a header line every 0.2 s) is closed, without an
    answer, once the header timeout has passed since it connected."""
    with connect(fronted) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        deadline = time.monotonic() + 30 + HEADER_TIMEOUT_S
        received = None
        while received is None and time.monotonic() < deadline:
            try:
                sock.sendall(b"X-Slow: a\r\n")
                if select.select([sock], [], [], 0.2)[0]:
                    received = sock.recv(65_536)
            except (BrokenPipeError, ConnectionResetError):
                received = b""
        assert received == b"", "still open" if received is None else received[:300]
    with httpx.Client(base_url=fronted.url, timeout=30) as client:  # others are served meanwhile
        assert client.get("/healthz").status_code == 200


def test_a_client_pipelining_during_a_lane_request_does_not_grow_the_front(fronted: Fronted) -> None:
    """A lane request, then 128 MB written behind it without reading answers, while the request
    waits for its batch: the front stops reading (its memory stays within a few MB) and answers
    another client's lane request meanwhile; the flooding connection ends (its bytes are no HTTP
    request: uvicorn answers 400 and closes it)."""
    outcome: list[object] = []

    def flood() -> None:
        chunk = b"x" * (1 << 20)
        try:
            with connect(fronted) as sock:
                sock.sendall(embed_request())
                for _ in range(128):
                    sock.sendall(chunk)
                outcome.append(read_to_end(sock))
        except OSError as exc:  # the server closed the connection, with unread bytes
            outcome.append(exc)

    def action() -> None:
        flooder = threading.Thread(target=flood)
        flooder.start()
        try:
            with httpx.Client(base_url=fronted.url, timeout=30) as client:
                answer = client.post(
                    "/v1/embeddings", content=EMBED, headers={"Content-Type": "application/json"}
                )
                assert answer.status_code == 200, answer.text
                assert "server" not in answer.headers  # a front answered it (uvicorn adds `server`)
        finally:
            flooder.join(60)
        assert not flooder.is_alive(), "the flooding connection is still open"

    (front,) = fronted.fronts()
    growth, _ = peak_rss_growth(front, action)
    assert growth < 32 << 20, f"the front grew by {growth >> 20} MB"
    (result,) = outcome
    assert isinstance(result, OSError) or b"HTTP/1.1 400 " in result, result
