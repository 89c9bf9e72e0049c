"""The fast decoders on real model shapes (random weights), one shape after another, on a GPU.

For each shape of SHAPES (the public config.json values) the model is built with random bf16
weights directly on the device, then:

1. greedy: 64 greedy steps of the batch-1 decoder (CUDA graph) against transformers' greedy
   decoding with its cache: tokens equal, the first step they differ, and under teacher forcing
   (transformers' tokens fed to both) the least cosine of the two logit vectors of a step.
   Pass: every token equal, or that cosine >= 0.999 (bf16 products round differently), or our
   logits as close to the model's in fp32 as transformers' bf16 logits are (least cosine within
   FP32_SLACK); the same with attention split over positions at every step (flash-decoding,
   used from 512 on).
2. speed: batch-1 decode tokens/s (graph replays back to back, 256 steps after a 32-token
   prompt) against the bandwidth floor: the bytes a step must read (weights, the LM head, the
   KV cache so far) at the device's copy bandwidth, measured here with a large torch copy.
   Also: how each product runs (a tile of the fused kernel or cuBLAS, as the decoder timed
   them), each product's time per layer every way; with --long tokens/s near position 8192
   with and without flash-decoding.
3. paged: the paged decoder's greedy tokens for 2 sequences at once against the batch-1
   decoder's, 32 steps (teacher forcing as in 1; pass likewise).

Prints a table, writes JSON (--json). A shape that fails is reported and the next one runs.
On the CPU (`--device cpu`, fp32, Triton's interpreter) it checks the same code paths at a
crawl: take one shape, `--layers 1` and a few `--steps`.

    python scripts/gpu_families.py --json $OUT/families.json
    python scripts/gpu_families.py --device cpu --shapes smollm2-135m --layers 1 --steps 4 --bench-steps 2
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from altlas.generation.llama_decoder import PRODUCTS, LlamaDecoder, describe, supports
from altlas.generation.paged_decoder import PagedLlamaDecoder

LLAMA3_1B_3B = {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192}  # fmt: skip
LLAMA3_8B = {**LLAMA3_1B_3B, "factor": 8.0}

# config.json values of the released models (rope_scaling as 4.x wrote it; 5.x reads it too)
SHAPES: dict[str, dict[str, Any]] = {
    "smollm2-135m": {
        "model_type": "llama", "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
        "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64, "vocab_size": 49152,
        "max_position_embeddings": 8192, "rope_theta": 100000.0, "rope_scaling": None,
        "rms_norm_eps": 1e-5, "tie_word_embeddings": True,
    },
    "qwen2.5-0.5b": {
        "model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
        "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
        "max_position_embeddings": 32768, "rope_theta": 1000000.0, "rope_scaling": None,
        "rms_norm_eps": 1e-6, "tie_word_embeddings": True, "sliding_window": 32768,
        "use_sliding_window": False, "max_window_layers": 24,
    },
    "llama-3.2-1b": {
        "model_type": "llama", "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
        "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64, "vocab_size": 128256,
        "max_position_embeddings": 131072, "rope_theta": 500000.0, "rope_scaling": LLAMA3_1B_3B,
        "rms_norm_eps": 1e-5, "tie_word_embeddings": True,
    },
    "qwen2.5-1.5b": {
        "model_type": "qwen2", "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
        "num_attention_heads": 12, "num_key_value_heads": 2, "vocab_size": 151936,
        "max_position_embeddings": 131072, "rope_theta": 1000000.0, "rope_scaling": None,
        "rms_norm_eps": 1e-6, "tie_word_embeddings": True, "sliding_window": 131072,
        "use_sliding_window": False, "max_window_layers": 21,
    },
    "llama-3.2-3b": {
        "model_type": "llama", "hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 28,
        "num_attention_heads": 24, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 128256,
        "max_position_embeddings": 131072, "rope_theta": 500000.0, "rope_scaling": LLAMA3_1B_3B,
        "rms_norm_eps": 1e-5, "tie_word_embeddings": True,
    },
    "qwen3-4b": {
        "model_type": "qwen3", "hidden_size": 2560, "intermediate_size": 9728, "num_hidden_layers": 36,
        "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936,
        "max_position_embeddings": 40960, "rope_theta": 1000000.0, "rope_scaling": None,
        "rms_norm_eps": 1e-6, "tie_word_embeddings": True, "attention_bias": False,
        "sliding_window": None, "use_sliding_window": False, "max_window_layers": 36,
    },
    "qwen2.5-7b": {
        "model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
        "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064,
        "max_position_embeddings": 131072, "rope_theta": 1000000.0, "rope_scaling": None,
        "rms_norm_eps": 1e-6, "tie_word_embeddings": False, "sliding_window": 131072,
        "use_sliding_window": False, "max_window_layers": 28,
    },
    "llama-3.1-8b": {
        "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
        "max_position_embeddings": 131072, "rope_theta": 500000.0, "rope_scaling": LLAMA3_8B,
        "rms_norm_eps": 1e-5, "tie_word_embeddings": False,
    },
    "mistral-7b-v0.3": {
        "model_type": "mistral", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 32768,
        "max_position_embeddings": 32768, "rope_theta": 1000000.0, "sliding_window": None,
        "rms_norm_eps": 1e-5, "tie_word_embeddings": False,
    },
}  # fmt: skip

PROMPT = 32
LONG_POSITION = 8192  # the flash-decoding comparison steps from here
PASS_COSINE = 0.999
FP32_SLACK = 5e-4  # how much further from the fp32 model than transformers' bf16 ours may be


def main() -> int:
    args = parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":  # before the decoders first import their kernels
        os.environ.setdefault("TRITON_INTERPRET", "1")
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    results: dict[str, Any] = {"device": device_name(device), "versions": versions(), "shapes": {}}
    if device.type == "cuda":
        results["copy_gb_s"] = copy_bandwidth(device)
        print(f"copy bandwidth {results['copy_gb_s']:.0f} GB/s (bytes read + written)", flush=True)
    for name in args.shapes:
        started = time.perf_counter()
        print(f"== {name}", flush=True)
        try:
            results["shapes"][name] = run_shape(name, args, device, dtype, results.get("copy_gb_s"))
        except Exception as exc:  # one shape's failure is reported; the next shape runs
            traceback.print_exc()
            results["shapes"][name] = {"error": f"{type(exc).__name__}: {exc}"}
        results["shapes"][name]["seconds"] = round(time.perf_counter() - started, 1)
        print(f"   {name}: {results['shapes'][name]['seconds']} s", flush=True)
        free(device)
    print_table(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0 if all(shape.get("pass") for shape in results["shapes"].values()) else 1


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--json", default="")
    parser.add_argument("--steps", type=int, default=64, help="greedy steps compared with transformers")
    parser.add_argument("--bench-steps", type=int, default=256, help="decode steps timed")
    parser.add_argument("--paged-steps", type=int, default=32)
    parser.add_argument("--layers", type=int, default=0, help="fewer layers than the shape's (quick checks)")
    parser.add_argument("--long", action="store_true", help="also time steps near position 8192")
    return parser.parse_args()


def run_shape(
    name: str, args: argparse.Namespace, device: torch.device, dtype: torch.dtype, copy_gb_s: float | None
) -> dict[str, Any]:
    model = build(SHAPES[name], device, dtype, args.layers)
    reason = supports(model)
    result: dict[str, Any] = {"model": describe(model), "supports": reason}
    print(f"   {result['model']}", flush=True)
    if reason is not None:
        result["pass"] = False
        return result
    max_context = LONG_POSITION + 512 if device.type == "cuda" else 128
    decoder = LlamaDecoder(model, max_context)
    if device.type == "cpu":
        decoder.gemv_rows = 1 << 14  # the interpreter pays per program
    prompt = torch.randint(
        0, model.config.vocab_size, (1, PROMPT), device=device, generator=seeded(device, 1)
    )
    part(result, "greedy", greedy_check, model, decoder, prompt, args.steps)
    part(result, "speed", speed, model, decoder, prompt, args.bench_steps, copy_gb_s, device, args.long)
    del decoder
    free(device)
    part(result, "paged", paged_check, model, prompt, args.paged_steps, device)
    checks = [result.get(key, {}) for key in ("greedy", "paged")]
    result["pass"] = all(check.get("pass", False) for check in checks)
    return result


def part(result: dict[str, Any], key: str, run: Any, *args: Any) -> None:
    """result[key] = run(*args), or the error it raised (the other parts still run)."""
    started = time.perf_counter()
    try:
        result[key] = run(*args)
    except Exception as exc:
        traceback.print_exc()
        result[key] = {"error": f"{type(exc).__name__}: {exc}"}
    print(f"   {key} ({time.perf_counter() - started:.1f} s): {brief(result[key])}", flush=True)


# the model


def build(shape: dict[str, Any], device: torch.device, dtype: torch.dtype, layers: int) -> Any:
    """A model of this shape with transformers' own random initialisation (normal, std
    initializer_range 0.02), made directly on the device (an 8B model on the CPU takes minutes)."""
    import transformers

    settings = dict(shape)
    model_type = settings.pop("model_type")
    if layers:
        settings["num_hidden_layers"] = layers
        if "max_window_layers" in settings:
            settings["max_window_layers"] = min(settings["max_window_layers"], layers)
    settings["initializer_range"] = 0.02
    config = transformers.AutoConfig.for_model(model_type, **settings)
    major = int(transformers.__version__.split(".")[0])
    dtype_arg = {"dtype": dtype} if major >= 5 else {"torch_dtype": dtype}
    torch.manual_seed(0)
    with torch.device(device):
        model = transformers.AutoModelForCausalLM.from_config(config, **dtype_arg)
    return model.eval()


def seeded(device: torch.device, seed: int) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


def cache_keyword(model: Any) -> str:
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def cache_of(output: Any) -> Any:
    return output.cache if hasattr(output, "cache") else output.past_key_values


@torch.no_grad()
def transformers_greedy(model: Any, prompt: torch.Tensor, steps: int) -> tuple[list[int], list[torch.Tensor]]:
    """transformers' greedy tokens with its KV cache, each step's logits (fp32)."""
    keyword = cache_keyword(model)
    out = model(input_ids=prompt, use_cache=True)
    tokens, logits = [], []
    for _ in range(steps):
        logits.append(out.logits[0, -1].float())
        tokens.append(int(logits[-1].argmax()))
        step = torch.tensor([[tokens[-1]]], device=prompt.device)
        out = model(input_ids=step, use_cache=True, **{keyword: cache_of(out)})
    return tokens, logits


@torch.no_grad()
def batch1_run(
    model: Any, decoder: LlamaDecoder, prompt: torch.Tensor, steps: int, forced: list[int] | None = None
) -> tuple[list[int], list[torch.Tensor]]:
    """Our greedy tokens and logits (fp32) after transformers' prefill; `forced`: feed those tokens."""
    out = model(input_ids=prompt, use_cache=True)
    decoder.load_prefill(cache_of(out), prompt.shape[1])
    logits = [out.logits[0, -1].float()]
    tokens: list[int] = []
    for step in range(steps):
        tokens.append(int(logits[-1].argmax()))
        if step + 1 < steps:
            feed = forced[step] if forced is not None else tokens[-1]
            token = torch.tensor(feed, device=prompt.device)
            logits.append(decoder.step(token, prompt.shape[1] + step).float().clone())
    return tokens, logits


