"""Decode speed by model shape: `transformers.generate` against altlas's paths, same model, same device.

Shapes (--shape, one or several, or all): smollm2-135m, qwen2.5-0.5b, llama-3.2-1b,
qwen2.5-1.5b, llama-3.2-3b, qwen3-4b, qwen2.5-7b, llama-3.1-8b, mistral-7b-v0.3; SHAPES (in
scripts/gpu_families.py, which checks the decoders on the same shapes) holds each one's public
config.json: hidden, intermediate, layers, heads, KV heads, head_dim, vocabulary, rope theta and
scaling, tied embeddings, positions (Qwen2's q/k/v biases come with its type). The weights are random,
drawn on the device in the bench's dtype (normal, std 0.02): a decode step's speed does not
depend on the weights' values, and an 8B model is drawn on a GPU in seconds. It is never written
to disk: the engines share the one model, and the model's folder holds only a tokenizer (a byte
per token, plus a token of three ASCII letters for every other id, so that each generated id
decodes to text as a real vocabulary's do). --model FOLDER measures a real folder instead.

For each shape, printed (and written to --json after each shape, so a cut-short run keeps what
it measured):
- tokens/s of `generate` (transformers' greedy generate, eager: what a plain script gets); of the
  engine's batch-1 path (TextGenerator.stream, greedy, end to end: sampling, detokenising, stop
  checks and a host sync per token; on a GPU the static-cache CUDA-graph decoder), median of 3;
  of the engine decoding through transformers; of the decoder's CUDA-graph step alone; and the
  memory-bandwidth floor: per token every weight is read once plus the KV cache so far, at the
  copy bandwidth measured in the same run. On CUDA also the kernels per step and their GPU time;
- time to first token of a --ttft-prompt-token prompt (1,024): `generate` of one token, the
  batch-1 engine, continuous batching (a one-token answer, end to end);
- continuous batching at --concurrency sequences (1 8 32): answer tokens/s over all and the
  mean time to first token (bench/continuous.py's `run`).

    python bench/generation.py --shape llama-3.1-8b qwen3-4b [--tokens 256] [--json out.json]
    python bench/generation.py --shape all --tokens 128 --json gen.json       # every shape
    python bench/generation.py --device cpu --shape smollm2-135m --tokens 8 --ttft-prompt 64 \\
        --concurrency 1 2                                                     # a quick check
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from altlas.generation.engine import TextGenerator
from altlas.generation.sampling import SamplingParams

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from gpu_families import SHAPES, build, free, synchronize, weight_bytes  # one table of the released shapes


def random_model(shape: str, dtype: torch.dtype, device: torch.device) -> Any:
    """A model of `shape` with random weights (normal, std 0.02), drawn on `device` in `dtype`."""
    return build(SHAPES[shape], device, dtype, layers=0)


def tokenizer_folder(path: Path, vocab_size: int) -> Path:
    """A byte-level tokenizer of `vocab_size` ids saved in `path`: <t0> <t1> (bos) <t2> (eos), a
    token per byte (no merges, so text encodes byte by byte), then three ASCII letters per id up
    to `vocab_size`; SmolLM2's ChatML chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())  # one character per byte
    vocab = {"<t0>": 0, "<t1>": 1, "<t2>": 2} | {char: 3 + i for i, char in enumerate(alphabet)}
    letters = [chr(c) for c in range(33, 127)]  # printable ASCII stands for itself in ByteLevel
    for i in range(vocab_size - len(vocab)):
        vocab["".join(letters[i // len(letters) ** k % len(letters)] for k in range(3))] = len(vocab)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<t1>", eos_token="<t2>")
    fast.chat_template = (  # SmolLM2's ChatML layout, spelled out in bytes
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    fast.save_pretrained(path)
    return path


def random_model_folder(path: Path, dtype: torch.dtype) -> Path:
    """A SmolLM2-135M-shaped folder with random weights and the tokenizer (for bench/continuous.py
    and the GPU tests). A wide initialisation (std 0.1), so that greedy decoding wanders over the
    vocabulary instead of repeating."""
    from transformers import AutoConfig, AutoModelForCausalLM

    settings = dict(SHAPES["smollm2-135m"])
    config = AutoConfig.for_model(settings.pop("model_type"), **settings, initializer_range=0.1)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config, dtype=dtype).save_pretrained(path)
    return tokenizer_folder(path, config.vocab_size)


def copy_bandwidth(device: torch.device) -> float:
    """GB/s of a device-to-device copy (read + write) of 256 MB."""
    x = torch.empty(2**28, dtype=torch.uint8, device=device)
    y = torch.empty_like(x)
    y.copy_(x)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(10):
        y.copy_(x)
    synchronize(device)
    return 2 * x.numel() * 10 / (time.perf_counter() - start) / 1e9


class Progress:
    """Lines of what the bench is doing, with the seconds since it started."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def __call__(self, what: str) -> None:
        print(f"[{time.perf_counter() - self.started:7.1f} s] {what}", flush=True)


def prompt_ids(length: int, salt: int = 0) -> list[int]:
    return [5 + (i * 7 + salt) % 200 for i in range(length)]


def generate_rate(model: Any, prompt: list[int], tokens: int) -> float:
    """tokens/s of transformers' greedy generate, eager, exactly `tokens` new tokens."""
    device = model.device
    ids = torch.tensor([prompt], device=device)
    model.generate(ids, max_new_tokens=8, min_new_tokens=8, do_sample=False, pad_token_id=0)
    synchronize(device)
    start = time.perf_counter()
    out = model.generate(ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False, pad_token_id=0)
    synchronize(device)
    return (out.shape[1] - ids.shape[1]) / (time.perf_counter() - start)


def generate_first_token_s(model: Any, prompt: list[int]) -> float:
    """Seconds for `generate` to give one token after `prompt` (the second of two runs)."""
    ids = torch.tensor([prompt], device=model.device)
    for _ in range(2):
        start = time.perf_counter()
        model.generate(ids, max_new_tokens=1, min_new_tokens=1, do_sample=False, pad_token_id=0)
        synchronize(model.device)
    return time.perf_counter() - start


def engine_rate(generator: TextGenerator, prompt: list[int], tokens: int) -> float:
    """Decode tokens/s end to end: the whole answer's time minus a one-token answer's (the prefill)."""
    generator.complete(prompt, SamplingParams(max_tokens=8, temperature=0.0))  # warm
    one = first_token_s(generator, prompt)
    start = time.perf_counter()
    result = generator.complete(prompt, SamplingParams(max_tokens=tokens, temperature=0.0))
    return (result.completion_tokens - 1) / (time.perf_counter() - start - one)


def first_token_s(generator: TextGenerator, prompt: list[int]) -> float:
    """Seconds to a one-token answer after `prompt`, end to end (the second of two runs)."""
    for _ in range(2):
        start = time.perf_counter()
        generator.complete(prompt, SamplingParams(max_tokens=1, temperature=0.0))
    return time.perf_counter() - start


def step_rate(decoder: Any, position: int, steps: int) -> float:
    """Steps/s of the decoder's step alone (CUDA graph replays) back to back, each fed the one
    before's greedy choice (decoder.token) as a greedy caller does."""
    positions = range(position, position + steps)
    decoder.step(torch.tensor(7, device=decoder.device), position)
    for p in positions[1:8]:
        decoder.step(decoder.token, p)
    synchronize(decoder.device)
    start = time.perf_counter()
    for p in positions:
        decoder.step(decoder.token, p)
    synchronize(decoder.device)
    return len(positions) / (time.perf_counter() - start)


def bytes_per_token(model: Any, position: float) -> tuple[int, float]:
    """(weight bytes, KV-cache bytes) a batch-1 decode step reads at `position`: every weight
    once (an untied input embedding only for one row), and the keys and values so far."""
    config = model.config
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    per_position = 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim
    return weight_bytes(model), per_position * model.dtype.itemsize * position


def bench_model(
    folder: Path, model: Any, args: argparse.Namespace, bandwidth: float, progress: Progress
) -> dict[str, Any]:
    """Every measure of one model (see the module's docstring)."""
    from continuous import run  # bench/continuous.py (it imports this module: not at the top)

    device, dtype = model.device, model.dtype
    context = max(args.prompt_tokens, args.ttft_prompt) + args.tokens + 8
    most = max(args.concurrency)
    engine = TextGenerator(folder, device, dtype, max_context=context, model=model)
    plain = TextGenerator(folder, device, dtype, max_context=context, fast_decode=False, model=model)
    for generator in (engine, plain):
        generator.eos_ids = frozenset()  # decode exactly the tokens asked, whatever the weights say
    prompt, long_prompt = prompt_ids(args.prompt_tokens), prompt_ids(args.ttft_prompt, salt=3)
    progress(f"  batch-1 ({engine.decode_path}) and transformers.generate, {args.tokens} tokens")
    rates = {"transformers.generate": generate_rate(model, prompt, args.tokens)}
    ours = [engine_rate(engine, prompt, args.tokens) for _ in range(3)]
    rates["engine, transformers decode (no graph)"] = engine_rate(plain, prompt, args.tokens)
    rates["engine, batch-1 path (median of 3)"] = statistics.median(ours)
    kernels: dict[str, Any] = {}
    if engine.decoder is not None and engine.decoder.use_graph:
        rates["decoder step alone (CUDA graph)"] = step_rate(engine.decoder, args.prompt_tokens, args.tokens)
        kernels = kernels_per_step(engine.decoder, args.prompt_tokens)
    weights, kv_bytes = bytes_per_token(model, args.prompt_tokens + args.tokens / 2)
    rates["memory-bandwidth floor"] = bandwidth * 1e9 / (weights + kv_bytes)
    progress(f"  time to first token, {args.ttft_prompt}-token prompt")
    first = {"transformers.generate": generate_first_token_s(model, long_prompt),
             "engine, batch-1 path": first_token_s(engine, long_prompt)}  # fmt: skip
    plain.close()
    engine.close()
    batched = TextGenerator(
        folder, device, dtype, max_context=context, max_sequences=most,
        kv_cache_tokens=most * (args.prompt_tokens + args.tokens + 8) + context, model=model,
    )  # fmt: skip
    continuous = {}
    if batched.continuous is not None:  # else decode_fallback says why (in the report's paths)
        batched.eos_ids = batched.continuous.eos_ids = frozenset()
        first["continuous batching"] = first_token_s(batched, long_prompt)
        progress(f"  continuous batching ({batched.decode_path}) at {args.concurrency}")
        run(batched, 2, args.prompt_tokens, 8)  # warm
        for concurrency in args.concurrency:
            rate, first_s = run(batched, concurrency, args.prompt_tokens, args.tokens)
            continuous[concurrency] = {"tokens_per_s": rate, "first_token_ms": first_s * 1e3}
    batched.close()
    paths = {"batch-1": engine.decode_path, "continuous": batched.decode_path}
    fallbacks = {"batch-1": engine.decode_fallback, "continuous": batched.decode_fallback}
    return {
        "decode_paths": paths, "decode_fallbacks": fallbacks,
        "tokens_per_s": rates, "first_token_ms": {k: v * 1e3 for k, v in first.items()},
        "continuous": continuous, "weight_bytes": weights, "kv_bytes_per_token": kv_bytes, **kernels,
    }  # fmt: skip


def kernels_per_step(decoder: Any, position: int) -> dict[str, Any]:
    """Kernels launched by one eager decode step, and the GPU time they take together (us)."""
    from torch.profiler import ProfilerActivity, profile

    decoder.position.fill_(position)
    decoder._forward(False)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        decoder._forward(False)
        torch.cuda.synchronize()
    events = [
        e
        for e in prof.events()
        if e.device_type.name == "CUDA" and "Memcpy" not in e.name and "Memset" not in e.name
    ]
    by_name: dict[str, list[float]] = {}
    for e in events:
        by_name.setdefault(e.name[:60], []).append(e.time_range.end - e.time_range.start)
    for name, times in sorted(by_name.items(), key=lambda kv: -sum(kv[1]))[:8]:
        print(f"  {len(times):4d} x {statistics.mean(times):6.2f} us = {sum(times):7.1f} us  {name}")
    busy = sum(e.time_range.end - e.time_range.start for e in events)
    return {"kernels_per_step": len(events), "gpu_busy_us": busy}


def report(name: str, result: dict[str, Any]) -> None:
    rates, paths = result["tokens_per_s"], result["decode_paths"]
    generate, floor = rates["transformers.generate"], rates["memory-bandwidth floor"]
    print(f"\n{name}: batch-1 {paths['batch-1']}; continuous {paths['continuous']}")
    print(f"{'path':<42} {'tokens/s':>10} {'vs generate':>12} {'of floor':>9}")
    for path, rate in rates.items():
        print(f"{path:<42} {rate:>10.1f} {rate / generate:>11.1f}x {rate / floor:>8.1%}")
    weights, kv = result["weight_bytes"] / 1e6, result["kv_bytes_per_token"] / 1e6
    print(f"weights {weights:,.0f} MB + KV {kv:.1f} MB per token")
    if "kernels_per_step" in result:
        print(
            f"kernels per decode step: {result['kernels_per_step']}; GPU busy {result['gpu_busy_us']:.0f} us"
        )
    firsts = ", ".join(f"{path} {ms:,.1f} ms" for path, ms in result["first_token_ms"].items())
    print(f"time to first token: {firsts}")
    for concurrency, row in result["continuous"].items():
        print(f"continuous, {concurrency:>3} at once: {row['tokens_per_s']:>10,.1f} tokens/s, "
              f"first token {row['first_token_ms']:,.1f} ms")  # fmt: skip


def summary(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    """One Markdown row per model."""
    counts = "/".join(str(c) for c in args.concurrency)
    first = f"first token, {args.ttft_prompt}-token prompt (generate / batch-1 / continuous)"
    print(f"\n| shape | generate tok/s | batch-1 tok/s | floor tok/s | of floor | {first} | "
          f"continuous tok/s at {counts} |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---|---|")
    for name, result in results.items():
        rates = result["tokens_per_s"]
        generate, floor = rates["transformers.generate"], rates["memory-bandwidth floor"]
        ours = rates["engine, batch-1 path (median of 3)"]
        firsts = " / ".join(f"{ms:,.0f} ms" for ms in result["first_token_ms"].values())
        together = " / ".join(f"{row['tokens_per_s']:,.0f}" for row in result["continuous"].values())
        speeds = f"{generate:,.1f} | {ours:,.1f} | {floor:,.0f} | {ours / floor:.1%}"
        print(f"| {name} | {speeds} | {firsts} | {together} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shape", nargs="+", choices=[*SHAPES, "all"], help="model shapes, random weights")
    parser.add_argument("--random", action="store_true", help="the same as --shape smollm2-135m")
    parser.add_argument("--model", type=Path, help="a transformers folder (e.g. the converted SmolLM2 cache)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument(
        "--dtype", choices=["bf16", "fp16", "fp32"], help="default: bf16 on CUDA, fp32 on CPU"
    )
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument(
        "--ttft-prompt", type=int, default=1024, help="prompt tokens for the first-token times"
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    device = torch.device(args.device)
    precision = args.dtype or ("bf16" if device.type == "cuda" else "fp32")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]
    shapes = list(SHAPES) if args.shape == ["all"] else args.shape or ([] if args.model else ["smollm2-135m"])
    progress = Progress()
    bandwidth = copy_bandwidth(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    meta = {"device": name, "torch": torch.__version__, "cuda": torch.version.cuda, "dtype": precision,
            "bandwidth_gbps": bandwidth}  # fmt: skip
    print(f"# {meta}; prompt {args.prompt_tokens} tokens, {args.tokens} greedy tokens", flush=True)
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for label, load in _loaders(args, shapes, device, dtype, Path(scratch)):
            progress(f"{label}: loading")
            folder, model = load()
            results[label] = bench_model(folder, model, args, bandwidth, progress)
            report(label, results[label])
            del model
            free(device)
            if args.json:  # after each model: a run cut short keeps what it measured
                body = {"meta": meta, "args": vars(args), "results": results}
                args.json.write_text(json.dumps(body, default=str, indent=1))
    summary(results, args)


Loader = Callable[[], tuple[Path, Any]]


def _loaders(
    args: argparse.Namespace, shapes: list[str], device: torch.device, dtype: torch.dtype, scratch: Path
) -> list[tuple[str, Loader]]:
    """(label, a loader of (folder, model)) for --model and each shape, loaded one at a time."""
    loaders: list[tuple[str, Loader]] = []
    if args.model:
        folder: Path = args.model
        loaders.append((folder.name, lambda: (folder, _from_folder(folder, dtype, device))))
    for shape in shapes:
        loaders.append((shape, lambda shape=shape: _drawn(shape, dtype, device, scratch / shape)))
    return loaders


def _from_folder(folder: Path, dtype: torch.dtype, device: torch.device) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(device).eval()


def _drawn(shape: str, dtype: torch.dtype, device: torch.device, folder: Path) -> tuple[Path, Any]:
    model = random_model(shape, dtype, device)
    return tokenizer_folder(folder, model.config.vocab_size), model


if __name__ == "__main__":
    main()
