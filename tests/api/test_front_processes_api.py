"""`altlas serve --http-workers 2` on loopback, spoken to over raw sockets: embeddings requests
answered by the front processes; everything else (other routes, unusual requests, requests the
server process declines) handed over to the server process, mid-connection too; keep-alive and
pipelining across the handover; errors; clients that leave; many clients at once; a front process
that dies; shutdown.

Where an answer came from shows in its headers: the server process's uvicorn adds
`server: uvicorn`, a front process does not. The server runs with API keys, so the lane's key
check is exercised too, and with a body limit above the lanes' 64 KiB, so bodies in between go the
handover way and are still served."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from altlas.orchestrator.registry import default_registry_text

from ..embedding_cases import model_path
from .conftest import free_port

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from serving import SENTENCES, TINY_DIMENSION, make_tiny_model

pytestmark = pytest.mark.skipif(
    sys.platform != "linux", reason="front processes need Linux (SO_REUSEPORT, SCM_RIGHTS)"
)

MODEL = "tiny-embedder"
DIMENSION = TINY_DIMENSION
KEY = "front-test-key"
MAX_BODY = 200_000  # the server's body limit; a lane takes 64 KiB at most


# --- raw HTTP ------------------------------------------------------------------------------------


def http(
    method: str,
    target: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    key: str | None = KEY,
    version: str = "HTTP/1.1",
    chunked: bool = False,
) -> bytes:
    """One request's bytes: a JSON body (POST) with its Content-Length, or chunked."""
    head = [f"{method} {target} {version}", "Host: 127.0.0.1"]
    if key is not None:
        head.append(f"Authorization: Bearer {key}")
    if method == "POST":
        head.append("Content-Type: application/json")
        head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}")
        if chunked:
            body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    head += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def embed(text: str | list[str], *, model: str = MODEL, **options: Any) -> bytes:
    """POST /v1/embeddings for `text` (options as `http`'s)."""
    target = options.pop("target", "/v1/embeddings")
    return http("POST", target, orjson.dumps({"model": model, "input": text}), **options)


def get(target: str) -> bytes:
    return http("GET", target)


@dataclass
class Answer:
    status: int
    headers: dict[str, list[str]]
    body: bytes

    @property
    def by_front(self) -> bool:
        """Written by a front process: the server process's uvicorn adds `server: uvicorn`."""
        return "server" not in self.headers

    def json(self) -> Any:
        return orjson.loads(self.body)

    def header(self, name: str) -> str:
        (value,) = self.headers[name]
        return value

    def vector(self, index: int = 0) -> np.ndarray:
        data = self.json()["data"]
        assert data[index]["index"] == index
        return np.asarray(data[index]["embedding"], dtype=np.float64)


def parse_head(lines: list[bytes]) -> tuple[int, dict[str, list[str]]]:
    """(status, headers) of an answer's head lines (the status line first)."""
    assert lines and lines[0].startswith(b"HTTP/1.1 "), f"not an HTTP answer: {lines[:1]!r}"
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, value = line.decode("latin-1").split(":", 1)
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return int(lines[0].split()[1]), headers


class Connection:
    """A raw keep-alive connection: requests written as given, answers read one at a time."""

    def __init__(self, port: int, receive_buffer: int = 0, timeout: float = 30) -> None:
        self.sock = socket.socket()
        if receive_buffer:  # set before connecting: it bounds the window the server may fill
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(("127.0.0.1", port))
        except OSError:
            self.sock.close()
            raise
        self.file = self.sock.makefile("rb")

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def send(self, *requests: bytes) -> None:
        """All the requests in one write (pipelined when more than one)."""
        self.sock.sendall(b"".join(requests))

    def answer(self) -> Answer:
        while True:
            lines = []
            while (line := self.file.readline()) not in (b"\r\n", b""):
                lines.append(line.rstrip(b"\r\n"))
            status, headers = parse_head(lines)
            if status >= 200:  # skip a 100 Continue
                break
        body = self.file.read(int(headers["content-length"][0]))
        return Answer(status, headers, body)

    def ask(self, request: bytes) -> Answer:
        self.send(request)
        return self.answer()

    def closed_by_server(self) -> bool:
        return self.file.read() == b""


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    head = await reader.readuntil(b"\r\n\r\n")
    status, headers = parse_head(head[:-4].split(b"\r\n"))
    body = await reader.readexactly(int(headers["content-length"][0]))
    return Answer(status, headers, body)


