"""An engine process killed under load (issue 20, acceptance 3): the requests it was serving get
503 (engine_unavailable, Retry-After), the server starts the engine again, later requests are
served, and a durable job whose request the dead engine held is run again and completes.

The server is this module's own, on the CPU (a request of 4,096 long texts takes minutes there:
it is surely in flight when the engine dies), serving the embedding model only.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .conftest import Server, wait_until
from .test_embeddings_limits_api import (
    EMBEDDER,
    LONG_TEXTS,
    big_request,
    embedding_server,
    in_flight,
    pieces_ran,
    real_tokens,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = embedding_server(tmp_path_factory.mktemp("engine-restart"))
    yield srv
    srv.stop()


def job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
    return answer


def test_a_killed_engine_fails_its_requests_with_503_restarts_and_its_jobs_complete(server: Server) -> None:
    with server.client() as client:
        (engine,) = server.engine_pids()
        before = real_tokens(client)
        with big_request(server) as big:
            pieces_ran(client, before, 1)  # the engine is at work on it
            texts = LONG_TEXTS[:500]  # one request of the job's: seconds of work, at least
            submitted = client.post(
                "/v1/jobs", json={"kind": "embed", "input": {"model": EMBEDDER, "input": texts}}
            )
            assert submitted.status_code == 202, submitted.text
            job_id = submitted.json()["id"]
            wait_until(lambda: job(client, job_id)["status"] == "running" and in_flight(client) >= 2)
            os.kill(engine, signal.SIGKILL)
            answer = wait_until(lambda: big.answer_so_far() or None)
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503"), answer
            assert b"retry-after: 1" in head.lower() and b'"engine_unavailable"' in body, answer
        restarted = wait_until(lambda: [pid for pid in server.engine_pids() if pid != engine])
        assert len(restarted) == 1
        again = client.post("/v1/embeddings", json={"model": EMBEDDER, "input": ["still serving"]})
        assert again.status_code == 200, again.text
        finished = wait_until(lambda: (found := job(client, job_id))["status"] != "running" and found)
        assert finished["status"] == "succeeded" and finished["attempts"] == 2, finished
        assert finished["result"]["count"] == len(texts)
        assert any('"engine exited; starting it again"' in line for line in server.log_lines())
