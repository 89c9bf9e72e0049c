"""Bulk segmentation throughput: commands/s for 1k and 100k commands.

Runs, in one process and on the same generated commands (English and Turkish,
1-4 actions each):
  single  - segment_command + compact JSON, one command after another (the baseline)
  bulk    - altlas.segmentation.bulk.segment_lines on all cores (what `altlas segment --input` runs)
  cli     - the whole `altlas segment --input FILE --format jsonl --output FILE` command,
            process start-up and file I/O included
and prints a table with the bulk/single ratio.

    python bench/segmentation.py [--sizes 1000 100000] [--workers N]
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


def time_bulk(commands: list[str], workers: int) -> float:
    started = time.perf_counter()
    produced = sum(1 for _ in segment_lines(commands, workers=workers, expected=len(commands)))
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
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