def cosines(ours: list[torch.Tensor], theirs: list[torch.Tensor]) -> list[float]:
    return [
        float(torch.nn.functional.cosine_similarity(a, b, dim=0)) for a, b in zip(ours, theirs, strict=True)
    ]


def agreement(ours: list[int], theirs: list[int]) -> dict[str, Any]:
    first = next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b), None)
    return {
        "equal": sum(a == b for a, b in zip(ours, theirs, strict=True)),
        "of": len(theirs),
        "first_diff": first,
    }


# 1. greedy


def greedy_check(model: Any, decoder: LlamaDecoder, prompt: torch.Tensor, steps: int) -> dict[str, Any]:
    want, want_logits = transformers_greedy(model, prompt, steps)
    got, _ = batch1_run(model, decoder, prompt, steps)
    result = agreement(got, want)
    _, forced_logits = batch1_run(model, decoder, prompt, steps, forced=want)
    result["min_cosine"] = round(min(cosines(forced_logits, want_logits)), 6)
    split_from, decoder.split_from = decoder.split_from, 0  # every step's attention split (flash-decoding)
    decoder.graphs.clear()
    split_tokens, split_logits = batch1_run(model, decoder, prompt, steps, forced=want)
    decoder.split_from = split_from
    decoder.graphs.clear()
    result["split_equal"] = sum(a == b for a, b in zip(split_tokens, want, strict=True))
    result["min_cosine_split"] = round(min(cosines(split_logits, want_logits)), 6)
    cosine = min(result["min_cosine"], result["min_cosine_split"])
    all_equal = result["equal"] == steps and result["split_equal"] == steps
    # The precision yardstick: both bf16 paths against the same model in fp32 (teacher forcing on
    # transformers' tokens). bf16 alone moves random-weight logits by ~1e-3 in cosine, whichever
    # kernels round it; ours must stay as close to fp32 as transformers' own bf16 forward is.
    reference = fp32_logits(model, prompt, want)
    result["min_cosine_fp32_ours"] = round(min(cosines(forced_logits, reference)), 6)
    result["min_cosine_fp32_transformers"] = round(min(cosines(want_logits, reference)), 6)
    as_close = result["min_cosine_fp32_ours"] >= result["min_cosine_fp32_transformers"] - FP32_SLACK
    result["pass"] = all_equal or cosine >= PASS_COSINE or as_close
    return result