# --- the server ----------------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first), None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def running(pid: int) -> bool:
    """Whether the process exists and is not a zombie."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


@dataclass
class Fronted:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connect(self) -> Connection:
        return Connection(self.port)

    def ask(self, request: bytes) -> Answer:
        """One request on a new connection."""
        with self.connect() as connection:
            return connection.ask(request)

    def fronts(self) -> list[int]:
        """The server's running front processes (its children running the front worker)."""
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            fields = _stat(int(entry))
            if fields is None or fields[0] == "Z" or int(fields[1]) != self.process.pid:
                continue
            try:
                command = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"altlas.api.front.worker" in command:
                found.append(int(entry))
        return sorted(found)

    def listeners(self) -> set[str]:
        """Inodes of the sockets listening on the public port (a front process has one each; the
        server process none)."""
        port = f":{self.port:04X}"
        rows = [row.split() for row in Path("/proc/net/tcp").read_text().splitlines()[1:]]
        return {row[9] for row in rows if row[1].endswith(port) and row[3] == "0A"}

    @staticmethod
    def sockets_of(pid: int) -> set[str]:
        """Inodes of the sockets a process holds."""
        links = (os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd"))
        return {link[8:-1] for link in links if link.startswith("socket:[")}

    def metric(self, sample: str, **labels: str) -> float:
        """The sum of a /metrics sample over the series with these labels (0 if none)."""
        answer = self.ask(get("/metrics"))
        assert answer.status == 200 and not answer.by_front, answer.status
        return sum(
            value
            for family in text_string_to_metric_families(answer.body.decode())
            for name, series, value, *_ in family.samples
            if name == sample and labels.items() <= series.items()
        )

    def unsent(self, connection: Connection) -> int:
        """Bytes the server's end of `connection` holds in its kernel send queue."""
        return self._queues(connection)[0]

    def unread(self, connection: Connection) -> int:
        """Bytes the server's end of `connection` has received and its process not yet read."""
        return self._queues(connection)[1]

    def _queues(self, connection: Connection) -> tuple[int, int]:
        local = f":{self.port:04X}"
        remote = f":{connection.sock.getsockname()[1]:04X}"
        for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = row.split()
            if fields[1].endswith(local) and fields[2].endswith(remote):
                sending, receiving = fields[4].split(":")
                return int(sending, 16), int(receiving, 16)
        raise AssertionError("no such connection")

    def wait_logged(self, request_id: str, timeout: float = 120) -> int:
        """The status the server logged for the request, once it has (its answer is on its way)."""
        deadline = time.monotonic() + timeout
        while True:
            for record in self.log_records():
                if record.get("message") == "request" and record.get("request_id") == request_id:
                    return int(record["status"])
            assert time.monotonic() < deadline, f"{request_id} was not logged"
            time.sleep(0.05)

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("{"):
                records.append(orjson.loads(line))
        return records


@contextmanager
def fronted_server(
    root: Path, *, workers: int = 2, env: dict[str, str | None] | None = None
) -> Iterator[Fronted]:
    """`altlas serve --http-workers WORKERS` with one tiny embedding model (CPU) in its registry,
    loaded; API keys on; a 10 ms batch window (a client that leaves right after sending its request
    is gone before its batch is gathered). `env` changes the server's environment (None: unset)."""
    data = root / "data"
    data.mkdir()
    (entry,) = [m for m in yaml.safe_load(default_registry_text())["models"] if m["task"] == "embedding"]
    entry.update(
        name=MODEL,
        versions={"1": str(make_tiny_model(root / "tiny", model_path()))},
        active="1",
        device="cpu",
    )
    (data / "models.yaml").write_text(yaml.safe_dump({"models": [entry]}))
    port, log_path = free_port(), root / "server.log"
    server_env = {
        **os.environ, "ALTLAS_SERVICES": "segmentation,orchestrator", "ALTLAS_DEVICE": "cpu",
        "ALTLAS_API_KEYS": KEY, "ALTLAS_MAX_BODY_BYTES": str(MAX_BODY), "ALTLAS_LOG_LEVEL": "INFO",
        "ALTLAS_BATCH_MAX_WAIT_MS": "10", "HF_HUB_OFFLINE": "1",
    }  # fmt: skip
    for name, value in (env or {}).items():
        if value is None:
            server_env.pop(name, None)
        else:
            server_env[name] = value
    command = [sys.executable, "-m", "altlas", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--data-dir", str(data), "--http-workers", str(workers)]  # fmt: skip
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=server_env)
    server = Fronted(port, process, log_path)
    try:
        deadline = time.monotonic() + 600  # generous: only a server that never starts fails here
        while True:
            assert process.poll() is None, f"the server exited:\n{log_path.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"the server did not start:\n{log_path.read_text()[-3000:]}"
            try:
                status = server.ask(get(f"/v1/models/{MODEL}")).json()["altlas"]["status"]
            except OSError:
                status = "not listening"
            # every front process serves (the server has said so), the model is loaded
            if status == "loaded" and f"through {workers} front processes" in log_path.read_text():
                break
            assert status != "failed", log_path.read_text()[-3000:]
            time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def fronted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fronted]:
    """The module's server, for the tests that leave it as they found it."""
    with fronted_server(tmp_path_factory.mktemp("fronted")) as server:
        yield server


