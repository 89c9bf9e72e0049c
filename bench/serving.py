"""Serving under load: a real server on loopback, many concurrent clients, dynamic batching on vs off.

    python bench/serving.py [--workload embeddings|chat] [--clients 256] [--seconds 10]
                            [--device auto|cpu|cuda] [--client-processes 4] [--repeat 1]
                            [--model-source PATH | --tiny-model | --random-chat-model] [--max-tokens 64]

For each setting the script starts `python -m altlas serve` (only the embedding model in its
registry), waits until the model is loaded, and runs a closed loop: `--clients` clients, each
sending one sentence to POST /v1/embeddings and the next as soon as the answer arrives, for
`--seconds` after a warm-up. The load comes from `--client-processes` processes, each an asyncio
loop writing HTTP/1.1 requests on keep-alive connections by hand (a general HTTP client would
cost more CPU per request than the server it measures). Printed: requests/s, p50/p95/p99
latency, errors, the server's CPU time per request (all its threads; Linux), how many requests
shared each request's batch (embeddings: the answer's `altlas.batch_requests`), the load
processes' own CPU per request, and the ratio batching on / off.

`--workload chat`: 32 clients by default, each asking POST /v1/chat/completions for a greedy
answer of up to `--max-tokens` tokens (SmolLM2-135M-Instruct, or with `--random-chat-model` the
same shapes with random weights, which answer to the token limit); batching on is continuous
batching (generations share decode steps), off is one generation at a time. Also printed:
answer tokens/s.

`--tiny-model` serves a random 1-layer, 32-wide BERT with MiniLM's tokenizer instead: its
forward costs next to nothing, so what is left is the server's own per-request work (HTTP,
validation, queueing, hand-offs), the part that limits a GPU server of small requests. CPU time
per request is the number to compare on a shared machine: requests/s moves with its neighbours.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
MODEL = "all-minilm-l6-v2"
CHAT_MODEL = "smollm2-135m-instruct"
SENTENCES = [
    "Chrome'u aç ve hava durumunu ara, sonra ekran görüntüsü al",
    "open the browser and search for the weather in Istanbul",
    "take a screenshot and save it to the desktop",
    "Not defterini aç ve alışveriş listesini yaz",
    "send an email to the team about tomorrow's meeting",
    "müzik çaları aç ve rahatlatıcı bir şarkı çal",
    "close all windows except the terminal",
    "dosyaları tarihe göre sırala ve eski olanları arşivle",
]


def start_server(
    data: Path, env: dict[str, str], log: Path, model: str = MODEL
) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "altlas", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--data-dir", str(data)],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env},
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/v1/models/{model}", timeout=2) as response:
                status = json.load(response)["altlas"]
            if status["status"] == "loaded":
                return process, url
            if status["status"] == "failed":
                raise SystemExit(f"the model failed to load: {status['error']}")
        except OSError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not load the model in 10 minutes")


def _request(port: int, index: int, max_tokens: int) -> bytes:
    """An embeddings request (max_tokens 0) or a chat request for up to max_tokens tokens."""
    sentence = SENTENCES[index % len(SENTENCES)] + f" #{index}"
    if max_tokens:
        path = "/v1/chat/completions"
        body = json.dumps({"model": CHAT_MODEL, "messages": [{"role": "user", "content": sentence}],
                           "max_tokens": max_tokens, "temperature": 0}).encode()  # fmt: skip
    else:
        path, body = "/v1/embeddings", json.dumps({"model": MODEL, "input": sentence}).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


Costs = list[tuple[int, float, float]]  # per request: requests in its batch, batch run ms, queue ms


async def _client(port: int, stop_at: float, warm_until: float, latencies: list[float], errors: list[int],
                  seed: int, max_tokens: int, tokens: list[int], batches: Costs) -> None:  # fmt: skip
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    index = seed
    try:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            writer.write(_request(port, index, max_tokens))
            index += 1
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length)
            status = int(status_line.split()[1]) if status_line else 0
            if started >= warm_until:
                if status == 200:
                    latencies.append(time.perf_counter() - started)
                    if max_tokens:
                        tokens.append(json.loads(body)["usage"]["completion_tokens"])
                    elif (at := body.rfind(b'"altlas":')) >= 0:  # the last key: without parsing the vector
                        cost = json.loads(body[at + 9 : -1])
                        batches.append((cost["batch_requests"], cost["processing_ms"], cost["queue_ms"]))
                else:
                    errors.append(status)
    finally:
        writer.close()


def _load_process(port: int, clients: int, warm_s: float, seconds: float, start_at: float, out: Any,
                  offset: int, max_tokens: int) -> None:  # fmt: skip
    async def main() -> tuple[list[float], list[int], list[int], list[int]]:
        while time.time() < start_at:
            await asyncio.sleep(0.001)
        now = time.perf_counter()
        latencies: list[float] = []
        errors: list[int] = []
        tokens: list[int] = []
        batches: Costs = []
        stop_at, warm_until = now + warm_s + seconds, now + warm_s
        await asyncio.gather(
            *(
                _client(
                    port,
                    stop_at,
                    warm_until,
                    latencies,
                    errors,
                    offset + i * 100_000,
                    max_tokens,
                    tokens,
                    batches,
                )
                for i in range(clients)
            )
        )
        return latencies, errors, tokens, batches

    _use_uvloop()
    cpu_started = time.process_time()
    result = asyncio.run(main())
    out.put((*result, time.process_time() - cpu_started))


TINY_DIMENSION = 32  # the tiny model's vectors


def make_tiny_model(folder: Path, source: Path | None = None) -> Path:
    """A sentence-transformers folder like `source`'s (default: the shipped all-MiniLM-L6-v2),
    with its tokenizer, and random weights of one 32-wide layer (numpy only: no torch import):
    the same serving path, a forward that costs next to nothing."""
    import shutil

    import numpy as np
    from safetensors import safe_open
    from safetensors.numpy import save_file

    from altlas.embeddings.model_files import default_model_path

    source = source or default_model_path()
    shutil.copytree(
        source, folder, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "onnx", "openvino")
    )
    config = json.loads((source / "config.json").read_text())
    config.update(
        hidden_size=TINY_DIMENSION, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    (folder / "config.json").write_text(json.dumps(config))
    pooling = json.loads((source / "1_Pooling" / "config.json").read_text())
    pooling["word_embedding_dimension"] = TINY_DIMENSION
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    sizes = {384: TINY_DIMENSION, 1536: 64}  # MiniLM's hidden and intermediate widths -> tiny
    rng = np.random.default_rng(0)
    weights: dict[str, np.ndarray] = {}
    with safe_open(str(source / "model.safetensors"), "np") as model:
        for name in model.keys():  # noqa: SIM118 (a safetensors handle, not a dict)
            if ".layer." in name and ".layer.0." not in name:
                continue
            shape = [sizes.get(n, n) for n in model.get_slice(name).get_shape()]
            if name.endswith("position_ids"):
                weights[name] = model.get_tensor(name)
            elif name.endswith("LayerNorm.weight"):
                weights[name] = np.ones(shape, np.float32)
            else:
                weights[name] = rng.normal(0, 0.05, shape).astype(np.float32)
    save_file(weights, str(folder / "model.safetensors"))
    return folder


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process, all its threads (Linux /proc), else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    """The processes `pid` started (Linux /proc): a server's child processes, if any."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def _machine_cpu() -> tuple[int, int, int]:
    """All cores' (busy, idle, steal) clock ticks since boot (Linux /proc/stat), else zeros.
    Steal is time the hypervisor gave this machine's virtual CPUs to someone else."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0, 0
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return user + nice + system + irq + softirq, idle + iowait, steal


def _thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of a process (Linux /proc), by thread id."""
    seconds: dict[int, float] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return seconds
    for tid in tids:
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds[int(tid)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return seconds


def _echo_server(port: int, body: bytes, ready: Any) -> None:
    """A server that answers every HTTP/1.1 request at once with the same embeddings-sized
    answer: what the load processes can drive when the server costs next to nothing."""
    response = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        + f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )
    length_header = re.compile(rb"(?i)content-length: *(\d+)")

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport, self.buffer = transport, b""

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
                match = length_header.search(self.buffer, 0, end)
                total = end + 4 + (int(match.group(1)) if match else 0)
                if len(self.buffer) < total:
                    return
                self.buffer = self.buffer[total:]
                self.transport.write(response)

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", port, backlog=4096)
        ready.set()
        await server.serve_forever()

    _use_uvloop()
    asyncio.run(serve())


