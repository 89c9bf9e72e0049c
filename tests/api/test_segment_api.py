"""The segmentation API end to end, against a real server on loopback."""

from __future__ import annotations

import json
import time

import httpx
import yaml

from altlas.plans import plan_from_dict

from .conftest import Server, start_server


def test_segment_returns_a_stored_valid_plan(client: httpx.Client) -> None:
    response = client.post(
        "/v1/segment", json={"command": "Open Firefox and search for cheap hotels in Izmir"}
    )
    assert response.status_code == 201
    plan = response.json()
    plan_from_dict(plan)
    assert [s["task_type"] for s in plan["segments"]] == ["open", "search"]
    assert response.headers["location"] == f"/v1/alt-files/{plan['id']}"
    stored = client.get(response.headers["location"])
    assert stored.status_code == 200 and stored.json() == plan


def test_segment_options(client: httpx.Client) -> None:
    body = {
        "command": "Raporu hazırla ve Ali'ye gönder",
        "language": "tr",
        "mode": "Chaos",
        "chaos_level": 7,
        "seed": 42,
        "persona": "project_manager",
        "urgency": 8,
        "deadline": "2020-01-01T00:00:00Z",
        "user_preferences": {"send": 9},
        "metadata": {"user": "ayse"},
    }
    plan = client.post("/v1/segment", json=body).json()
    assert (plan["mode"], plan["chaos_level"], plan["persona"]) == ("Chaos", 7, "project_manager")
    assert plan["metadata"]["seed"] == 42 and plan["metadata"]["user"] == {"user": "ayse"}
    assert plan["metadata"]["priority"]["effective_urgency"] == 10.0  # the deadline has passed
    again = client.post("/v1/segment", json=body).json()
    assert [s["parameters"] for s in again["segments"]] == [s["parameters"] for s in plan["segments"]]


def test_store_false_keeps_nothing(client: httpx.Client) -> None:
    response = client.post("/v1/segment", json={"command": "Open Notepad", "store": False})
    assert response.status_code == 201 and "location" not in response.headers
    assert client.get(f"/v1/alt-files/{response.json()['id']}").status_code == 404


def test_batch(client: httpx.Client) -> None:
    commands = ["Open Firefox", "Dosyaları listele ve boyuta göre sırala", "Take a screenshot"]
    response = client.post("/v1/segment/batch", json={"commands": commands})
    assert response.status_code == 201
    body = response.json()
    assert body["count"] == 3 and [p["command"] for p in body["data"]] == commands
    for plan in body["data"]:
        assert client.get(f"/v1/alt-files/{plan['id']}").status_code == 200


def test_batch_limit(client: httpx.Client) -> None:
    response = client.post("/v1/segment/batch", json={"commands": ["Open it"] * 1001})
    assert response.status_code == 413 and response.json()["error"]["param"] == "commands"
    ok = client.post("/v1/segment/batch", json={"commands": ["Open it"] * 1000, "store": False})
    assert ok.status_code == 201 and ok.json()["count"] == 1000


def test_batch_is_all_or_nothing(client: httpx.Client) -> None:
    before = client.get("/v1/alt-files").json()["total"]
    response = client.post("/v1/segment/batch", json={"commands": ["Open it", "   "]})
    assert response.status_code == 422 and response.json()["error"]["param"] == "commands[1]"
    assert client.get("/v1/alt-files").json()["total"] == before