@pytest.fixture
def own_fronted(tmp_path: Path) -> Iterator[Fronted]:
    """A server of its own, for a test that kills one of its processes."""
    with fronted_server(tmp_path) as server:
        yield server


@pytest.fixture(scope="module")
def references(fronted: Fronted) -> dict[str, np.ndarray]:
    return reference_vectors(fronted)


def reference_vectors(fronted: Fronted) -> dict[str, np.ndarray]:
    """Each sentence's vector as the server process answers it (chunked: always handed over)."""
    vectors = {}
    with fronted.connect() as connection:
        for text in SENTENCES:
            answer = connection.ask(embed(text, chunked=True))
            assert answer.status == 200 and not answer.by_front, (answer.status, answer.headers)
            vectors[text] = answer.vector()
    return vectors


def assert_embedding(answer: Answer, expected: np.ndarray, *, by_front: bool, atol: float = 1e-5) -> None:
    assert answer.status == 200, (answer.status, answer.body[:300])
    assert answer.by_front == by_front, answer.headers
    vector = answer.vector()
    assert vector.shape == (DIMENSION,)
    np.testing.assert_allclose(vector, expected, atol=atol)


# --- tests ---------------------------------------------------------------------------------------


def test_an_embedding_from_a_front_equals_the_server_process_answer(fronted: Fronted) -> None:
    """A front answers POST /v1/embeddings itself, with the client's request id or a fresh one,
    and its vector is the one the server process gives for the same text (chunked, or as the
    first of 40 texts: both handed over)."""
    text = SENTENCES[0]
    with fronted.connect() as connection:
        front = connection.ask(embed(text, headers={"X-Request-ID": "front-test-1"}))
        assert front.status == 200 and front.by_front, front.headers
        assert front.header("x-request-id") == "front-test-1"
        assert front.header("content-type") == "application/json" and "date" in front.headers
        body = front.json()
        assert body["model"] == MODEL and len(body["data"]) == 1 and body["usage"]["prompt_tokens"] > 0
        vector = front.vector()
        assert vector.shape == (DIMENSION,)
        np.testing.assert_allclose(np.linalg.norm(vector), 1.0, atol=1e-4)
        chunked = connection.ask(embed(text, chunked=True, headers={"X-Request-ID": "chunked-1"}))
        assert_embedding(chunked, vector, by_front=False)
        assert chunked.header("x-request-id") == "chunked-1"
    many = fronted.ask(embed([text] + [f"other text {i}" for i in range(39)]))
    assert_embedding(many, vector, by_front=False)
    assert len(many.json()["data"]) == 40
    fresh = fronted.ask(embed(text))
    assert fresh.by_front and re.fullmatch(r"[0-9a-f]{32}", fresh.header("x-request-id"))


