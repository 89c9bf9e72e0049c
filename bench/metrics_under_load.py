"""What /metrics shows of the GPU while the server is under load.

    python bench/metrics_under_load.py [--device cuda] [--model-source PATH]
                                       [--seconds 12]

Starts `python -m altlas serve` with only the embedding model, reads `GET /metrics` once a second
(as Prometheus would scrape it), and prints a timeline of the GPU's utilisation through three
phases: idle, 256 closed-loop clients each sending one sentence (`bench/serving.py`'s load), then
16 clients each sending 128 texts a request; then the GPU and model series as the last scrape
under load had them (memory used and total, temperature, power, SM clock, the model's GPU bytes,
the torch allocator's bytes). Without NVML (no GPU) the GPU series are absent, as documented.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from altlas.orchestrator.registry import default_registry_text
from serving import MODEL, SENTENCES, run_load, start_server

SERIES = (
    "altlas_gpu_utilization_percent", "altlas_gpu_memory_used_bytes", "altlas_gpu_memory_total_bytes",
    "altlas_gpu_temperature_celsius", "altlas_gpu_power_watts", "altlas_gpu_sm_clock_hertz",
    "altlas_model_gpu_bytes", "altlas_torch_allocated_bytes", "altlas_torch_reserved_bytes",
    "altlas_torch_peak_allocated_bytes",
)  # fmt: skip


def scrape(url: str) -> list[str]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    return [line for line in text.splitlines() if line.startswith(SERIES)]


def big_requests(url: str, seconds: float, clients: int = 16, texts: int = 128) -> int:
    """Requests of `texts` texts each from `clients` threads for `seconds`; how many were answered."""
    inputs = [f"{SENTENCES[i % len(SENTENCES)]} number {i} and a few more words" for i in range(texts)]
    payload = json.dumps({"model": MODEL, "input": inputs}).encode()
    until = time.monotonic() + seconds

    def loop(_: int) -> int:
        done = 0
        while time.monotonic() < until:
            headers = {"Content-Type": "application/json"}
            request = urllib.request.Request(f"{url}/v1/embeddings", payload, headers)
            with urllib.request.urlopen(request, timeout=60) as response:
                response.read()
            done += 1
        return done

    with ThreadPoolExecutor(clients) as pool:
        return sum(pool.map(loop, range(clients)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--model-source", help="the model's folder (default: the shipped package)")
    parser.add_argument("--seconds", type=float, default=12.0, help="each load phase")
    args = parser.parse_args()
    registry = yaml.safe_load(default_registry_text())
    registry["models"] = [m for m in registry["models"] if m["name"] == MODEL]
    if args.model_source:
        model = registry["models"][0]
        model["versions"] = {model["active"]: str(Path(args.model_source).resolve())}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        (data / "models.yaml").write_text(yaml.safe_dump(registry))
        env = {
            "ALTLAS_SERVICES": "orchestrator", "ALTLAS_DEVICE": args.device, "ALTLAS_LOG_LEVEL": "WARNING",
            "HF_HUB_OFFLINE": "1", "ALTLAS_MAX_CONCURRENT_REQUESTS": "0", "ALTLAS_QUEUE_MAX": "100000",
        }  # fmt: skip
        process, url = start_server(data, env, Path(tmp) / "server.log")
        timeline: list[tuple[float, str, list[str]]] = []
        phase = ["idle"]
        stop = threading.Event()
        started = time.monotonic()

        def poll() -> None:
            while not stop.is_set():
                lines = scrape(url)
                timeline.append((time.monotonic() - started, phase[0], lines))
                stop.wait(1.0)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        try:
            time.sleep(4)
            phase[0] = "one sentence x 256 clients"
            row = run_load(url, 256, 8, args.seconds, 2.0, process.pid)
            phase[0] = "128 texts x 16 clients"
            answered = big_requests(url, args.seconds)
            last_under_load = scrape(url)
            phase[0] = "idle"
            time.sleep(4)
        finally:
            stop.set()
            poller.join()
            process.terminate()
            process.wait(timeout=30)
    print(f"one sentence x 256 clients: {row['rps']:,.0f} requests/s; "
          f"128 texts x 16 clients: {answered * 128 / args.seconds:,.0f} texts/s\n")  # fmt: skip
    print("| s | phase | GPU utilisation % |\n|---:|---|---|")
    for at, name, lines in timeline:
        util = ", ".join(line.rsplit(" ", 1)[1] for line in lines if line.startswith(SERIES[0])) or "absent"
        print(f"| {at:.0f} | {name} | {util} |")
    print("\nlast scrape under load:\n" + "\n".join(last_under_load))


if __name__ == "__main__":
    main()