@torch.no_grad()
def fp32_logits(model: Any, prompt: torch.Tensor, tokens: list[int]) -> list[torch.Tensor]:
    """Each step's logits of the model in fp32 (a copy), fed the prompt and `tokens` at once."""
    import copy

    if model.dtype == torch.float32:
        reference = copy.deepcopy(model).double()  # the CPU check: fp64 over fp32
    else:
        reference = copy.deepcopy(model).float()
    logits = forced_logits(reference, prompt, tokens)
    del reference
    free(prompt.device)
    return logits


@torch.no_grad()
def forced_logits(model: Any, prompt: torch.Tensor, tokens: list[int]) -> list[torch.Tensor]:
    """Each step's logits (float) of `model` fed the prompt and `tokens` at once."""
    ids = torch.cat([prompt, torch.tensor([tokens[:-1]], device=prompt.device)], dim=1)
    return list(model(input_ids=ids).logits[0, prompt.shape[1] - 1 :].float())


# 2. speed


def speed(
    model: Any, decoder: LlamaDecoder, prompt: torch.Tensor, steps: int, copy_gb_s: float | None,
    device: torch.device, long: bool = False,
) -> dict[str, Any]:  # fmt: skip
    result: dict[str, Any] = {
        "tokens_s": round(decode_rate(model, decoder, prompt, PROMPT, steps, device), 1)
    }
    kv_per_position = (
        2 * decoder.layers * decoder.kv_heads * decoder.head_dim * decoder.k_cache.element_size()
    )
    average_positions = PROMPT + steps / 2
    step_bytes = weight_bytes(model) + kv_per_position * average_positions
    result["step_mb"] = round(step_bytes / 1e6, 1)
    if copy_gb_s:
        floor = copy_gb_s * 1e9 / step_bytes  # the copy's rate counts reads and writes, a step reads
        result["floor_tokens_s"] = round(floor, 1)
        result["of_floor_pct"] = round(100 * result["tokens_s"] / floor, 1)
    if device.type != "cuda":
        return result
    # each product's tile of the fused kernel or cuBLAS, as timed at the first step
    result["products"] = {kind: str(way) for kind, way in (decoder.products or {}).items()}
    if long:
        long_rates(result, model, decoder, prompt, steps, device)
    result["products_us"] = product_times(decoder)
    return result