def test_keep_alive_across_the_handover(fronted: Fronted, references: dict[str, np.ndarray]) -> None:
    """Lane requests on one connection answered by a front; a GET on it hands the connection over
    mid-way; from then on the server process serves it, lane requests included."""
    with fronted.connect() as connection:
        for i, text in enumerate(SENTENCES[:3]):
            answer = connection.ask(embed(text, headers={"X-Request-ID": f"keep-{i}"}))
            assert_embedding(answer, references[text], by_front=True)
            assert answer.header("x-request-id") == f"keep-{i}"
        health = connection.ask(get("/healthz"))
        assert health.status == 200 and health.json() == {"status": "ok"} and not health.by_front
        for text in SENTENCES[3:5]:
            assert_embedding(connection.ask(embed(text)), references[text], by_front=False)
        assert connection.ask(get("/healthz")).status == 200


def test_pipelined_requests_across_the_handover_are_answered_in_order(
    fronted: Fronted, references: dict[str, np.ndarray]
) -> None:
    """Requests written in one go, lane requests then a GET then a lane request: the front answers
    the first two, hands the rest over unread, and all four answers come back in order."""
    first, second, last = SENTENCES[1], SENTENCES[2], SENTENCES[3]
    with fronted.connect() as connection:
        connection.send(embed(first), get("/healthz"))
        assert_embedding(connection.answer(), references[first], by_front=True)
        assert connection.answer().json() == {"status": "ok"}
    with fronted.connect() as connection:
        connection.send(embed(first), embed(second), get("/healthz"), embed(last))
        assert_embedding(connection.answer(), references[first], by_front=True)
        assert_embedding(connection.answer(), references[second], by_front=True)
        health = connection.answer()
        assert health.status == 200 and health.json() == {"status": "ok"}
        assert_embedding(connection.answer(), references[last], by_front=False)


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(embed(SENTENCES[4], target="/v1/embeddings?user=1"), id="query-string"),
        pytest.param(embed(SENTENCES[4], version="HTTP/1.0"), id="http-1.0"),
        pytest.param(embed(SENTENCES[4], headers={"Expect": "100-continue"}), id="expect-continue"),
    ],
)
def test_unusual_lane_requests_are_handed_over_and_served(
    fronted: Fronted, references: dict[str, np.ndarray], request_bytes: bytes
) -> None:
    """What a front does not parse itself goes to the server process whole and is answered there."""
    assert_embedding(fronted.ask(request_bytes), references[SENTENCES[4]], by_front=False)


def test_a_long_head_arriving_in_pieces_is_handed_over(
    fronted: Fronted, references: dict[str, np.ndarray]
) -> None:
    """A request whose first 17 KB hold no end of its head: the front hands it over unparsed."""
    request = embed(SENTENCES[4], headers={"X-Long": "x" * 20_000})
    with fronted.connect() as connection:
        connection.send(request[:17_000])
        deadline = time.monotonic() + 120
        while fronted.unread(connection):  # the front has read the first piece alone
            assert time.monotonic() < deadline, "the front did not read the first piece"
            time.sleep(0.01)
        connection.send(request[17_000:])
        assert_embedding(connection.answer(), references[SENTENCES[4]], by_front=False)


def test_a_body_between_the_lane_limit_and_the_servers_is_served(fronted: Fronted) -> None:
    """Over the 64 KiB a front passes on, within the server's limit: handed over, answered 200."""
    text = "hava durumu " * 9_000  # about 108 KB
    answer = fronted.ask(embed(text))
    assert answer.status == 200 and not answer.by_front and answer.vector().shape == (DIMENSION,)


