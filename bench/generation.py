"""Batch-1 decode speed: our generation engine vs plain `transformers.generate`, same model, same GPU.

Model: SmolLM2-135M-Instruct, from a converted folder (--model) or, where the weights cannot
travel, the same shapes with random weights (--random: the speed of a decode step does not
depend on the weights' values). Prints tokens/s of
- `generate`: transformers' greedy generate, eager (what a plain script gets);
- engine: altlas's TextGenerator.stream, greedy, end to end (sampling, detokenising, stop
  checks and a host sync per token included);
- step: the decoder's CUDA-graph step alone, back to back (the GPU-side ceiling);
and the memory-bandwidth floor: per token the decode reads every weight once plus the KV
cache so far, at the copy bandwidth measured in the same run. Also the kernels per token
(one step run eagerly under the profiler) and the gap between kernels.

    python bench/generation.py [--random | --model FOLDER] [--tokens 256] [--prompt-tokens 32]
                               [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from altlas.generation.engine import TextGenerator
from altlas.generation.sampling import SamplingParams

SMOLLM2_135M = {  # SmolLM2-135M-Instruct's config.json (the shapes that matter for speed)
    "vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
    "num_attention_heads": 9, "num_key_value_heads": 3, "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5, "rope_theta": 100000.0, "tie_word_embeddings": True,
    "bos_token_id": 1, "eos_token_id": 2,
}  # fmt: skip


def random_model_folder(path: Path, dtype: torch.dtype) -> Path:
    """A SmolLM2-135M-shaped Llama with random weights and a byte-level tokenizer, saved as a folder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(0)
    # a wide initialisation, so that greedy decoding wanders over the vocabulary instead of repeating
    model = LlamaForCausalLM(LlamaConfig(**SMOLLM2_135M, initializer_range=0.1)).to(dtype)
    model.save_pretrained(path)
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())  # one token per byte, no merges
    vocab = {"<t0>": 0, "<t1>": 1, "<t2>": 2} | {char: 3 + i for i, char in enumerate(alphabet)}
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


def floors() -> float:
    x = torch.empty(2**28, dtype=torch.uint8, device="cuda")
    y = torch.empty_like(x)
    y.copy_(x)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(10):
        y.copy_(x)
    torch.cuda.synchronize()
    return 2 * x.numel() * 10 / (time.perf_counter() - start) / 1e9  # GB/s


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, help="a transformers folder (e.g. the converted SmolLM2 cache)")
    parser.add_argument("--random", action="store_true", help="SmolLM2-135M shapes, random weights")
    parser.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype]
    device = torch.device("cuda")
    folder = args.model or random_model_folder(Path("/tmp/altlas-bench-smollm2-random"), dtype)
    bandwidth = floors()
    engine = TextGenerator(folder, device, dtype, max_context=args.prompt_tokens + args.tokens + 8)
    plain = TextGenerator(
        folder, device, dtype, max_context=args.prompt_tokens + args.tokens + 8, fast_decode=False
    )
    prompt = [5 + (i * 7) % 200 for i in range(args.prompt_tokens)]
    greedy = SamplingParams(max_tokens=args.tokens, temperature=0.0)
    eos = set(engine.eos_ids)
    engine.eos_ids = frozenset()  # decode exactly args.tokens tokens, whatever the weights say
    plain.eos_ids = frozenset()
    print(f"# {torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"{args.dtype}, {'random weights' if args.model is None else folder.name}")  # fmt: skip
    print(f"# copy bandwidth {bandwidth:.0f} GB/s; decode path: {engine.decode_path}")

    def engine_rate(generator: TextGenerator) -> float:
        """Decode tokens/s end to end: the whole answer's time minus a one-token answer's (the prefill)."""
        generator.complete(prompt, SamplingParams(max_tokens=8, temperature=0.0))  # warm
        start = time.perf_counter()
        generator.complete(prompt, SamplingParams(max_tokens=1, temperature=0.0))
        one = time.perf_counter() - start
        start = time.perf_counter()
        result = generator.complete(prompt, greedy)
        return (result.completion_tokens - 1) / (time.perf_counter() - start - one)

    # transformers.generate, greedy, eager
    model = plain.model
    ids = torch.tensor([prompt], device=device)
    model.generate(ids, max_new_tokens=8, min_new_tokens=8, do_sample=False, pad_token_id=0)
    torch.cuda.synchronize()
    start = time.perf_counter()
    out = model.generate(
        ids, max_new_tokens=args.tokens, min_new_tokens=args.tokens, do_sample=False, pad_token_id=0
    )
    torch.cuda.synchronize()
    generate_rate = (out.shape[1] - ids.shape[1]) / (time.perf_counter() - start)
    ours = [engine_rate(engine) for _ in range(3)]
    eager_ours = engine_rate(plain)
    # the CUDA-graph step alone, back to back
    decoder = engine.decoder
    assert decoder is not None
    token = torch.tensor(7, device=device)
    positions = range(args.prompt_tokens, args.prompt_tokens + args.tokens)
    for p in positions[:8]:
        decoder.step(token, p)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for p in positions:
        decoder.step(token, p)
    torch.cuda.synchronize()
    step_rate = len(positions) / (time.perf_counter() - start)
    kernels, busy_us = kernels_per_step(decoder, args.prompt_tokens)
    # every weight is read once per token; an untied input embedding only for one row
    weight_bytes = sum(t.numel() * t.element_size() for t in model.parameters())
    if not model.config.tie_word_embeddings:
        embedding = model.get_input_embeddings().weight
        weight_bytes -= embedding.numel() * embedding.element_size()
    mean_position = args.prompt_tokens + args.tokens / 2
    kv_bytes = (
        2
        * decoder.layers
        * decoder.kv_heads
        * decoder.head_dim
        * decoder.k_cache.element_size()
        * mean_position
    )
    floor_rate = bandwidth * 1e9 / (weight_bytes + kv_bytes)
    rows = {
        "transformers.generate": generate_rate,
        "engine, transformers decode (no graph)": eager_ours,
        "engine, fast decode (median of 3)": statistics.median(ours),
        "decoder step alone (CUDA graph)": step_rate,
        "memory-bandwidth floor": floor_rate,
    }
    print(f"{'path':<42} {'tokens/s':>10} {'vs generate':>12} {'of floor':>9}")
    for name, rate in rows.items():
        print(f"{name:<42} {rate:>10.0f} {rate / generate_rate:>11.1f}x {rate / floor_rate:>8.1%}")
    print(f"kernels per decode step: {kernels}; GPU busy {busy_us:.0f} us of a {1e6 / step_rate:.0f} us step "
          f"(weights {weight_bytes / 1e6:.0f} MB + KV {kv_bytes / 1e6:.1f} MB per token)")  # fmt: skip
    engine.eos_ids = frozenset(eos)
    if args.json:
        args.json.write_text(json.dumps({"rates": rows, "kernels_per_step": kernels, "gpu_busy_us": busy_us,
                                         "bandwidth_gbps": bandwidth, "runs": ours}))  # fmt: skip


def kernels_per_step(decoder: Any, position: int) -> tuple[int, float]:
    """Kernels launched by one eager decode step, and the GPU time they take together (us)."""
    from torch.profiler import ProfilerActivity, profile

    decoder.position.fill_(position)
    decoder._forward()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        decoder._forward()
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
    return len(events), sum(e.time_range.end - e.time_range.start for e in events)


if __name__ == "__main__":
    main()
