"""Bulk segmentation throughput: commands/s for 1k and 100k commands.

Runs, in one process and on the same generated commands (English and Turkish,
1-4 actions each):
  single  - segment_command + compact JSON, one command after another (the baseline)
  bulk    - altlas.segmentation.bulk.segment_lines on all cores (what `altlas segment --input` runs)
  cli     - the whole `altlas segment --input FILE --format jsonl --output FILE` command,
            process start-up and file I/O included
and prints a table with the bulk/single ratio. With --embeddings it instead times
bulk segmentation with the embedding stage on (rules in worker processes, undecided
segments embedded and typed in this process, on the GPU if there is one) against
the same run without it.

    python bench/segmentation.py [--sizes 1000 100000] [--workers N] [--embeddings [--device cuda]]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from altlas.plans.codec import plan_to_dict
from altlas.segmentation import segment_command
from altlas.segmentation.bulk import segment_lines
from commands import generate_commands


def time_single(commands: list[str]) -> float:
    started = time.perf_counter()
    for command in commands:
        json.dumps(plan_to_dict(segment_command(command)), ensure_ascii=False, separators=(",", ":"))
    return time.perf_counter() - started


def time_bulk(commands: list[str], workers: int, prototypes: Any = None) -> float:
    started = time.perf_counter()
    results = segment_lines(commands, workers=workers, expected=len(commands), prototypes=prototypes)
    produced = sum(1 for _ in results)
    elapsed = time.perf_counter() - started
    assert produced == len(commands)
    return elapsed


def time_cli(commands: list[str], workers: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "in.txt", Path(tmp) / "out.jsonl"
        source.write_text("\n".join(commands) + "\n", encoding="utf-8")
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "altlas", "segment", "--input", str(source), "--format", "jsonl",
             "--output", str(target), "--workers", str(workers), "--no-progress"],
            check=True,
        )  # fmt: skip
        elapsed = time.perf_counter() - started
        lines = target.read_text(encoding="utf-8").count("\n")
        assert lines == len(commands), lines
    return elapsed


def embedding_stage(device: str) -> tuple[Any, str]:
    """A prototypes factory whose embedder is built once (its load is not what we time)."""
    from altlas.embeddings import Embedder
    from altlas.runtime.process import configure_process
    from altlas.segmentation.prototypes import TypePrototypes
    from altlas.settings import Settings

    settings = Settings.from_env()
    configure_process(settings)  # as `altlas segment --embeddings` does
    embedder = Embedder(settings.embedding_model or None, device=device)
    embedder.warmup()
    prototypes = TypePrototypes(embedder.encode)
    return (lambda: prototypes), embedder.describe()


def main_embeddings(sizes: list[int], workers: int, device: str) -> None:
    factory, described = embedding_stage(device)
    print(f"# embedding stage: {described}")
    print(" | ".join(f"{h:>14}" for h in ("commands", "rules cmd/s", "+embed cmd/s", "embedded segs")))
    for size in sizes:
        commands = generate_commands(size, seed=size)
        plain = size / time_bulk(commands, workers)
        started = time.perf_counter()
        undecided = 0
        for line, _ in segment_lines(commands, workers=workers, expected=size, prototypes=factory):
            undecided += line.count('"classified_by":"embedding"')
        with_stage = size / (time.perf_counter() - started)
        print(
            " | ".join(
                f"{c:>14}" for c in (f"{size:,}", f"{plain:,.0f}", f"{with_stage:,.0f}", f"{undecided:,}")
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--embeddings", action="store_true", help="time the embedding stage instead")
    parser.add_argument("--device", default="auto", help="for --embeddings: auto, cpu, cuda")
    args = parser.parse_args()
    if args.embeddings:
        main_embeddings(args.sizes, args.workers, args.device)
        return
    cpu = platform.processor() or platform.machine()
    print(f"# {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}")
    header = ("commands", "single cmd/s", "bulk cmd/s", "cli cmd/s", "bulk/single")
    print(" | ".join(f"{h:>12}" for h in header))
    print("-" * 72)
    for size in args.sizes:
        commands = generate_commands(size, seed=size)
        segment_command(commands[0])  # warm the lexicon tables
        single = size / time_single(commands)
        bulk = size / time_bulk(commands, args.workers)
        cli = size / time_cli(commands, args.workers)
        row = (f"{size:,}", f"{single:,.0f}", f"{bulk:,.0f}", f"{cli:,.0f}", f"{bulk / single:.2f}x")
        print(" | ".join(f"{cell:>12}" for cell in row))


if __name__ == "__main__":
    main()