def _body(model: str = MODEL, text: Any = "x") -> bytes:
    return orjson.dumps({"model": model, "input": text})


# case -> (request body, API key, status, error code, error param)
ERRORS: dict[str, tuple[bytes, str | None, int, str, str]] = {
    "invalid-json": (_body()[:-1], KEY, 400, "invalid_json", "body"),
    "not-an-object": (b'["not", "an", "object"]', KEY, 422, "invalid_type", "body"),
    "unknown-model": (_body("nope"), KEY, 404, "not_found", "model"),
    "empty-input": (_body(text=[]), KEY, 422, "invalid_value", "input"),
    "over-the-limit": (_body(text="x" * 300_000), KEY, 413, "too_large", "body"),
    "no-key": (_body(), None, 401, "invalid_api_key", "authorization"),
    "wrong-key": (_body(), "wrong", 401, "invalid_api_key", "authorization"),
}


@pytest.mark.parametrize(("body", "key", "status", "code", "param"), list(ERRORS.values()), ids=list(ERRORS))
def test_errors_are_worded_as_by_the_server_process(
    fronted: Fronted, body: bytes, key: str | None, status: int, code: str, param: str
) -> None:
    """An error answer through a front (its own, or the server process's after a handover) is the
    one the server process gives the same request with a query string (which a front always hands
    over): status, body and request id; never a 500."""
    plain = fronted.ask(http("POST", "/v1/embeddings", body, {"X-Request-ID": "error-1"}, key=key))
    served = fronted.ask(http("POST", "/v1/embeddings?twin=1", body, {"X-Request-ID": "error-1"}, key=key))
    assert not served.by_front
    assert plain.status == status, (plain.status, plain.body)
    error = plain.json()["error"]
    assert (error["code"], error["param"]) == (code, param), error
    assert plain.header("x-request-id") == "error-1"
    assert (served.status, served.json()) == (plain.status, plain.json())
    if status == 401:
        assert plain.header("www-authenticate") == "Bearer"
    with fronted.connect() as connection:  # the server is fine afterwards
        assert connection.ask(embed(SENTENCES[0])).status == 200


def test_other_routes_are_served_through_the_handover(fronted: Fronted) -> None:
    """GET /healthz, GET /metrics (which counts the fronts' lane requests) and POST /v1/segment,
    all on connections a front accepted and handed over."""
    health = fronted.ask(get("/healthz"))
    assert health.status == 200 and health.json() == {"status": "ok"} and not health.by_front
    lanes = {"route": "/v1/embeddings", "method": "POST", "status": "200"}
    before = fronted.metric("altlas_http_requests_total", **lanes)
    for i in range(5):
        assert fronted.ask(embed(f"counted {i}")).by_front
    assert fronted.metric("altlas_http_requests_total", **lanes) == before + 5
    with fronted.connect() as connection:
        command = orjson.dumps({"command": "Chrome'u aç ve hava durumunu ara"})
        segmented = connection.ask(http("POST", "/v1/segment", command))
        assert segmented.status == 201 and not segmented.by_front, segmented.body[:300]
        plan = segmented.json()
        assert plan["command"] == "Chrome'u aç ve hava durumunu ara" and plan["segments"]
        stored = connection.ask(get(segmented.header("location")))
        assert stored.status == 200 and stored.json()["id"] == plan["id"]