def test_list_get_yaml_delete(client: httpx.Client) -> None:
    ids = [client.post("/v1/segment", json={"command": f"Open app {i}"}).json()["id"] for i in range(3)]
    page = client.get("/v1/alt-files", params={"limit": 2}).json()
    assert page["limit"] == 2 and len(page["items"]) == 2 and page["total"] >= 3
    assert [item["id"] for item in page["items"]] == ids[::-1][:2]
    second = client.get("/v1/alt-files", params={"limit": 2, "offset": 2}).json()
    assert second["items"] and second["items"][0]["id"] not in {i["id"] for i in page["items"]}
    as_yaml = client.get(f"/v1/alt-files/{ids[0]}", params={"format": "yaml"})
    assert as_yaml.headers["content-type"].startswith("application/yaml")
    assert yaml.safe_load(as_yaml.text)["id"] == ids[0]
    assert client.delete(f"/v1/alt-files/{ids[0]}").status_code == 204
    assert client.get(f"/v1/alt-files/{ids[0]}").status_code == 404
    assert client.delete(f"/v1/alt-files/{ids[0]}").status_code == 404


def test_prioritize(client: httpx.Client) -> None:
    plan = client.post(
        "/v1/segment", json={"command": "Open Chrome, search for news and send it to Ali"}
    ).json()
    body = {"plan": plan, "urgency": 9, "user_preferences": {"send": 10}, "weights": {"confidence": 0.0}}
    response = client.post("/v1/prioritize", json=body)
    assert response.status_code == 200
    result = response.json()
    assert result["execution_order"] == ["seg-1", "seg-2", "seg-3"]
    assert set(result["scores"]) == {"seg-1", "seg-2", "seg-3"}
    assert result["plan"]["metadata"]["priority"]["weights"]["confidence"] == 0.0
    plan["segments"][0]["dependencies"] = ["seg-3"]
    cyclic = client.post("/v1/prioritize", json={"plan": plan})
    assert cyclic.status_code == 422 and cyclic.json()["error"]["param"] == "segments[0].dependencies"


