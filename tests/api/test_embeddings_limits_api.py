"""Large embedding requests on a real server (all-MiniLM-L6-v2 on the CPU): 4,096 long texts run
in pieces that take turns with other requests, a client that leaves stops its request's work (on
/v1/embeddings and /v1/embed alike: one model, leased from the model manager, one batcher), the
server's memory stays bounded; and the list inputs of /v1/search are bounded (issue 16, item 5).

The server is this module's own, on the CPU whatever the host has (on a GPU the whole request
takes a fraction of a second, too short to be overtaken or left), serving the embedding model only.
"""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from altlas.orchestrator.registry import default_registry_text

from .conftest import Server, peak_rss_growth, start_server, wait_until

EMBEDDER = "all-minilm-l6-v2"
# 4,096 texts of 256 tokens each (the model's longest: the words run past it): on a 2-core CPU
# the whole request takes minutes, so every test leaves long before it could end.
LONG_TEXTS = [f"text {i}: " + "word " * 300 for i in range(4096)]
TOKENS_OF_ALL = 4096 * 256


def model_metric(client: httpx.Client, family_name: str) -> float:
    """The embedding model's sample(s) of a /metrics family, summed over devices."""
    families = text_string_to_metric_families(client.get("/metrics").text)
    return sum(
        sample.value
        for family in families
        if family.name == family_name
        for sample in family.samples
        if sample.labels.get("model") == EMBEDDER and not sample.name.endswith("_created")
    )


def real_tokens(client: httpx.Client) -> float:
    """Tokens the model has computed since the server started."""
    return model_metric(client, "altlas_model_real_tokens")


def in_flight(client: httpx.Client) -> float:
    """The model's requests queued or running (pieces still to run included)."""
    return model_metric(client, "altlas_model_queue_depth")


def embedding_server(root: Path) -> Server:
    """A server on the CPU, its registry the embedding model alone, and a request time limit no
    test reaches (what stops a request's work here is its client leaving)."""
    registry = yaml.safe_load(default_registry_text())
    registry["models"] = [m for m in registry["models"] if m["name"] == EMBEDDER]
    (root / "data").mkdir()
    (root / "data" / "models.yaml").write_text(yaml.safe_dump(registry))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ALTLAS_DEVICE", "cpu")
        env.setenv("ALTLAS_REQUEST_TIMEOUT_S", "900")
        return start_server(root / "data", root / "server.log")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = embedding_server(tmp_path_factory.mktemp("embeddings-limits"))
    yield srv
    srv.stop()


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    """A client of the module's server, its embedding model loaded and idle."""
    with server.client() as c:
        c.timeout = httpx.Timeout(300)
        warm = c.post("/v1/embeddings", json={"model": EMBEDDER, "input": ["warm up"]})
        assert warm.status_code == 200, warm.text
        wait_until(lambda: in_flight(c) == 0)
        yield c