def long_rates(
    result: dict[str, Any], model: Any, decoder: LlamaDecoder, prompt: torch.Tensor, steps: int,
    device: torch.device,
) -> None:  # fmt: skip
    """Tokens/s near position 8192, attention split over positions and one program per head."""
    long_steps = min(steps, decoder.max_context - LONG_POSITION - 1)
    result["tokens_s_at_8192_split"] = round(
        decode_rate(model, decoder, prompt, LONG_POSITION, long_steps, device), 1
    )
    split_from = decoder.split_from
    decoder.split_from = decoder.max_context  # one program per head all the way
    decoder.graphs.clear()
    result["tokens_s_at_8192_one_per_head"] = round(
        decode_rate(model, decoder, prompt, LONG_POSITION, long_steps, device), 1
    )
    decoder.split_from = split_from
    decoder.graphs.clear()


def decode_rate(
    model: Any, decoder: LlamaDecoder, prompt: torch.Tensor, start: int, steps: int, device: torch.device
) -> float:
    """Tokens/s of `steps` decoder steps from position `start`, back to back, each fed the one
    before's greedy choice (decoder.token, chosen by the step's last kernel; no host sync inside
    the loop), as the engine's greedy path feeds them."""
    with torch.no_grad():
        out = model(input_ids=prompt, use_cache=True)
        decoder.load_prefill(cache_of(out), prompt.shape[1])
        token = out.logits[0, -1].argmax()
        decoder.step(token, start)  # the graphs are captured here
        synchronize(device)
        started = time.perf_counter()
        for position in range(start, start + steps):
            decoder.step(decoder.token, position)
        synchronize(device)
    return steps / (time.perf_counter() - started)


