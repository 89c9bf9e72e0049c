"""Async jobs and backpressure through a real server on loopback: durable jobs survive kill -9,
a flooded model answers 429 with Retry-After (never 500, never a hang), slow work 504."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from altlas.orchestrator.registry import default_registry_text

from .conftest import start_server, wait_until

EMBEDDER = "all-minilm-l6-v2"


def data_dir_with_embedder_only(root: Path) -> Path:
    """A data dir whose registry serves only the embedding model (quick to load on a CPU)."""
    registry = yaml.safe_load(default_registry_text())
    registry["models"] = [m for m in registry["models"] if m["name"] == EMBEDDER]
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    (data / "models.yaml").write_text(yaml.safe_dump(registry))
    return data


def texts(n: int, salt: str) -> list[str]:
    return [f"{salt} command number {i}: open the browser and search for item {i * 7}" for i in range(n)]


def loaded(client: httpx.Client, name: str) -> bool:
    """Whether the model is loaded (it loads at start, in the background); a failed load fails."""
    status = client.get(f"/v1/models/{name}").json()["altlas"]
    assert status["status"] != "failed", status["error"]
    return bool(status["status"] == "loaded")


def queue_depth(client: httpx.Client, name: str) -> float:
    """Requests queued or running on the model, as /metrics tells."""
    samples = [
        s
        for family in text_string_to_metric_families(client.get("/metrics").text)
        for s in family.samples
        if s.name == "altlas_model_queue_depth" and s.labels.get("model") == name
    ]
    assert len(samples) == 1, samples
    return samples[0].value


def finished(client: httpx.Client, job_id: str) -> dict[str, Any] | None:
    job = client.get(f"/v1/jobs/{job_id}").json()
    return job if job["status"] in ("succeeded", "failed", "cancelled", "expired") else None


def test_jobs_survive_kill_9_and_every_one_completes_correctly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALTLAS_SERVICES", "segmentation,orchestrator")
    monkeypatch.setenv("ALTLAS_DEVICE", "cpu")  # the big job still runs when it is killed, on any host
    monkeypatch.setenv("ALTLAS_JOB_WORKERS", "1")  # one at a time: the others wait queued
    data = data_dir_with_embedder_only(tmp_path)
    server = start_server(data, tmp_path / "server.log")
    commands = [
        "Chrome'u aç ve hava durumunu ara, sonra ekran görüntüsü al",
        "open notepad then type hello",
    ] * 600
    big = texts(6000, "big")
    try:
        with server.client() as client:
            submitted = {
                "embed-big": client.post("/v1/jobs", json={"kind": "embed", "priority": 9,
                                         "input": {"model": EMBEDDER, "input": big}}),
                "bulk": client.post("/v1/jobs", json={"kind": "segment-bulk", "priority": 5,
                                    "input": {"commands": commands}}),
                "one": client.post("/v1/jobs", json={"kind": "segment", "priority": 1,
                                   "input": {"command": "open firefox and go to github.com"}}),
                "embed-small": client.post("/v1/jobs", json={"kind": "embed", "priority": 0,
                                           "input": {"input": texts(300, "small")}}),
            }  # fmt: skip
            for response in submitted.values():
                assert response.status_code == 202, response.text
                assert response.headers["location"] == f"/v1/jobs/{response.json()['id']}"
            ids = {name: r.json()["id"] for name, r in submitted.items()}
            # Kill the server while the big job runs (highest priority first) and the rest wait.
            running = wait_until(
                lambda: (
                    (job := client.get(f"/v1/jobs/{ids['embed-big']}").json())["status"] == "running"
                    and (job["progress"] or {}).get("done", 0) > 0
                    and job
                ),
                every=0.02,
            )
            assert running["progress"]["total"] == 6000
            statuses = {name: client.get(f"/v1/jobs/{i}").json()["status"] for name, i in ids.items()}
            assert statuses == {
                "embed-big": "running",
                "bulk": "queued",
                "one": "queued",
                "embed-small": "queued",
            }
        server.process.kill()  # SIGKILL: no shutdown hooks, no flush
        server.process.wait()
        server = start_server(data, tmp_path / "server2.log")
        with server.client() as client:
            ended = {name: wait_until(lambda i=i: finished(client, i)) for name, i in ids.items()}
            assert {name: job["status"] for name, job in ended.items()} == dict.fromkeys(ids, "succeeded")
            assert ended["embed-big"]["attempts"] == 2  # started, killed, started again
            assert ended["embed-big"]["progress"] == {"done": 6000, "total": 6000}
            # priority order held after the restart: the bulk job (5) before the single one (1)
            assert (
                ended["bulk"]["started_at"]
                <= ended["one"]["started_at"]
                <= ended["embed-small"]["started_at"]
            )

            vectors_file = client.get(f"/v1/jobs/{ids['embed-big']}/result")
            assert vectors_file.status_code == 200
            path = tmp_path / "vectors.npy"
            path.write_bytes(vectors_file.content)
            vectors = np.load(path)
            assert vectors.shape == (6000, 384) and vectors.dtype == np.float32
            np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
            probe = [0, 2999, 5999]
            direct = client.post("/v1/embeddings", json={"model": EMBEDDER, "input": [big[i] for i in probe]})
            expected = np.array([d["embedding"] for d in direct.json()["data"]], dtype=np.float32)
            assert np.all(np.sum(vectors[probe] * expected, axis=1) > 0.999)

            plans = client.get(f"/v1/jobs/{ids['bulk']}/result")
            assert plans.headers["content-type"].startswith("application/x-ndjson")
            lines = plans.text.splitlines()
            assert len(lines) == len(commands) and ended["bulk"]["result"] == {"count": 1200, "failed": 0}
            assert all('"segments"' in line for line in lines)
            plan = client.get(f"/v1/jobs/{ids['one']}/result").json()["plan"]
            assert len(plan["segments"]) >= 2
            small = client.get(f"/v1/jobs/{ids['embed-small']}/result")
            assert small.status_code == 200 and len(small.content) == 128 + 300 * 384 * 4
    finally:
        server.stop()


def test_job_api_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALTLAS_SERVICES", "segmentation,orchestrator")
    monkeypatch.setenv("ALTLAS_DEVICE", "cpu")  # the blocker still runs when it is cancelled, on any host
    monkeypatch.setenv("ALTLAS_JOB_WORKERS", "1")
    server = start_server(data_dir_with_embedder_only(tmp_path), tmp_path / "server.log")
    try:
        with server.client() as client:
            # a long job holds the one worker, so the jobs after it stay queued
            blocker = client.post(
                "/v1/jobs", json={"kind": "embed", "priority": 9, "input": {"input": texts(20000, "b")}}
            )
            first = client.post("/v1/jobs", json={"kind": "segment", "idempotency_key": "abc",
                                "input": {"command": "open notepad"}})  # fmt: skip
            again = client.post("/v1/jobs", json={"kind": "segment", "idempotency_key": "abc",
                                "input": {"command": "open notepad"}})  # fmt: skip
            assert first.status_code == 202 and again.status_code == 200
            assert first.json()["id"] == again.json()["id"]
            early = client.get(f"/v1/jobs/{first.json()['id']}/result")
            assert early.status_code == 409 and early.json()["error"]["code"] == "conflict"
            past = client.post("/v1/jobs", json={"kind": "segment", "deadline": "2020-01-01T00:00:00Z",
                               "input": {"command": "open notepad"}})  # fmt: skip
            cancelled = client.delete(f"/v1/jobs/{first.json()['id']}")
            assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
            stopped = client.delete(f"/v1/jobs/{blocker.json()['id']}").json()
            assert stopped["status"] in ("running", "cancelled")  # running: it stops at its next batch
            wait_until(lambda: finished(client, blocker.json()["id"]))
            assert client.get(f"/v1/jobs/{blocker.json()['id']}").json()["status"] == "cancelled"
            expired = wait_until(lambda: finished(client, past.json()["id"]))
            assert expired["status"] == "expired" and expired["attempts"] == 0

            listed = client.get("/v1/jobs", params={"status": "cancelled", "limit": 1}).json()
            assert len(listed["data"]) == 1 and listed["next"]
            more = client.get(
                "/v1/jobs", params={"status": "cancelled", "limit": 1, "after": listed["next"]}
            ).json()
            assert {j["id"] for j in listed["data"] + more["data"]} == {
                first.json()["id"],
                blocker.json()["id"],
            }
            assert all(
                j["kind"] == "embed" for j in client.get("/v1/jobs", params={"kind": "embed"}).json()["data"]
            )

            bad = {
                "kind": client.post("/v1/jobs", json={"kind": "dance", "input": {}}),
                "input.commands": client.post(
                    "/v1/jobs", json={"kind": "segment-bulk", "input": {"commands": []}}
                ),
                "input.input": client.post(
                    "/v1/jobs", json={"kind": "embed", "input": {"input": "not a list"}}
                ),
                "priority": client.post(
                    "/v1/jobs", json={"kind": "segment", "priority": 10, "input": {"command": "x"}}
                ),
                "status": client.get("/v1/jobs", params={"status": "sleeping"}),
                "id": client.get("/v1/jobs/not-an-id"),
            }
            for field, response in bad.items():
                assert response.status_code == 422, (field, response.text)
                assert response.json()["error"]["param"] == field, (field, response.text)
            missing = client.get("/v1/jobs/" + "0" * 32)
            assert missing.status_code == 404
    finally:
        server.stop()


def test_a_flooded_model_answers_429_with_retry_after_and_slow_work_504(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Waits on what the server says (the model loaded, a 429 seen, the queue empty), never on a
    window of time: a busy machine makes the test slower, not wrong. On the CPU on every host: a
    GPU finishes even the largest request before the 3 s limit."""
    monkeypatch.setenv("ALTLAS_SERVICES", "orchestrator")
    monkeypatch.setenv("ALTLAS_DEVICE", "cpu")
    monkeypatch.setenv("ALTLAS_QUEUE_MAX", "2")
    monkeypatch.setenv("ALTLAS_BATCHING", "0")  # one request per batch: the queue fills
    monkeypatch.setenv("ALTLAS_REQUEST_TIMEOUT_S", "3")
    server = start_server(data_dir_with_embedder_only(tmp_path), tmp_path / "server.log")
    try:
        with httpx.Client(base_url=server.url, timeout=120) as client:  # a hang fails (ReadTimeout)
            wait_until(lambda: loaded(client, EMBEDDER))

            def one(i: int) -> httpx.Response:
                # Light requests: with 2 queued and 1 running, few wait near the 3 s limit; one
                # that does (a busy machine) is answered 504, as it should be.
                return client.post(
                    "/v1/embeddings", json={"model": EMBEDDER, "input": texts(8, f"flood {i}")}
                )

            codes: list[int] = []

            def flood() -> bool:
                """48 requests at once; True once the floods so far got both 200s and 429s."""
                with ThreadPoolExecutor(48) as pool:
                    responses = list(pool.map(one, range(48)))
                for response in responses:
                    assert response.status_code in (200, 429, 504), response.text
                    if response.status_code == 429:
                        assert int(response.headers["retry-after"]) >= 1
                        assert response.json()["error"]["code"] == "overloaded"
                    elif response.status_code == 504:
                        assert response.json()["error"]["code"] == "timeout"
                    else:
                        assert len(response.json()["data"]) == 8
                    codes.append(response.status_code)
                return codes.count(429) > 0 and codes.count(200) >= 3

            wait_until(flood, every=0)

            # Work that outlasts the limit: the smallest of these sizes that does, so that what
            # runs on after the 504 is short.
            for size in (256, 1024, 4096):
                slow = client.post(
                    "/v1/embeddings", json={"model": EMBEDDER, "input": texts(size, "slow " * 40)}
                )
                if slow.status_code != 200:
                    break
            assert slow.status_code == 504, slow.text
            assert slow.json()["error"]["code"] == "timeout" and "3 s" in slow.json()["error"]["message"]
            # what of it had started runs to its end (or is dropped), then the model serves again
            wait_until(lambda: queue_depth(client, EMBEDDER) == 0)
            again = client.post("/v1/embeddings", json={"model": EMBEDDER, "input": ["still serving"]})
            assert again.status_code == 200, again.text
    finally:
        server.stop()