def _use_uvloop() -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass


def run_load(
    url: str, clients: int, processes: int, seconds: float, warm_s: float, server_pid: int | None = None,
    max_tokens: int = 0,
) -> dict[str, float]:  # fmt: skip
    port = int(url.rsplit(":", 1)[1])
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    start_at = time.time() + 3.0  # every process connects and starts together
    cpu: dict[str, float | None] = {}
    machine: dict[str, tuple[int, int, int]] = {}
    threads: dict[str, dict[int, float]] = {}

    fronts = _children(server_pid) if server_pid is not None else []

    def sample_cpu(key: str) -> None:
        cpu[key] = _cpu_seconds(server_pid) if server_pid is not None else None
        cpu["fronts-" + key] = sum(_cpu_seconds(pid) or 0.0 for pid in fronts)
        machine[key] = _machine_cpu()
        threads[key] = _thread_cpu(server_pid) if server_pid is not None else {}

    for key, at in (("start", start_at + warm_s), ("end", start_at + warm_s + seconds)):
        timer = threading.Timer(at - time.time(), sample_cpu, (key,))  # the measured window only
        timer.daemon = True
        timer.start()
    shares = [clients // processes + (i < clients % processes) for i in range(processes)]
    workers = [
        context.Process(
            target=_load_process, args=(port, n, warm_s, seconds, start_at, results, i * 10**7, max_tokens)
        )
        for i, n in enumerate(shares)
        if n
    ]
    for worker in workers:
        worker.start()
    latencies: list[float] = []
    errors: list[int] = []
    tokens: list[int] = []
    batches: Costs = []
    client_cpu_s = 0.0
    for _ in workers:
        got_latencies, got_errors, got_tokens, got_batches, got_cpu_s = results.get(
            timeout=seconds + warm_s + 120
        )
        latencies += got_latencies
        errors += got_errors
        tokens += got_tokens
        batches += got_batches
        client_cpu_s += got_cpu_s
    for worker in workers:
        worker.join()
    latencies.sort()
    start, end = cpu.get("start"), cpu.get("end")
    cpu_ms = float("nan")
    if start is not None and end is not None and latencies:
        cpu_ms = (end - start) * 1e3 / len(latencies)
    front_s = (cpu.get("fronts-end") or 0.0) - (cpu.get("fronts-start") or 0.0)
    front_ms = front_s * 1e3 / max(1, len(latencies))

    busy = idle = steal = 0
    if len(machine) == 2:
        busy, idle, steal = (machine["end"][i] - machine["start"][i] for i in range(3))
    ticks = busy + idle + steal
    # the server's busiest threads over the window, in cores (1.0: a thread never off the CPU)
    used = sorted(
        (seconds - threads.get("start", {}).get(tid, 0.0) for tid, seconds in threads.get("end", {}).items()),
        reverse=True,
    )

    def pct(q: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e3 if latencies else float("nan")
        )

    return {
        "requests": len(latencies),
        "rps": len(latencies) / seconds,
        "p50": pct(0.50),
        "p95": pct(0.95),
        "p99": pct(0.99),
        "mean": statistics.fmean(latencies) * 1e3 if latencies else float("nan"),
        "errors": len(errors),
        "cpu_ms": cpu_ms,
        "front_cpu_ms": front_ms,  # the server's child processes, all together
        "tokens_per_s": sum(tokens) / seconds,
        # requests in the batch each request rode in, as requests saw it (embeddings)
        "batch_requests": statistics.fmean(b[0] for b in batches) if batches else float("nan"),
        # as requests saw them: their batch's run, and their wait in the model's queue before it
        "processing_ms": statistics.fmean(b[1] for b in batches) if batches else float("nan"),
        "queue_ms": statistics.fmean(b[2] for b in batches) if batches else float("nan"),
        # the load processes' CPU per request (warm-up included): they must not be the limit
        "client_cpu_ms": client_cpu_s * 1e3 / len(latencies) if latencies else float("nan"),
        # the whole machine over the window: share of all cores busy, and stolen by the hypervisor
        "machine_busy": busy / ticks if ticks else float("nan"),
        "machine_steal": steal / ticks if ticks else float("nan"),
        "server_threads": [u / seconds for u in used[:4]],
    }


def ceiling_row(clients: int, processes: int, seconds: float, warm_s: float) -> dict[str, Any]:
    """The same load against `_echo_server`, answering with an embeddings-sized body."""
    vector = ",".join(f"{v:.9f}" for v in [0.0123456789 * (i % 97 - 48) for i in range(384)])
    body = (
        f'{{"object":"list","data":[{{"object":"embedding","index":0,"embedding":[{vector}]}}],'
        f'"model":"{MODEL}","usage":{{"prompt_tokens":16,"total_tokens":16}}}}'
    ).encode()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    server = context.Process(target=_echo_server, args=(port, body, ready), daemon=True)
    server.start()
    try:
        if not ready.wait(60):
            raise SystemExit("the canned-answer server did not start")
        row = run_load(f"http://127.0.0.1:{port}", clients, processes, seconds, warm_s, server.pid)
    finally:
        server.terminate()
        server.join(10)
    row["device"] = "none (canned answers)"
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", choices=["embeddings", "chat"], default="embeddings")
    parser.add_argument("--clients", type=int, help="concurrent clients (default: 256 embeddings, 32 chat)")
    parser.add_argument("--max-tokens", type=int, default=64, help="chat: answer tokens at most")
    parser.add_argument(
        "--random-chat-model", action="store_true", help="chat: SmolLM2-135M shapes with random weights"
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--repeat", type=int, default=1, help="on/off pairs, run alternately; the ratio is their median"
    )
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model-source", help="the model's folder or file (default: the shipped package)")
    parser.add_argument(
        "--tiny-model", action="store_true", help="a random tiny BERT: measures the server, not the model"
    )
    parser.add_argument("--client-processes", type=int, default=max(1, min(8, (os.cpu_count() or 2) // 2)))
    parser.add_argument(
        "--wait-ms", type=float, default=2.0, help="the batch window (ALTLAS_BATCH_MAX_WAIT_MS)"
    )
    parser.add_argument(
        "--ceiling", action="store_true",
        help="first drive a server that answers at once with canned answers: the load processes' limit",
    )  # fmt: skip
    args = parser.parse_args()
    from altlas.orchestrator.registry import default_registry_text

    chat = args.workload == "chat"
    name = CHAT_MODEL if chat else MODEL
    clients = args.clients or (32 if chat else 256)
    max_tokens = args.max_tokens if chat else 0
    registry = yaml.safe_load(default_registry_text())
    registry["models"] = [m for m in registry["models"] if m["name"] == name]
    rows: list[tuple[str, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        source = args.model_source
        if args.tiny_model:
            source = make_tiny_model(Path(tmp) / "tiny")
        elif args.random_chat_model:
            sys.path.insert(0, str(ROOT / "bench"))
            import torch

            from generation import random_model_folder

            source = str(random_model_folder(Path(tmp) / "random-lm", torch.bfloat16))
        if source:
            model = registry["models"][0]
            model["versions"] = {model["active"]: str(Path(source).resolve())}
        if args.ceiling:
            rows.append(("ceiling", ceiling_row(clients, args.client_processes, args.seconds, args.warmup)))
        for run, batching in [(r, b) for r in range(args.repeat) for b in ("on", "off")]:
            data = Path(tmp) / f"data-{batching}-{run}"
            data.mkdir()
            (data / "models.yaml").write_text(yaml.safe_dump(registry))
            env = {
                "ALTLAS_SERVICES": "orchestrator", "ALTLAS_DEVICE": args.device,
                "ALTLAS_LOG_LEVEL": "WARNING",
                "ALTLAS_BATCHING": "1" if batching == "on" else "0", "ALTLAS_QUEUE_MAX": "100000",
                "ALTLAS_MAX_CONCURRENT_REQUESTS": "0", "ALTLAS_BATCH_MAX_WAIT_MS": str(args.wait_ms),
                "HF_HUB_OFFLINE": "1",
            }  # fmt: skip
            process, url = start_server(data, env, Path(tmp) / f"server-{batching}-{run}.log", name)
            try:
                with urllib.request.urlopen(f"{url}/v1/models/{name}") as response:
                    device = json.load(response)["altlas"]["device"]
                row = run_load(
                    url, clients, args.client_processes, args.seconds, args.warmup, process.pid, max_tokens
                )
                row["device"] = device
                rows.append((batching, row))
            finally:
                process.terminate()
                process.wait(timeout=30)
    what = (f"POST /v1/chat/completions, greedy answers of up to {max_tokens} tokens"
            if chat else "POST /v1/embeddings, one sentence per request")  # fmt: skip
    print(f"\n{what}, {clients} concurrent clients, "
          f"{args.seconds:g} s after {args.warmup:g} s warm-up, {args.client_processes} load processes, "
          f"device: {rows[-1][1]['device']}{'; tiny random model' if args.tiny_model else ''}\n")  # fmt: skip
    print(
        "| batching | requests/s | p50 ms | p95 ms | p99 ms | errors | server CPU ms/request | answer tok/s "
        "| requests per batch | batch run / queue wait, ms | client CPU ms/request "
        "| child processes' CPU ms/request | machine busy / steal | server's busiest threads, cores |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---|")
    for setting, row in rows:
        latency = f"{row['p50']:.1f} | {row['p95']:.1f} | {row['p99']:.1f}"
        extra = (f"{row['batch_requests']:.1f} | {row['processing_ms']:.1f} / {row['queue_ms']:.1f} | "
                 f"{row['client_cpu_ms']:.3f} | {row['front_cpu_ms']:.3f}")  # fmt: skip
        machine = f"{row['machine_busy']:.0%} / {row['machine_steal']:.0%}"
        busiest = " ".join(f"{cores:.2f}" for cores in row["server_threads"])
        print(f"| {setting} | {row['rps']:,.0f} | {latency} | {row['errors']} | {row['cpu_ms']:.3f} | "
              f"{row['tokens_per_s']:,.0f} | {extra} | {machine} | {busiest} |")  # fmt: skip
    measured = [row for setting, row in rows if setting != "ceiling"]
    pairs = [(measured[i], measured[i + 1]) for i in range(0, len(measured), 2)]
    ratios = [on["rps"] / off["rps"] for on, off in pairs]
    p99s = [on["p99"] / off["p99"] for on, off in pairs]
    runs = ", ".join(f"{r:.1f}x" for r in ratios)
    print(f"\nthroughput on/off: {statistics.median(ratios):.1f}x (median of {len(ratios)}: {runs}); "
          f"p99 on/off: {statistics.median(p99s):.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