def weight_bytes(model: Any) -> int:
    """Bytes a step reads of the weights: every parameter but the embedding table (one row), the
    LM head whole (the same matrix when tied)."""
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    embed = model.model.embed_tokens.weight
    if model.lm_head.weight.data_ptr() != embed.data_ptr():
        total -= embed.numel() * embed.element_size()
    return int(total)


@torch.no_grad()
def product_times(decoder: LlamaDecoder) -> dict[str, Any]:
    """Each product's GPU time per layer (µs, graph replays over every layer's weights) every
    way the decoder can run it (its tiles of gemv_kernel, cuBLAS), with the share of the copy
    bandwidth the fastest way reaches."""
    times: dict[str, Any] = {}
    for key in PRODUCTS:
        weight = decoder.product_args(key, decoder.weights[0])[0]
        ways = decoder.product_times(key)
        best = min(ways, key=ways.__getitem__)
        gb = weight.numel() * weight.element_size() / 1e9
        times[key] = {
            "shape": list(weight.shape), "best": str(best), "best_gb_s": round(gb / (ways[best] * 1e-6)),
            "us": {str(way): round(micros, 2) for way, micros in ways.items()},
        }  # fmt: skip
    return times


def copy_bandwidth(device: torch.device) -> float:
    """GB/s of a 2 GiB device-to-device copy, counting the bytes read and written."""
    source = torch.empty(1 << 30, dtype=torch.float16, device=device)
    target = torch.empty_like(source)
    for _ in range(3):
        target.copy_(source)
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(10):
        target.copy_(source)
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - started) / 10
    del source, target
    torch.cuda.empty_cache()
    return 2 * (1 << 31) / seconds / 1e9


# 3. paged