def test_a_slow_reader_gets_every_answer_in_order_across_the_handover(fronted: Fronted) -> None:
    """A client that reads nothing while the answers to its pipelined lane requests pile up past
    what the sockets hold, asks GET /healthz (the front must hand the connection over only once
    its answers are out), then sends more while the front still holds answers: once it reads,
    every answer is there, in order, none lost, none doubled."""
    texts = [f"slow reader text {i}" for i in range(32)]
    count = 300  # 32 vectors an answer, about 15 KB: 4.5 MB in all, more than the kernel buffers hold
    with Connection(fronted.port, receive_buffer=4096, timeout=15) as connection:
        connection.send(*(embed(texts, headers={"X-Request-ID": f"slow-{i}"}) for i in range(count)))
        connection.send(get("/healthz"))
        assert fronted.wait_logged(f"slow-{count - 1}") == 200  # the front now holds the GET
        assert fronted.unsent(connection) > 1_000_000
        time.sleep(0.05)
        connection.send(embed(texts[:1], headers={"X-Request-ID": "late-1"}))
        time.sleep(0.1)
        connection.send(embed(texts[:1], headers={"X-Request-ID": "late-2"}), get("/healthz"))
        seen = []
        for _ in range(count + 4):
            answer = connection.answer()
            assert answer.status == 200, (answer.status, answer.body[:200])
            request_id = answer.header("x-request-id")
            seen.append(request_id if request_id.startswith(("slow-", "late-")) else "healthz")
            by = "a front" if answer.by_front else "the server process"
            assert answer.by_front == request_id.startswith("slow-"), f"{seen[-3:]}: the last by {by}"
    assert seen == [f"slow-{i}" for i in range(count)] + ["healthz", "late-1", "late-2", "healthz"]


def test_clients_that_leave_mid_request_do_not_break_the_server(
    fronted: Fronted, references: dict[str, np.ndarray]
) -> None:
    """Clients that close their connection while their lane request waits for its batch: the server
    process closes each request in its books as a 499 (a 200 only if it was answered first), and
    serves on. Rounds of 8 such clients until 4 were 499s (a busy machine may answer some first)."""
    ran = fronted.metric("altlas_model_batch_requests_sum", model=MODEL)  # requests the model ran
    statuses: list[int] = []
    deadline = time.monotonic() + 600
    while statuses.count(499) < 4:
        assert time.monotonic() < deadline, statuses
        ids = [f"leaver-{len(statuses) + i}" for i in range(8)]
        for request_id in ids:
            connection = fronted.connect()
            connection.send(embed(SENTENCES[5], headers={"X-Request-ID": request_id}))
            connection.close()
        statuses += [fronted.wait_logged(request_id) for request_id in ids]
    with fronted.connect() as connection:
        answer = connection.ask(embed(SENTENCES[5]))
        assert_embedding(answer, references[SENTENCES[5]], by_front=True)
    assert set(statuses) <= {200, 499}, statuses
    # the requests whose clients left were never run, and hold no place in the model's queue
    assert fronted.metric("altlas_model_batch_requests_sum", model=MODEL) == ran + 1 + statuses.count(200)
    assert fronted.metric("altlas_model_queue_depth", model=MODEL) == 0


def test_many_concurrent_clients(fronted: Fronted, references: dict[str, np.ndarray]) -> None:
    """64 clients, each 20 requests on its own keep-alive connection: all answered by the fronts,
    each with its own request id and its own text's vector."""
    clients, requests = 64, 20

    async def client(number: int) -> list[tuple[str, str, Answer]]:
        reader, writer = await asyncio.open_connection("127.0.0.1", fronted.port)
        answers = []
        try:
            for i in range(requests):
                text, request_id = SENTENCES[(number + i) % len(SENTENCES)], f"c{number}-{i}"
                writer.write(embed(text, headers={"X-Request-ID": request_id}))
                answers.append((text, request_id, await read_answer(reader)))
        finally:
            writer.close()
        return answers

    async def everyone() -> list[list[tuple[str, str, Answer]]]:
        return await asyncio.wait_for(asyncio.gather(*(client(n) for n in range(clients))), 120)

    results = asyncio.run(everyone())
    assert sum(len(r) for r in results) == clients * requests
    for answers in results:
        for text, request_id, answer in answers:
            assert answer.header("x-request-id") == request_id
            assert_embedding(answer, references[text], by_front=True, atol=1e-4)


