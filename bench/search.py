"""Exact top-k search: ours (fused Triton kernels, and the chunked library path) vs torch mm + topk
on the same GPU in the same precision, and vs faiss-cpu (IndexFlatIP, fp32, all host cores).

For N database rows of dim d in fp16 on one GPU and Q queries, prints ms per search,
queries/s, achieved TFLOP/s (2 Q N d) and GB/s (database bytes read once), against
the card's measured fp16 matmul peak and copy bandwidth: the two floors. Then
`similar_pairs` on 100k x d with planted near-duplicates (threshold 0.9): the fused
kernel vs the blocked torch baseline (the library path at its best block size).

Every search repeats on the same database, as in a service: from the second call on, the
fused path replays a CUDA graph (altlas/search/graphs.py). --eager turns the graphs off to
time the first call of a shape.

    python bench/search.py [--sizes 10000 100000 1000000 10000000] [--queries 1 64 1024]
                           [--ks 1 10 100] [--pairs 100000] [--eager] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path
from typing import Any

import torch

from altlas.errors import InvalidInputError
from altlas.search import similar_pairs
from altlas.search.topk import _GRAPHS as search_graphs
from altlas.search.topk import topk

try:
    import faiss
except ImportError:  # the faiss column is left out
    faiss = None

FAISS_MAX_WORK = 1_100_000_000  # Q x N; beyond this one faiss-cpu search takes tens of seconds


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


def faiss_index(db: torch.Tensor) -> Any:
    if faiss is None:
        return None
    index = faiss.IndexFlatIP(db.shape[1])
    for start in range(0, db.shape[0], 1 << 20):
        index.add(db[start : start + (1 << 20)].float().cpu().numpy())
    return index


def faiss_ms(index: Any, q: torch.Tensor, k: int) -> float:
    queries = q.float().cpu().numpy()
    index.search(queries[:1], k)  # warm the thread pool
    start = time.perf_counter()
    index.search(queries, k)
    return (time.perf_counter() - start) * 1e3


def planted_duplicates(n: int, dim: int) -> torch.Tensor:
    """Random rows where a tenth are noisy copies of others (cosine about 0.96 to 0.88)."""
    gen = torch.Generator(device="cuda")
    gen.manual_seed(1)
    rows = torch.randn((n, dim), device="cuda", generator=gen)
    copies = n // 10
    source = torch.randint(0, n - copies, (copies,), device="cuda", generator=gen)
    noise = torch.rand((copies, 1), device="cuda", generator=gen) * 0.3 + 0.25
    rows[n - copies :] = rows[source] + noise * torch.randn((copies, dim), device="cuda", generator=gen)
    return rows.half()


def bench_pairs(n: int, dim: int) -> dict[str, Any]:
    vectors = planted_duplicates(n, dim)
    blocked = {
        block: cuda_ms(
            lambda block=block: similar_pairs(
                vectors, 0.9, backend="library", block=block, check_finite_values=False
            ),
            repeat=3,
        )
        for block in (4096, 8192, 16384)
    }
    best_block = min(blocked, key=blocked.__getitem__)
    fused = cuda_ms(lambda: similar_pairs(vectors, 0.9, backend="fused", check_finite_values=False), repeat=5)
    found = {b: int(similar_pairs(vectors, 0.9, backend=b, check_finite_values=False)[0].numel())
             for b in ("fused", "library")}  # fmt: skip
    print(f"\n# similar_pairs, {n:,} x {dim} fp16 with planted near-duplicates, threshold 0.9")
    print(f"blocked torch (block {best_block}): {blocked[best_block]:.2f} ms | fused: {fused:.2f} ms | "
          f"speed-up {blocked[best_block] / fused:.2f}x | pairs found: fused {found['fused']}, "
          f"blocked {found['library']}")  # fmt: skip
    return {"n": n, "blocked_ms": blocked, "fused_ms": fused, "pairs": found}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000, 10_000_000])
    parser.add_argument("--queries", type=int, nargs="+", default=[1, 64, 1024])
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--pairs", type=int, default=100_000, help="rows for similar_pairs (0: skip)")
    parser.add_argument("--eager", action="store_true", help="no CUDA-graph replay of repeated searches")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    search_graphs.enabled = not args.eager
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
        "faiss-cpu ms",
        "floor ms",
        "fused TFLOP/s",
        "GB/s",
    )
    print(" | ".join(f"{h:>11}" for h in header))
    rows: list[dict[str, Any]] = []
    for n in args.sizes:
        db = torch.randn(n, args.dim, device="cuda", dtype=torch.float16)
        index = faiss_index(db)
        for n_q in args.queries:
            q = torch.randn(n_q, args.dim, device="cuda", dtype=torch.float16)
            for k in args.ks:
                plain = cuda_ms(lambda q=q, k=k, db=db: torch.topk(q @ db.T, k, dim=1))
                library = cuda_ms(
                    lambda q=q, k=k, db=db: topk(q, db, k, backend="library", check_finite_values=False)
                )
                fused = None
                with contextlib.suppress(InvalidInputError):  # a shape no fused kernel takes
                    fused = cuda_ms(
                        lambda q=q, k=k, db=db: topk(q, db, k, backend="fused", check_finite_values=False)
                    )
                cpu = faiss_ms(index, q, k) if index is not None and n_q * n <= FAISS_MAX_WORK else None
                flops = 2 * n_q * n * args.dim
                floor = max(flops / peak_tflops / 1e9, db.numel() * 2 / bandwidth / 1e6)
                best = fused if fused is not None else library
                row = {"N": n, "Q": n_q, "k": k, "torch_ms": plain, "library_ms": library, "fused_ms": fused,
                       "faiss_cpu_ms": cpu, "floor_ms": floor}  # fmt: skip
                rows.append(row)
                cells = (
                    f"{n:,}", str(n_q), str(k), f"{plain:.3f}", f"{library:.3f}",
                    "-" if fused is None else f"{fused:.3f}", f"{plain / best:.2f}x",
                    "-" if cpu is None else f"{cpu:.1f}", f"{floor:.3f}",
                    f"{flops / best / 1e9:.1f}", f"{db.numel() * 2 / best / 1e6:.0f}",
                )  # fmt: skip
                print(" | ".join(f"{c:>11}" for c in cells), flush=True)
        del db, index
    pairs = bench_pairs(args.pairs, args.dim) if args.pairs else None
    if args.json:
        args.json.write_text(
            json.dumps(
                {"rows": rows, "pairs": pairs, "peak_tflops": peak_tflops, "bandwidth_gbps": bandwidth}
            )
        )


if __name__ == "__main__":
    main()