def test_health_and_docs(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and "segmentation" in ready["services"]
    spec = client.get("/openapi.json").json()
    for path in [
        "/v1/segment",
        "/v1/segment/batch",
        "/v1/alt-files",
        "/v1/alt-files/{plan_id}",
        "/v1/prioritize",
    ]:
        assert path in spec["paths"]
    assert client.get("/docs").status_code == 200


def test_request_id_is_echoed_and_logged(server: Server, client: httpx.Client) -> None:
    response = client.post(
        "/v1/segment", json={"command": "Open Firefox"}, headers={"X-Request-ID": "test-abc-123"}
    )
    assert response.headers["x-request-id"] == "test-abc-123"
    generated = client.get("/healthz").headers["x-request-id"]
    assert len(generated) == 32
    entry = None
    for _ in range(100):  # the server writes its log line just after the response
        entry = next((e for e in _log_entries(server) if e.get("request_id") == "test-abc-123"), None)
        if entry:
            break
        time.sleep(0.1)
    assert entry is not None
    assert entry["path"] == "/v1/segment" and entry["status"] == 201 and "duration_ms" in entry


def _log_entries(server: Server) -> list[dict[str, object]]:
    entries = []
    for line in server.log_lines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue  # a line being written right now
    return entries


def test_plans_survive_a_restart(tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = start_server(tmp_path / "data", tmp_path / "a.log")
    try:
        with first.client() as c:
            plan = c.post("/v1/segment", json={"command": "Eski günlükleri sil"}).json()
    finally:
        first.stop()
    second = start_server(tmp_path / "data", tmp_path / "b.log")
    try:
        with second.client() as c:
            assert c.get(f"/v1/alt-files/{plan['id']}").json() == plan
            assert c.get("/v1/alt-files").json()["total"] == 1
    finally:
        second.stop()


def test_embed_endpoint(client: httpx.Client) -> None:
    import base64

    import numpy as np

    texts = ["Open Firefox", "Firefox'u aç", ""]
    response = client.post("/v1/embed", json={"texts": texts})
    assert response.status_code == 200, response.text
    body = response.json()
    vectors = np.array(body["embeddings"], dtype=np.float32)
    assert body["dimension"] == 384 and vectors.shape == (3, 384) and body["count"] == 3
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    as_b64 = client.post("/v1/embed", json={"texts": texts, "encoding": "base64"}).json()
    decoded = np.stack([np.frombuffer(base64.b64decode(s), dtype="<f4") for s in as_b64["embeddings"]])
    np.testing.assert_allclose(decoded, vectors, atol=1e-6)
    pooled = client.post("/v1/embed", json={"texts": texts[:2], "normalize": False}).json()
    raw = np.array(pooled["embeddings"])
    norms = np.linalg.norm(raw, axis=1)
    assert (abs(norms - 1) > 1e-3).all()  # as pooled, and in the same direction
    np.testing.assert_allclose(raw / norms[:, None], vectors[:2], atol=1e-5)


def test_embed_and_similarity_lease_the_registry_model(client: httpx.Client) -> None:
    """One owner of all-MiniLM-L6-v2: the routes of the segmentation and embeddings services take
    the model manager's leases, which its status counts (and its batcher, budget and metrics)."""

    def requests() -> int:
        return int(client.get("/v1/models/all-minilm-l6-v2").json()["altlas"]["requests"])

    before = requests()
    assert client.post("/v1/embed", json={"texts": ["open chrome"]}).status_code == 200
    assert client.post("/v1/dedupe", json={"commands": ["open chrome", "close it"]}).status_code == 200
    assert requests() == before + 2


def test_embed_bad_input(client: httpx.Client) -> None:
    for body, param in [
        ({}, "texts"),
        ({"texts": []}, "texts"),
        ({"texts": "one string"}, "texts"),
        ({"texts": ["ok", 5]}, "texts[1]"),
        ({"texts": ["ok"], "encoding": "int8"}, "encoding"),
        ({"texts": ["x"] * 4097}, "texts"),
    ]:
        response = client.post("/v1/embed", json=body)
        assert 400 <= response.status_code < 500, (body, response.text)
        assert response.json()["error"]["param"] == param, response.text


def test_similar_commands_and_dedupe(client: httpx.Client) -> None:
    stored = client.post("/v1/segment", json={"command": "Download the quarterly sales report"}).json()
    client.post("/v1/segment", json={"command": "Play some relaxing jazz music"})
    response = client.post(
        "/v1/similar-commands", json={"command": "download the sales report for this quarter", "k": 3}
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert results[0]["plan_id"] == stored["id"] and results[0]["command"] == stored["command"]
    assert results[0]["score"] > 0.7 and len(results) <= 3
    later = client.post("/v1/segment", json={"command": "Upload vacation photos to the cloud drive"}).json()
    again = client.post(
        "/v1/similar-commands", json={"command": "upload my holiday pictures to cloud storage"}
    )
    assert again.json()["results"][0]["plan_id"] == later["id"]  # the index follows new plans
    client.delete(f"/v1/alt-files/{later['id']}")
    gone = client.post(
        "/v1/similar-commands", json={"command": "upload my holiday pictures to cloud storage"}
    )
    assert later["id"] not in [r["plan_id"] for r in gone.json()["results"]]

    commands = [
        "Open Firefox",
        "open firefox",
        "Open Firefox please",
        "Delete the old logs",
        "Translate this into German",
    ]
    body = client.post("/v1/dedupe", json={"commands": commands, "threshold": 0.85}).json()
    assert {"i": 0, "j": 1} in [{"i": p["i"], "j": p["j"]} for p in body["pairs"]]
    assert [0, 1, 2] in body["groups"] and all(3 not in g for g in body["groups"])


def test_similarity_bad_input(client: httpx.Client) -> None:
    for path, body, param in [
        ("/v1/similar-commands", {"command": ""}, "command"),
        ("/v1/similar-commands", {"command": "x", "k": 0}, "k"),
        ("/v1/similar-commands", {"command": "x" * 20_000}, "command"),
        ("/v1/dedupe", {"commands": []}, "commands"),
        ("/v1/dedupe", {"commands": ["a"], "threshold": 1.5}, "threshold"),
    ]:
        response = client.post(path, json=body)
        assert 400 <= response.status_code < 500 and response.json()["error"]["param"] == param, response.text
