"""A real Prometheus server (Debian's package) scrapes a live altlas on loopback; after traffic,
PromQL through Prometheus's HTTP API gives a sensible p95 latency and request rate.

Skipped where no `prometheus` binary is installed (.ci/run installs Debian's package on CI)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import Server

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="no prometheus binary (apt install prometheus)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _query(client: httpx.Client, promql: str) -> list[dict[str, Any]]:
    answer = client.get("/api/v1/query", params={"query": promql}).json()
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def test_prometheus_scrapes_altlas_and_answers_promql(server: Server, tmp_path: Path) -> None:
    assert PROMETHEUS is not None
    target = server.url.removeprefix("http://")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"scrape_configs:\n  - job_name: altlas\n    static_configs:\n      - targets: ['{target}']\n"
    )
    port = _free_port()
    log = (tmp_path / "prometheus.log").open("w")
    process = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        with (
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as prom,
            httpx.Client(base_url=server.url, timeout=60) as altlas,
        ):
            deadline = time.monotonic() + 60
            while True:  # Prometheus up, and the target scraped at least once
                try:
                    if _query(prom, 'up{job="altlas"} == 1'):
                        break
                except (httpx.HTTPError, ValueError):
                    pass
                assert time.monotonic() < deadline, (tmp_path / "prometheus.log").read_text()[-2000:]
                time.sleep(0.5)
            sent = 0
            traffic_until = time.monotonic() + 8
            while time.monotonic() < traffic_until:  # ~8 s of segmenting: several scrapes
                assert altlas.post("/v1/segment", json={"command": f"Chrome'u aç #{sent}"}).status_code == 201
                sent += 1
            time.sleep(2.5)  # the last requests scraped
            buckets = 'altlas_http_request_duration_seconds_bucket{route="/v1/segment"}'
            p95 = _query(prom, f"histogram_quantile(0.95, sum by (le) (rate({buckets}[20s])))")
            requests = 'altlas_http_requests_total{route="/v1/segment",status="201"}'
            rate = _query(prom, f"sum(rate({requests}[20s]))")
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
    p95_s = float(p95[0]["value"][1])
    per_s = float(rate[0]["value"][1])
    assert 0 < p95_s < 5, p95  # segmenting one command takes milliseconds, not seconds
    assert sent / 8 * 0.2 < per_s < sent / 8 * 3, (per_s, sent)  # near the rate we sent at
