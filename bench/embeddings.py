"""Embedding throughput: altlas's engine vs SentenceTransformer.encode, same model, device, precision, inputs.

For each size (texts in, normalised float32 vectors in host memory out) it prints
texts/s and tokens/s of both, the ratio, peak GPU memory, and where our time went
(tokenization in the producer thread vs device work). sentence-transformers runs at
each of --st-batch-sizes and its best is the baseline. With CUDA it also times our
engine on CPU at the smallest sizes (GPU vs CPU speedup) and the model's bare forward
at our batch shape against the card's measured fp16 matmul peak.

    python bench/embeddings.py [--device cuda] [--sizes 100 1000 10000 100000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from altlas.embeddings import Embedder, default_model_path
from altlas.runtime.process import configure_process
from altlas.settings import Settings
from commands import generate_short_commands


def timed(fn: Any, repeat: int = 1) -> float:
    """Best wall time of `repeat` runs (the first run of a new size also sets up shapes)."""
    best = float("inf")
    for _ in range(repeat):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        started = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return best


def matmul_peak_tflops(device: torch.device, dtype: torch.dtype) -> float:
    n = 8192
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    runs = 10
    elapsed = timed(lambda: [a @ b for _ in range(runs)])
    return 2 * n**3 * runs / elapsed / 1e12


def forward_tflops(embedder: Embedder, batch: int, seq: int) -> tuple[float, float]:
    """Bare model forward at [batch, seq]: (sequences/s, TFLOP/s)."""
    spec = embedder.spec
    ids = torch.randint(1000, 20000, (batch, seq), device=embedder.device)
    with torch.inference_mode():
        for _ in range(3):
            embedder.model(ids, None)
        runs = 20
        elapsed = timed(lambda: [embedder.model(ids, None) for _ in range(runs)])
    h, f, n_layers = spec.hidden_size, spec.intermediate_size, spec.num_layers
    per_token = n_layers * (
        2 * (4 * h * h + 2 * h * f) + 4 * seq * h
    )  # linear layers + attention scores/values
    flops = per_token * batch * seq * runs
    return batch * runs / elapsed, flops / elapsed / 1e12


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--model", default=None, help="model folder (default: the shipped all-MiniLM-L6-v2)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10_000, 100_000])
    parser.add_argument("--st-batch-sizes", type=int, nargs="+", default=[64, 1024, 4096])
    parser.add_argument("--repeat", type=int, default=2, help="runs per measurement; the best counts")
    parser.add_argument("--cpu-sizes", type=int, nargs="*", default=[100, 1000], help="sizes also run on CPU")
    parser.add_argument("--gpu-memory-gb", type=float, default=None)
    parser.add_argument("--skip-st", action="store_true", help="only our engine")
    parser.add_argument("--json", type=Path, help="write results here too")
    args = parser.parse_args()

    configure_process(Settings.from_env())  # as `altlas serve` sets the process up (ALTLAS_CUDNN_SDPA)
    embedder = Embedder(
        args.model, device=args.device, precision=args.precision, gpu_memory_gb=args.gpu_memory_gb
    )
    embedder.warmup()
    device, dtype = embedder.device, embedder.dtype
    versions = f"torch {torch.__version__}, CUDA {torch.version.cuda}, Python {platform.python_version()}"
    print(f"# {embedder.describe()}; {versions}")
    print(f"# host: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    st = None
    if not args.skip_st:
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(str(args.model or default_model_path()), device=str(device))
        st = st.half() if dtype == torch.float16 else st.bfloat16() if dtype == torch.bfloat16 else st.float()
        st.encode(["warm up"], batch_size=1)

    results: list[dict[str, Any]] = []
    header = (
        "texts",
        "ours/s",
        "tok/s",
        "ST best/s",
        "ST batch",
        "ratio",
        "peak GB",
        "tokenize s",
        "device s",
    )
    print(" | ".join(f"{h:>10}" for h in header))
    for size in args.sizes:
        texts = generate_short_commands(size, seed=size)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        ours_s = timed(lambda t=texts: embedder.encode(t), args.repeat)
        stats = embedder.last_stats
        row: dict[str, Any] = {
            "texts": size,
            "ours_texts_per_s": size / ours_s,
            "ours_tokens_per_s": stats.real_tokens / ours_s,
            "padding_efficiency": stats.padding_efficiency,
            "peak_gpu_bytes": stats.peak_gpu_bytes,
            "tokenize_s": stats.tokenize_s,
            "device_s": stats.device_s,
            "batches": stats.batches,
        }
        if st is not None:
            best = (0.0, 0)
            for batch_size in args.st_batch_sizes:
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                elapsed = timed(
                    lambda t=texts, b=batch_size: st.encode(
                        t, batch_size=b, convert_to_numpy=True, normalize_embeddings=True
                    ),
                    args.repeat,
                )
                row[f"st_batch_{batch_size}_texts_per_s"] = size / elapsed
                if size / elapsed > best[0]:
                    best = (size / elapsed, batch_size)
            row["st_best_texts_per_s"], row["st_best_batch"] = best
            row["ratio"] = row["ours_texts_per_s"] / best[0]
        results.append(row)
        peak = f"{stats.peak_gpu_bytes / 1e9:.2f}" if stats.peak_gpu_bytes else "-"
        cells = (
            f"{size:,}", f"{row['ours_texts_per_s']:,.0f}", f"{row['ours_tokens_per_s']:,.0f}",
            f"{row.get('st_best_texts_per_s', 0):,.0f}", str(row.get("st_best_batch", "-")),
            f"{row.get('ratio', 0):.2f}x", peak, f"{stats.tokenize_s:.3f}", f"{stats.device_s:.3f}",
        )  # fmt: skip
        print(" | ".join(f"{c:>10}" for c in cells), flush=True)

    summary: dict[str, Any] = {"rows": results, "device": embedder.describe(), "torch": torch.__version__}
    if device.type == "cuda":
        cpu = Embedder(args.model, device="cpu")
        cpu.warmup()
        for size in args.cpu_sizes:
            texts = generate_short_commands(size, seed=size)
            cpu_rate = size / timed(lambda t=texts: cpu.encode(t), args.repeat)
            gpu_rate = next((r["ours_texts_per_s"] for r in results if r["texts"] == size), None)
            summary[f"cpu_{size}_texts_per_s"] = cpu_rate
            if gpu_rate:
                speedup = gpu_rate / cpu_rate
                print(f"# {size:,} texts: CPU {cpu_rate:,.0f}/s vs GPU {gpu_rate:,.0f}/s -> {speedup:.1f}x")
        peak = matmul_peak_tflops(device, dtype)
        lengths = [len(embedder.tokenizer([t])[0]) for t in generate_short_commands(2000, seed=1)]
        seq = int(np.percentile(lengths, 50))
        batch = 65_536 // seq
        seqs, tflops = forward_tflops(embedder, batch, seq)
        summary.update(
            matmul_peak_tflops=peak, forward_batch=[batch, seq], forward_seq_per_s=seqs, forward_tflops=tflops
        )
        print(f"# matmul peak {peak:.0f} TFLOP/s; bare forward [{batch} x {seq}]: {seqs:,.0f} seq/s, "
              f"{tflops:.1f} TFLOP/s = {100 * tflops / peak:.1f}% of peak")  # fmt: skip
        mean_len = float(np.mean(lengths))
        print(f"# mean tokens per text {mean_len:.1f}")
    embedder.close()
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
