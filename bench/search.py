"""Exact top-k search: ours (fused Triton kernel, and the chunked library path) vs torch mm + topk.

For N database rows of dim d in fp16 on one GPU and Q queries, prints ms per search,
queries/s, achieved TFLOP/s (2 Q N d) and GB/s (database bytes read once), against
the card's measured fp16 matmul peak and copy bandwidth: the two floors.

    python bench/search.py [--sizes 100000 1000000] [--queries 1 64 1024] [--ks 1 10 100]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from altlas.search.topk import topk


def cuda_ms(fn: Any, repeat: int = 10) -> float:
    for _ in range(2):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(repeat):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / repeat


def floors() -> tuple[float, float]:
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.float16)
    tflops = 2 * n**3 / cuda_ms(lambda: a @ a) / 1e9
    x = torch.empty(2**28, dtype=torch.uint8, device="cuda")
    y = torch.empty_like(x)
    gbps = 2 * x.numel() / cuda_ms(lambda: y.copy_(x)) / 1e6
    return tflops, gbps


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, nargs="+", default=[1, 64, 1024])
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    peak_tflops, bandwidth = floors()
    print(f"# {torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    print(f"# floors: fp16 matmul {peak_tflops:.0f} TFLOP/s, copy {bandwidth:.0f} GB/s")
    header = (
        "N",
        "Q",
        "k",
        "torch ms",
        "library ms",
        "fused ms",
        "fused/torch",
        "floor ms",
        "fused TFLOP/s",
        "GB/s",
    )
    print(" | ".join(f"{h:>11}" for h in header))
    rows: list[dict[str, Any]] = []
    for n in args.sizes:
        db = torch.randn(n, args.dim, device="cuda", dtype=torch.float16)
        for n_q in args.queries:
            q = torch.randn(n_q, args.dim, device="cuda", dtype=torch.float16)
            for k in args.ks:
                plain = cuda_ms(lambda q=q, k=k, db=db: torch.topk(q @ db.T, k, dim=1))
                library = cuda_ms(
                    lambda q=q, k=k, db=db: topk(q, db, k, backend="library", check_finite_values=False)
                )
                fused = None
                if k <= 64:
                    fused = cuda_ms(
                        lambda q=q, k=k, db=db: topk(q, db, k, backend="fused", check_finite_values=False)
                    )
                flops = 2 * n_q * n * args.dim
                floor = max(flops / peak_tflops / 1e9, db.numel() * 2 / bandwidth / 1e6)
                best = fused if fused is not None else library
                row = {"N": n, "Q": n_q, "k": k, "torch_ms": plain, "library_ms": library, "fused_ms": fused,
                       "floor_ms": floor}  # fmt: skip
                rows.append(row)
                cells = (
                    f"{n:,}", str(n_q), str(k), f"{plain:.3f}", f"{library:.3f}",
                    "-" if fused is None else f"{fused:.3f}", f"{plain / best:.2f}x", f"{floor:.3f}",
                    f"{flops / best / 1e9:.1f}", f"{db.numel() * 2 / best / 1e6:.0f}",
                )  # fmt: skip
                print(" | ".join(f"{c:>11}" for c in cells), flush=True)
    if args.json:
        args.json.write_text(
            json.dumps({"rows": rows, "peak_tflops": peak_tflops, "bandwidth_gbps": bandwidth})
        )


if __name__ == "__main__":
    main()