def paged_check(model: Any, prompt: torch.Tensor, steps: int, device: torch.device) -> dict[str, Any]:
    """Two sequences stepped together by the paged decoder, each against the batch-1 decoder's
    greedy run (its tokens fed to both: teacher forcing)."""
    prompts = [
        prompt,
        torch.randint(0, model.config.vocab_size, (1, 20), device=device, generator=seeded(device, 2)),
    ]
    decoder = LlamaDecoder(model, 256)
    if device.type == "cpu":
        decoder.gemv_rows = 1 << 14
    runs = [batch1_run(model, decoder, p, steps) for p in prompts]
    del decoder
    paged = PagedLlamaDecoder(model, 256, slots=2, cache_tokens=512, use_kernels=True)
    next_page = 1
    logits: list[list[torch.Tensor]] = [[], []]
    with torch.no_grad():
        for row, p in enumerate(prompts):
            out = model(input_ids=p, use_cache=True)
            pages = list(range(next_page, next_page + -(-(p.shape[1] + steps) // paged.page)))
            next_page += len(pages)
            paged.load_prefill(cache_of(out), p.shape[1], pages)
            paged.table[row, : len(pages)] = torch.tensor(pages, dtype=torch.int32, device=device)
            paged.row_slots[row] = row
            logits[row].append(out.logits[0, -1].float())
        for step in range(steps - 1):
            for row, p in enumerate(prompts):
                paged.tokens[row] = runs[row][0][step]
                paged.positions[row] = p.shape[1] + step
            rows = paged.step(2)
            for row in range(2):
                logits[row].append(rows[row].float().clone())
    tokens = [[int(x.argmax()) for x in row_logits] for row_logits in logits]
    result = {"rows": [agreement(tokens[r], runs[r][0]) for r in range(2)]}
    result["min_cosine"] = round(min(min(cosines(logits[r], runs[r][1])) for r in range(2)), 6)
    all_equal = all(row["equal"] == steps for row in result["rows"])
    # The yardstick of greedy_check: the paged decoder's logits as close to the model's in fp32
    # as transformers' own (the whole forced sequence in one forward, the model's dtype).
    ours, theirs = [], []
    for r, p in enumerate(prompts):
        reference = fp32_logits(model, p, runs[r][0])
        ours.append(min(cosines(logits[r], reference)))
        theirs.append(min(cosines(forced_logits(model, p, runs[r][0]), reference)))
    result["min_cosine_fp32_ours"] = round(min(ours), 6)
    result["min_cosine_fp32_transformers"] = round(min(theirs), 6)
    as_close = result["min_cosine_fp32_ours"] >= result["min_cosine_fp32_transformers"] - FP32_SLACK
    result["pass"] = all_equal or result["min_cosine"] >= PASS_COSINE or as_close
    return result


# reporting


def brief(part: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in part.items() if k != "products_us")


COLUMNS = [  # (title, part, key)
    ("greedy eq", "greedy", "equal"), ("cos", "greedy", "min_cosine"), ("tok/s", "speed", "tokens_s"),
    ("floor", "speed", "floor_tokens_s"), ("%", "speed", "of_floor_pct"),
    ("fp32 ours", "greedy", "min_cosine_fp32_ours"), ("fp32 hf", "greedy", "min_cosine_fp32_transformers"),
    ("8k split", "speed", "tokens_s_at_8192_split"),
    ("8k 1/head", "speed", "tokens_s_at_8192_one_per_head"), ("paged cos", "paged", "min_cosine"),
    ("paged fp32", "paged", "min_cosine_fp32_ours"), ("p fp32 hf", "paged", "min_cosine_fp32_transformers"),
]  # fmt: skip


def print_table(results: dict[str, Any]) -> None:
    print(f"\n{results['device']}  {results['versions']}")
    titles = " ".join(f"{title:>10}" for title, _, _ in COLUMNS)
    print(f"{'shape':16} {'pass':5} {titles} {'paged eq':>9} {'s':>6}")
    for name, shape in results["shapes"].items():
        if "error" in shape:
            print(f"{name:16} error: {shape['error']}")
            continue
        cells = " ".join(f"{cell(shape.get(part, {}), key):>10}" for _, part, key in COLUMNS)
        paged_eq = "/".join(str(row["equal"]) for row in shape.get("paged", {}).get("rows", [])) or "-"
        print(f"{name:16} {shape.get('pass')!s:5} {cells} {paged_eq:>9} {shape.get('seconds', '-'):>6}")
        for key in ("greedy", "speed", "paged"):
            if "error" in shape.get(key, {}):
                print(f"{'':16} {key} error: {shape[key]['error']}")
        for key, product in shape.get("speed", {}).get("products_us", {}).items():
            print(f"{'':16} {key} {product}")


def cell(part: dict[str, Any], key: str) -> str:
    value = part.get(key)
    return "-" if value is None else str(value)


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def versions() -> str:
    import transformers
    import triton

    return f"torch {torch.__version__}, transformers {transformers.__version__}, triton {triton.__version__}"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


if __name__ == "__main__":
    sys.exit(main())
