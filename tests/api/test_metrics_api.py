"""GET /metrics after real traffic: HTTP series by route template (never a raw path or an id),
status and method, histograms fine enough for percentiles; every way a request can take counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from altlas.api.app import create_app
from altlas.observability.metrics import LATENCY_BUCKETS_S
from altlas.settings import Settings


def scrape(client: TestClient, **headers: str) -> dict[str, Any]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(response.text)}


def samples(family: Any, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples if s.name == name}


@pytest.fixture
def client(tmp_path: Path) -> Any:
    settings = Settings(services=("segmentation",), data_dir=tmp_path / "data")
    with TestClient(create_app(settings)) as client:
        yield client


def test_requests_are_counted_by_route_template_method_and_status(client: TestClient) -> None:
    ids = []
    for command in ("Chrome'u aç", "take a screenshot", "Not defterini aç"):
        response = client.post("/v1/segment", json={"command": command})
        assert response.status_code == 201
        ids.append(response.json()["id"])
    for plan_id in ids[:2]:
        assert client.get(f"/v1/alt-files/{plan_id}").status_code == 200
    assert client.post("/v1/segment", json={"command": 5}).status_code == 422
    assert client.get("/no/such/path/abc123").status_code == 404
    families = scrape(client)
    counts = samples(families["altlas_http_requests"], "altlas_http_requests_total")
    assert counts[(("method", "POST"), ("route", "/v1/segment"), ("status", "201"))] == 3
    assert counts[(("method", "POST"), ("route", "/v1/segment"), ("status", "422"))] == 1
    assert counts[(("method", "GET"), ("route", "/v1/alt-files/{plan_id}"), ("status", "200"))] == 2
    assert counts[(("method", "GET"), ("route", "unmatched"), ("status", "404"))] == 1
    routes = {dict(labels)["route"] for labels in counts}
    assert not any(plan_id in route for route in routes for plan_id in ids)  # ids never become labels
    histogram = families["altlas_http_request_duration_seconds"]
    buckets = samples(histogram, "altlas_http_request_duration_seconds_bucket")
    segment = {dict(k)["le"]: v for k, v in buckets.items() if dict(k)["route"] == "/v1/segment"}
    assert len(segment) == len(LATENCY_BUCKETS_S) + 1 and segment["+Inf"] == 4
    assert float(min(segment, key=float)) == 0.001 and float(max(set(segment) - {"+Inf"}, key=float)) == 60
    assert histogram.type == "histogram" and families["altlas_http_requests"].type == "counter"


def test_a_scrape_counts_itself_on_the_next(client: TestClient) -> None:
    scrape(client)
    counts = samples(scrape(client)["altlas_http_requests"], "altlas_http_requests_total")
    assert counts[(("method", "GET"), ("route", "/metrics"), ("status", "200"))] >= 1


def test_metrics_need_a_key_only_when_asked(tmp_path: Path) -> None:
    for protect, status in ((False, 200), (True, 401)):
        settings = Settings(
            services=("segmentation",), data_dir=tmp_path / str(protect), api_keys=("k1",),
            metrics_require_key=protect,
        )  # fmt: skip
        with TestClient(create_app(settings)) as client:
            assert client.get("/metrics").status_code == status
            assert client.get("/metrics", headers={"Authorization": "Bearer k1"}).status_code == 200


def test_jobs_by_kind_and_status_queue_depth_and_duration(client: TestClient) -> None:
    import time

    response = client.post("/v1/jobs", json={"kind": "segment", "input": {"command": "Chrome'u aç"}})
    assert response.status_code == 202
    job_id = response.json()["id"]
    deadline = time.monotonic() + 30
    while client.get(f"/v1/jobs/{job_id}").json()["status"] != "succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    deadline = time.monotonic() + 5
    while True:  # the runner records the duration just after the job's end is stored
        families = scrape(client)
        counts = samples(families["altlas_job_duration_seconds"], "altlas_job_duration_seconds_count")
        if counts or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert counts == {(("kind", "segment"),): 1}
    jobs = samples(families["altlas_jobs"], "altlas_jobs")
    assert jobs[(("kind", "segment"), ("status", "succeeded"))] == 1
    assert samples(families["altlas_jobs_queue_depth"], "altlas_jobs_queue_depth") == {(): 0}
    routes = {
        dict(k)["route"] for k in samples(families["altlas_http_requests"], "altlas_http_requests_total")
    }
    assert "/v1/jobs/{job_id}" in routes and job_id not in str(routes)


def test_without_the_orchestrator_the_command_model_loads_on_first_use_and_is_counted(
    client: TestClient,
) -> None:
    """/v1/dedupe and the bulk job's type prototypes ask the model manager's all-minilm-l6-v2:
    nothing loads at start without the orchestrator service; the first use loads it, and the
    model's series count it as they count every model."""
    import time

    def requests() -> float:
        families = scrape(client)
        return samples(families["altlas_model_requests"], "altlas_model_requests_total").get(
            (("model", "all-minilm-l6-v2"),), 0.0
        )

    loaded = scrape(client)["altlas_models_loaded"]
    assert sum(sample.value for sample in loaded.samples) == 0 and requests() == 0
    response = client.post("/v1/dedupe", json={"commands": ["open chrome", "Open Chrome", "close it"]})
    assert response.status_code == 200, response.text
    assert response.json()["groups"] == [[0, 1]] and requests() == 1
    bulk = {"commands": ["water the plants", "open chrome"], "embeddings": True}
    job_id = client.post("/v1/jobs", json={"kind": "segment-bulk", "input": bulk}).json()["id"]
    deadline = time.monotonic() + 120
    while (job := client.get(f"/v1/jobs/{job_id}").json())["status"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert job["status"] == "succeeded", job
    assert requests() == 3  # the job's two: the types' phrases, then the lines the rules left unsure