def test_a_front_closes_a_connection_idle_past_the_keep_alive_time(
    fronted: Fronted, references: dict[str, np.ndarray]
) -> None:
    """A keep-alive connection left idle after its answer is closed by the front, as uvicorn
    closes its own after its keep-alive time (5 s): not while a request is still coming in (a
    pause past that time mid-body), never sooner than that time after the answer. No upper
    bound: a busy machine closes it later, and only a connection never closed fails."""
    text, keep_alive_s = SENTENCES[0], 5.0
    request = embed(text)
    with fronted.connect() as connection:
        connection.send(request[:-10])
        time.sleep(keep_alive_s + 2)  # at least this long: a busy machine only makes it longer
        connection.send(request[-10:])
        last_byte_sent = time.monotonic()
        assert_embedding(connection.answer(), references[text], by_front=True)
        connection.sock.settimeout(600)
        assert connection.sock.recv(1) == b""  # the front closed it
        # its idle time began with the answer, after the request's last byte went out
        assert time.monotonic() - last_byte_sent >= keep_alive_s


def test_a_killed_front_process_is_replaced(own_fronted: Fronted) -> None:
    """SIGKILL one front process: once its listening socket is gone (connections queued on it die
    with it), every request succeeds on the other, and the server starts another front process
    that listens on the port."""
    fronted, references = own_fronted, reference_vectors(own_fronted)
    fronts = fronted.fronts()
    listening = fronted.listeners()
    assert len(fronts) == 2 and len(listening) == 2, (fronts, listening)
    victim = fronts[0]
    (victims_socket,) = listening & fronted.sockets_of(victim)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while victims_socket in fronted.listeners():  # closed once all its threads are gone
        assert time.monotonic() < deadline, "the killed front process still listens"
        time.sleep(0.002)
    text = SENTENCES[6]
    served = 0
    deadline = time.monotonic() + 120
    while True:
        answer = fronted.ask(embed(text))  # a new connection each: the kernel picks a listener
        assert_embedding(answer, references[text], by_front=True)
        served += 1
        now = fronted.fronts()
        if len(now) == 2 and victim not in now and len(fronted.listeners()) == 2:
            break
        assert time.monotonic() < deadline, f"no new front process: {now}, {fronted.listeners()} listening"
        time.sleep(0.02)
    for _ in range(20):  # both fronts serve
        assert_embedding(fronted.ask(embed(text)), references[text], by_front=True)
    assert fronted.process.poll() is None and served > 0


def test_sigterm_stops_the_server_and_every_front_process(own_fronted: Fronted) -> None:
    """SIGTERM: requests sent just before it are answered, then the connections are closed; the
    server exits cleanly; no front process is left, their sockets' folder is removed, the port is
    closed; nothing was logged as an error all along."""
    fronted, references = own_fronted, reference_vectors(own_fronted)
    fronts = fronted.fronts()
    assert len(fronts) == 2
    command = Path(f"/proc/{fronts[0]}/cmdline").read_bytes().decode().split("\0")
    folder = Path(command[command.index("--lane-socket") + 1]).parent
    assert folder.is_dir()
    connections = [fronted.connect() for _ in range(len(SENTENCES))]
    for connection, text in zip(connections, SENTENCES, strict=True):
        connection.send(embed(text))
    fronted.process.send_signal(signal.SIGTERM)
    for connection, text in zip(connections, SENTENCES, strict=True):
        with connection:
            assert_embedding(connection.answer(), references[text], by_front=True)
            assert connection.closed_by_server()
    # uvicorn raises the signal it caught again once shut down: killed by SIGTERM, after a clean exit
    exit_code = fronted.process.wait(timeout=120)
    assert exit_code in (0, -signal.SIGTERM), fronted.log_path.read_text()[-3000:]
    assert "Finished server process" in fronted.log_path.read_text()
    deadline = time.monotonic() + 60
    while any(running(pid) for pid in fronts):
        assert time.monotonic() < deadline, f"front processes left running: {fronts}"
        time.sleep(0.05)
    assert not folder.exists()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", fronted.port), timeout=5).close()
    log = fronted.log_path.read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in log, log[-3000:]
    errors = [r for r in fronted.log_records() if r.get("level") in ("error", "critical")]
    assert not errors, errors
