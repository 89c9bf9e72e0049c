"""Many generations at once: continuous batching vs one at a time, engine only (no HTTP).

    python bench/continuous.py [--random | --model FOLDER] [--concurrency 1 8 32 64]
                               [--tokens 128] [--prompt-tokens 32] [--device cuda]

For each concurrency N, N threads each ask for a greedy answer of exactly `--tokens` tokens
(end-of-turn ignored) after a prompt of `--prompt-tokens`, at once:
- one at a time: TextGenerator with the batch-1 decoder (the CUDA-graph static-cache path on
  a GPU), the generations served in turn, as with `batching: false`;
- continuous: TextGenerator with continuous batching (paged KV cache, up to N sequences per
  step, a CUDA graph per batch bucket).
Printed: answer tokens per second over all generations, mean time to first token, and the
ratio. Random weights (SmolLM2-135M shapes) unless --model: a step's speed does not depend on
the weights' values.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from altlas.generation.engine import TextGenerator
from altlas.generation.sampling import SamplingParams
from generation import random_model_folder


def run(engine: TextGenerator, concurrency: int, prompt_tokens: int, tokens: int) -> tuple[float, float]:
    """(answer tokens/s over all, mean seconds to the first token) for `concurrency` callers."""
    firsts: list[float] = []
    lock = threading.Lock()  # one at a time when the engine has no continuous batching
    serial = engine.continuous is None

    def one(k: int) -> None:
        prompt = [5 + (i * 7 + k) % 200 for i in range(prompt_tokens)]
        params = SamplingParams(max_tokens=tokens, temperature=0.0)
        started = time.perf_counter()
        with lock if serial else _nothing():
            events = engine.stream(prompt, params)
            next(events)
            firsts.append(time.perf_counter() - started)
            for _ in events:
                pass

    threads = [threading.Thread(target=one, args=(k,)) for k in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return concurrency * tokens / (time.perf_counter() - started), statistics.fmean(firsts)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--random", action="store_true")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--pace-ms", type=float, default=10.0, help="how often callers read their tokens")
    parser.add_argument(
        "--switch-interval-ms", type=float, help="sys.setswitchinterval (default: Python's 5)"
    )
    args = parser.parse_args()
    if args.switch_interval_ms:
        sys.setswitchinterval(args.switch_interval_ms / 1e3)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype]
    device = torch.device(args.device)
    folder = args.model or random_model_folder(Path("/tmp/altlas-bench-smollm2-random"), dtype)
    context = args.prompt_tokens + args.tokens + 8
    most = max(args.concurrency)
    single = TextGenerator(folder, device, dtype, max_context=context)
    batched = TextGenerator(
        folder, device, dtype, max_context=context, max_sequences=most, kv_cache_tokens=most * context
    )
    for engine in (single, batched):
        engine.eos_ids = frozenset()
        if engine.continuous is not None:
            engine.continuous.eos_ids = frozenset()
            engine.continuous.pace_s = args.pace_ms / 1e3
        run(engine, 2, args.prompt_tokens, 8)  # warm
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"\n{name}, torch {torch.__version__}, {args.dtype}, "
          f"{'random weights' if args.model is None else folder.name}; prompt {args.prompt_tokens} tokens, "
          f"answers {args.tokens} tokens each, greedy")  # fmt: skip
    print(f"one at a time: {single.decode_path}; continuous: {batched.decode_path}; callers read every "
          f"{args.pace_ms:g} ms; switch interval {sys.getswitchinterval() * 1e3:g} ms\n")  # fmt: skip
    print(
        "| generations at once | one at a time tok/s | continuous tok/s | ratio "
        "| first token (one at a time / continuous) |"
    )
    print("|---:|---:|---:|---:|---|")
    for concurrency in args.concurrency:
        alone, alone_first = run(single, concurrency, args.prompt_tokens, args.tokens)
        together, together_first = run(batched, concurrency, args.prompt_tokens, args.tokens)
        print(f"| {concurrency} | {alone:,.0f} | {together:,.0f} | {together / alone:.1f}x | "
              f"{alone_first * 1e3:,.0f} ms / {together_first * 1e3:,.0f} ms |")  # fmt: skip
    stats = batched.continuous.stats if batched.continuous is not None else None
    print(f"\ncontinuous batcher: {stats}")
    batched.close()


if __name__ == "__main__":
    main()
