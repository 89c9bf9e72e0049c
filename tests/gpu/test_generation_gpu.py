"""Generation on CUDA: the CUDA-graph decoder against transformers, GPU against CPU, and model
memory coming back on unload. SmolLM2-135M's shapes with random weights (the real weights do
not travel to the GPU machine; their answers are checked on CPU in tests/api)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from altlas.generation.engine import TextGenerator, cache_of
from altlas.generation.llama_decoder import LlamaDecoder
from altlas.generation.sampling import SamplingParams

pytestmark = pytest.mark.gpu
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))


@pytest.fixture(scope="module")
def smollm2_shaped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from generation import random_model_folder  # bench/generation.py

    return random_model_folder(tmp_path_factory.mktemp("smollm2-random"), torch.float32)


def test_graph_decoder_matches_transformers_on_cuda(smollm2_shaped: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(smollm2_shaped, dtype=torch.float32).cuda().eval()
    decoder = LlamaDecoder(model, max_context=256)
    assert decoder.use_graph
    prompt = torch.randint(0, 259, (1, 40), device="cuda")
    with torch.no_grad():
        out = model(input_ids=prompt, use_cache=True)
        cache = cache_of(out)
        decoder.load_prefill(cache, 40)
        token = out.logits[0, -1].argmax()
        name = "cache" if hasattr(out, "cache") else "past_key_values"
        for step in range(100):  # past the 64-position attention blocks
            ours = decoder.step(token, 40 + step).float().clone()
            out = model(input_ids=token.view(1, 1), use_cache=True, **{name: cache})
            cache = cache_of(out)
            want = out.logits[0, -1].float()
            torch.testing.assert_close(
                ours, want, atol=1e-3, rtol=1e-3, msg=lambda m, s=step: f"step {s}: {m}"
            )
            token = want.argmax()


def test_gpu_and_cpu_agree_on_greedy_tokens(smollm2_shaped: Path) -> None:
    """fp32: the CUDA-graph path on the GPU and transformers on the CPU pick the same first 32 tokens."""
    gpu = TextGenerator(smollm2_shaped, torch.device("cuda"), torch.float32)
    cpu = TextGenerator(smollm2_shaped, torch.device("cpu"), torch.float32)
    assert gpu.decode_path == "static cache + CUDA graph" and cpu.decode_path == "transformers"
    for generator in (gpu, cpu):
        generator.eos_ids = frozenset()
    prompt = gpu.text_ids("Chrome'u aç ve hava durumunu ara")
    greedy = SamplingParams(max_tokens=32, temperature=0.0)
    on_gpu, on_cpu = gpu.complete(prompt, greedy), cpu.complete(prompt, greedy)
    assert on_gpu.completion_tokens == on_cpu.completion_tokens == 32
    assert on_gpu.token_ids == on_cpu.token_ids
    seeded = SamplingParams(max_tokens=16, temperature=0.9, top_p=0.9, seed=5)
    assert gpu.complete(prompt, seeded).token_ids == gpu.complete(prompt, seeded).token_ids


def test_unloading_returns_the_gpu_memory(smollm2_shaped: Path, tmp_path: Path) -> None:
    import yaml

    from altlas.orchestrator.manager import ModelManager
    from altlas.settings import Settings

    settings = Settings(data_dir=tmp_path, device="cuda", gpu_memory_gb=8.0)
    registry = {"models": [{"name": "lm", "task": "generation", "versions": {"1": str(smollm2_shaped)},
                            "options": {"max_context": 2048}}]}  # fmt: skip
    (tmp_path / "models.yaml").write_text(yaml.safe_dump(registry))
    manager = ModelManager.from_settings(settings)
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    loaded = manager.load("lm")
    assert loaded["status"] == "loaded" and loaded["device"].startswith("cuda:0 ")
    assert loaded["gpu_bytes"] > 100e6  # 135M parameters in fp32 on the GPU... (bf16 by default: 270 MB)
    lease = manager.loaded.lease("lm", "generation")
    engine = lease.backend.generator  # type: ignore[attr-defined]
    assert engine.continuous is not None  # continuous batching: the default on a GPU
    engine.eos_ids = engine.continuous.eos_ids = frozenset()  # random weights: no early end
    answer = engine.complete(engine.text_ids("hello"), SamplingParams(max_tokens=8, temperature=0))
    assert answer.completion_tokens == len(answer.token_ids) == 8 and answer.finish_reason == "length"
    del lease, engine  # a request's lease ends with the request
    report = manager.unload("lm")
    after = torch.cuda.memory_allocated()
    assert report["gpu_bytes_freed"] > 0.9 * loaded["gpu_bytes"]
    assert after <= before + 0.05 * loaded["gpu_bytes"], (before, after, loaded["gpu_bytes"])


def test_paged_graph_decoder_matches_transformers_per_sequence(smollm2_shaped: Path) -> None:
    """Continuous batching's step on CUDA (Triton kernels, a CUDA graph per batch bucket): five
    sequences of different lengths stepped together for 80 tokens (across 16-position pages)
    against each alone through transformers, fp32."""
    import inspect

    from transformers import AutoModelForCausalLM

    from altlas.generation.paged_decoder import PagedLlamaDecoder

    model = AutoModelForCausalLM.from_pretrained(smollm2_shaped, dtype=torch.float32).cuda().eval()
    decoder = PagedLlamaDecoder(model, max_context=512, slots=8, cache_tokens=2048)
    assert decoder.use_graph and decoder.use_kernels
    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    lengths = [1, 15, 16, 40, 100]
    free = list(range(decoder.pages - 1, 0, -1))[::2]  # pages scattered over the pool
    states = []
    with torch.no_grad():
        for row, length in enumerate(lengths):
            prompt = torch.randint(0, 259, (1, length), device="cuda")
            out = model(input_ids=prompt, use_cache=True)
            pages = [free.pop() for _ in range(-(-(length + 80) // decoder.page))]
            decoder.load_prefill(cache_of(out), length, pages)
            decoder.table[row, : len(pages)] = torch.tensor(pages, dtype=torch.int32)
            decoder.row_slots[row] = row
            states.append([cache_of(out), out.logits[0, -1].argmax(), length])
        for step in range(80):
            for row, (_, token, position) in enumerate(states):
                decoder.tokens[row] = token
                decoder.positions[row] = position
            ours = decoder.step(len(lengths)).float().clone()
            for row, state in enumerate(states):
                cache, token, position = state
                out = model(input_ids=token.view(1, 1), use_cache=True, **{name: cache})
                want = out.logits[0, -1].float()
                torch.testing.assert_close(
                    ours[row],
                    want,
                    atol=1e-3,
                    rtol=1e-3,
                    msg=lambda m, s=step, r=row: f"step {s} row {r}: {m}",
                )
                state[:] = [cache_of(out), want.argmax(), position + 1]


def test_continuous_batching_on_cuda_gives_each_request_its_own_answer(smollm2_shaped: Path) -> None:
    """fp32, 12 concurrent greedy generations through 8 slots (some wait, join as others
    leave; a small page pool forces preemption): each equals the one-at-a-time CUDA-graph path."""
    import threading

    one = TextGenerator(smollm2_shaped, torch.device("cuda"), torch.float32, max_context=512)
    many = TextGenerator(
        smollm2_shaped,
        torch.device("cuda"),
        torch.float32,
        max_context=512,
        max_sequences=8,
        kv_cache_tokens=600,
    )
    assert many.continuous is not None and "CUDA graphs" in many.decode_path
    for generator in (one, many):
        generator.eos_ids = frozenset()
    many.continuous.eos_ids = frozenset()
    prompts = [one.text_ids(f"komut {k}: " + "dosyayı aç " * k) for k in range(12)]
    results: dict[int, tuple[int, ...]] = {}

    def run(k: int) -> None:
        results[k] = many.complete(
            prompts[k], SamplingParams(max_tokens=60 + 5 * k, temperature=0.0)
        ).token_ids

    threads = [threading.Thread(target=run, args=(k,)) for k in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for k in range(12):
        want = one.complete(prompts[k], SamplingParams(max_tokens=60 + 5 * k, temperature=0.0)).token_ids
        assert results[k] == want, k
    stats = many.continuous.stats
    assert stats.max_active == 8 and stats.preempted > 0 and stats.finished == 12
    many.close()