class RawRequest:
    """A POST sent on a socket of its own, so that the test decides when its client leaves."""

    def __init__(self, server: Server, path: str, body: object) -> None:
        url = urlsplit(server.url)
        payload = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        )
        self.sock = socket.create_connection((url.hostname, url.port), timeout=60)
        self.sock.sendall(head.encode() + payload)

    def answer_so_far(self) -> bytes:
        readable, _, _ = select.select([self.sock], [], [], 0)
        return self.sock.recv(65536) if readable else b""

    def leave(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawRequest:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.leave()


def pieces_ran(client: httpx.Client, before: float, pieces: int) -> None:
    """Wait until the model has computed `pieces` pieces' worth of tokens (4,096 each) since `before`."""
    wait_until(lambda: real_tokens(client) >= before + pieces * 4096)


def big_request(server: Server) -> RawRequest:
    return RawRequest(server, "/v1/embeddings", {"model": EMBEDDER, "input": LONG_TEXTS})


# The routes that embed texts, both served by the registry's model: its body for some texts, and
# how many vectors an answer holds.
ROUTES: dict[str, tuple[Callable[[list[str]], object], Callable[[dict[str, Any]], int]]] = {
    "/v1/embeddings": (lambda texts: {"model": EMBEDDER, "input": texts}, lambda answer: len(answer["data"])),
    "/v1/embed": (lambda texts: {"texts": texts}, lambda answer: int(answer["count"])),
}


@pytest.mark.parametrize("path", list(ROUTES))
def test_a_small_request_is_served_while_a_big_one_runs_and_work_stops_when_its_client_leaves(
    server: Server, client: httpx.Client, path: str
) -> None:
    body, vectors = ROUTES[path]
    before = real_tokens(client)
    with RawRequest(server, path, body(LONG_TEXTS)) as big:
        pieces_ran(client, before, 2)
        # One sentence while the big request runs: served between its pieces, not minutes later,
        # after all of them.
        small = client.post(path, json=body(["open the browser"]))
        assert small.status_code == 200, small.text
        assert vectors(small.json()) == 1
        assert not big.answer_so_far().startswith(b"HTTP/1.1 200")  # the big one is far from done
    # Its client left: its pieces not yet run are dropped, the model goes idle long before all
    # of them could have run.
    wait_until(lambda: in_flight(client) == 0)
    assert real_tokens(client) - before < TOKENS_OF_ALL / 2
    again = client.post(path, json=body(["still serving"]))
    assert again.status_code == 200, again.text


def test_memory_while_serving_4096_long_texts_stays_under_256_mb(
    server: Server, client: httpx.Client
) -> None:
    def serve_some_and_leave() -> None:
        before = real_tokens(client)
        with big_request(server):
            pieces_ran(client, before, 4)  # the steady state: pieces parsed, run and kept
        wait_until(lambda: in_flight(client) == 0)

    growth, _ = peak_rss_growth(server.pids(), serve_some_and_leave)
    assert growth < 256 * 2**20, f"peak RSS grew by {growth / 2**20:.0f} MB"


def test_a_cancelled_embed_job_stops_its_work(client: httpx.Client) -> None:
    before = real_tokens(client)
    texts = LONG_TEXTS[:1000]  # one of the job's batches: minutes of work on a 2-core CPU
    submitted = client.post("/v1/jobs", json={"kind": "embed", "input": {"model": EMBEDDER, "input": texts}})
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    pieces_ran(client, before, 2)  # it runs
    assert client.delete(f"/v1/jobs/{job_id}").status_code in (200, 202)
    wait_until(lambda: client.get(f"/v1/jobs/{job_id}").json()["status"] == "cancelled")
    wait_until(lambda: in_flight(client) == 0)
    assert real_tokens(client) - before < len(texts) * 256 / 2  # the rest of its batch never ran


def test_adding_documents_stops_when_the_client_leaves(server: Server, client: httpx.Client) -> None:
    before = real_tokens(client)
    documents = [{"id": str(i), "text": text} for i, text in enumerate(LONG_TEXTS)]
    with RawRequest(server, "/v1/search/indexes/left/documents", {"documents": documents}):
        pieces_ran(client, before, 2)
    wait_until(lambda: in_flight(client) == 0)  # the rest of its pieces dropped
    assert real_tokens(client) - before < TOKENS_OF_ALL / 2
    assert "left" not in {c["name"] for c in client.get("/v1/search/indexes").json()["data"]}


def test_search_bounds_its_queries_and_results(client: httpx.Client) -> None:
    cases = [
        ({"index": "any", "query": [f"query {i}" for i in range(6000)]}, "query"),
        ({"index": "any", "query": [f"query {i}" for i in range(1024)], "k": 1024}, "k"),
    ]
    for body, field in cases:
        response = client.post("/v1/search", json=body)
        assert response.status_code in (413, 422), response.text
        error = response.json()["error"]
        assert error["param"] == field and "limit" in error["message"], error
    response = client.post("/v1/search/indexes/any/remove", json={"ids": [str(i) for i in range(100_001)]})
    assert response.status_code in (413, 422) and response.json()["error"]["param"] == "ids", response.text
    job = client.post("/v1/jobs", json={"kind": "search", "input": {"index": "any", "query": ["q"] * 6000}})
    assert job.status_code in (413, 422) and job.json()["error"]["param"] == "input.query", job.text
