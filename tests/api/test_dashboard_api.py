"""Every metric the Grafana dashboard (deploy/grafana/altlas.json) and the HPA query exists on a live
server's /metrics after traffic, with the type its query needs; the compose file validates
against the Compose specification."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from altlas.observability.gpu import _SERIES as GPU_SERIES

from .conftest import Server

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "altlas.json"


def queried_metrics(dashboard: Path) -> dict[str, str]:
    """Metric family -> the type its queries need (histogram, counter or gauge)."""
    panels = json.loads(dashboard.read_text())["panels"]
    names = {n for p in panels for t in p["targets"] for n in re.findall(r"\baltlas_\w+", t["expr"])}
    needed = {}
    for name in names:
        for suffix, kind in (("_bucket", "histogram"), ("_sum", "histogram"), ("_count", "histogram"),
                             ("_total", "counter")):  # fmt: skip
            if name.endswith(suffix):
                needed[name.removesuffix(suffix)] = kind
                break
        else:
            needed[name] = "gauge"
    return needed


def test_every_dashboard_metric_exists_after_traffic(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=120) as client:
        for i in range(4):
            assert client.post(
                "/v1/embeddings", json={"model": "all-minilm-l6-v2", "input": f"t {i}"}
            ).is_success
        assert client.post("/v1/segment", json={"command": "Chrome'u aç"}).status_code == 201
        job = client.post("/v1/jobs", json={"kind": "segment", "input": {"command": "open the browser"}})
        deadline = time.monotonic() + 30
        while client.get(job.headers["location"]).json()["status"] != "succeeded":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    needed = queried_metrics(DASHBOARD)
    assert len(needed) >= 12
    hpa = yaml.safe_load((ROOT / "deploy" / "k8s" / "base" / "hpa.yaml").read_text())
    for metric in hpa["spec"]["metrics"]:  # what the autoscaler scales on must be there too
        needed[metric["pods"]["metric"]["name"]] = "gauge"
    for name, kind in sorted(needed.items()):
        if name in GPU_SERIES and name not in families:
            continue  # NVML readings: absent without a GPU by design (tests/unit/test_observability.py)
        assert name in families, f"the dashboard queries {name}, which /metrics lacks"
        assert families[name].type == kind, (name, families[name].type, kind)


def test_the_compose_file_validates_against_the_compose_spec() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("check-jsonschema")), "--builtin-schema", "vendor.compose-spec",
         str(ROOT / "deploy" / "compose.yaml")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
