"""Spill-over under saturation: a model on the GPU alone vs the same with a CPU replica taking overflow.

    python bench/spillover.py [--device cuda] [--clients 16] [--seconds 20] [--audio-seconds 10]
                              [--spill-queue-depth 1] [--spill-wait-ms 0]

Voice activity detection (Silero VAD) runs one file at a time per device, so a flood of files
saturates the GPU's queue while the CPU sits idle: the case spill-over is for. For each
setting the script starts `python -m altlas serve` with only silero-vad in its registry
(`cpu_replica` off, then on), waits until it is loaded, and runs `--clients` closed-loop
clients posting a speech file to /v1/audio/vad for `--seconds` after a warm-up. Printed:
requests/s, p50/p99 latency, errors, how many answers each device served (X-Altlas-Device),
and the ratio with / without the replica.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml

from serving import start_server  # bench/serving.py: the server on a free port, loaded

ROOT = Path(__file__).resolve().parents[1]
MODEL = "silero-vad"


def speech_file(seconds: float) -> bytes:
    """The test clip of English speech, repeated with pauses to `seconds`, as WAV bytes."""
    import soundfile

    speech, rate = soundfile.read(ROOT / "tests" / "data" / "audio" / "speech_en.wav", dtype="float32")
    piece = np.concatenate([speech, np.zeros(rate // 2, np.float32)])
    samples = np.tile(piece, int(seconds * rate / len(piece)) + 1)[: int(seconds * rate)]
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="WAV")
    return buffer.getvalue()


def run_load(url: str, audio: bytes, clients: int, seconds: float, warm_s: float) -> dict[str, Any]:
    latencies: list[float] = []
    devices: Counter[str] = Counter()
    errors: Counter[int] = Counter()
    started = time.perf_counter()
    warm_until, stop_at = started + warm_s, started + warm_s + seconds
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=url, timeout=600) as http:
            while (now := time.perf_counter()) < stop_at:
                response = http.post("/v1/audio/vad", files={"file": ("speech.wav", audio)})
                took = time.perf_counter() - now
                if now < warm_until:
                    continue
                with lock:
                    if response.status_code == 200:
                        latencies.append(took)
                        devices[response.headers.get("x-altlas-device", "?").split(" ")[0]] += 1
                    else:
                        errors[response.status_code] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies.sort()

    def pct(q: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e3 if latencies else float("nan")
        )

    return {"rps": len(latencies) / seconds, "p50": pct(0.5), "p99": pct(0.99), "devices": dict(devices),
            "errors": dict(errors)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--audio-seconds", type=float, default=10.0)
    parser.add_argument("--spill-queue-depth", type=int, default=1)
    parser.add_argument("--spill-wait-ms", type=float, default=0.0)
    args = parser.parse_args()
    from altlas.orchestrator.registry import default_registry_text

    audio = speech_file(args.audio_seconds)
    base = yaml.safe_load(default_registry_text())
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for replica in (False, True):
            registry = {"models": [m for m in base["models"] if m["name"] == MODEL]}
            options = registry["models"][0].setdefault("options", {})
            options.update(cpu_replica=replica, spill_queue_depth=args.spill_queue_depth,
                           spill_wait_ms=args.spill_wait_ms)  # fmt: skip
            name = "GPU + CPU replica" if replica else "GPU only"
            data = Path(tmp) / f"data-{replica}"
            data.mkdir()
            (data / "models.yaml").write_text(yaml.safe_dump(registry))
            env = {"ALTLAS_SERVICES": "orchestrator", "ALTLAS_DEVICE": args.device,
                   "ALTLAS_LOG_LEVEL": "WARNING", "ALTLAS_QUEUE_MAX": "100000",
                   "ALTLAS_MAX_CONCURRENT_REQUESTS": "0"}  # fmt: skip
            process, url = start_server(data, env, Path(tmp) / f"server-{replica}.log", MODEL)
            try:
                rows[name] = run_load(url, audio, args.clients, args.seconds, args.warmup)
                with urllib.request.urlopen(f"{url}/v1/models/{MODEL}") as response:
                    rows[name]["status"] = json.load(response)["altlas"]
            finally:
                process.terminate()
                process.wait(timeout=30)
    print(f"\nPOST /v1/audio/vad, a {args.audio_seconds:g} s speech file per request, "
          f"{args.clients} concurrent clients, {args.seconds:g} s after {args.warmup:g} s warm-up; "
          "spill when the GPU queue holds "
          f">= {args.spill_queue_depth} (or waits >= {args.spill_wait_ms:g} ms)\n")  # fmt: skip
    print("| setting | requests/s | p50 ms | p99 ms | served on | errors |")
    print("|---|---:|---:|---:|---|---:|")
    for name, row in rows.items():
        served = ", ".join(f"{device}: {count}" for device, count in sorted(row["devices"].items()))
        print(f"| {name} | {row['rps']:.1f} | {row['p50']:.0f} | {row['p99']:.0f} | {served} | "
              f"{sum(row['errors'].values())} |")  # fmt: skip
    alone, spilled = rows["GPU only"], rows["GPU + CPU replica"]
    print(f"\nthroughput with / without the replica: {spilled['rps'] / alone['rps']:.2f}x; "
          f"spill-overs counted: {spilled['status'].get('spillovers')}")  # fmt: skip


if __name__ == "__main__":
    main()
