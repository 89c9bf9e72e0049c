"""Continuous batching: the paged kernels against their torch references, the paged decoder
against transformers, and the decode thread's scheduling (join, leave, preempt, cancel, bound).

The kernels run in Triton's interpreter on CPU (CI); tests/gpu repeats the decoder checks on
CUDA with the graph path."""

from __future__ import annotations

import inspect
import threading
import time
from pathlib import Path

import pytest
import torch

from altlas.search.fused_topk import fused_available

from .test_llama_decoder import tiny_llama

transformers = pytest.importorskip("transformers")

needs_triton = pytest.mark.skipif(
    not fused_available(torch.device("cpu")), reason="needs triton's interpreter"
)


def _scattered_table(rows: int, width: int, pages: int, generator: torch.Generator) -> torch.Tensor:
    """Each row's pages drawn without repeats from 1..pages-1, in no order (page 0 is scratch)."""
    order = torch.randperm(pages - 1, generator=generator)[: rows * width] + 1
    return order.view(rows, width).to(torch.int32)


@needs_triton
@pytest.mark.parametrize("kv_heads", [1, 2, 4])
def test_kernels_match_the_torch_references(kv_heads: int) -> None:
    from altlas.generation.paged_decoder import paged_attention_reference, rope_and_store_reference
    from altlas.generation.paged_kernels import paged_attention_kernel, rope_paged_kernel

    g = torch.Generator().manual_seed(kv_heads)
    heads, head_dim, page, width, pages = 4, 16, 8, 6, 64
    rows = 5
    positions = torch.tensor([0, 7, 8, 21, 47], dtype=torch.int32)  # first, page edges, last position
    table = _scattered_table(rows, width, pages, g)
    pool_shape = (pages * page, kv_heads, head_dim)
    k_pool, v_pool = torch.randn(pool_shape, generator=g), torch.randn(pool_shape, generator=g)
    qkv = torch.randn(rows, (heads + 2 * kv_heads) * head_dim, generator=g)
    angles = torch.randn(64, head_dim, generator=g)
    cos, sin = angles.cos(), angles.sin()

    k_pool_start, v_pool_start = k_pool.clone(), v_pool.clone()
    q = torch.empty(rows, heads * head_dim)
    row_slots = torch.arange(rows, dtype=torch.int32).flip(0)  # rows name their slots in any order
    want_k, want_v = k_pool.clone(), v_pool.clone()
    want_q = rope_and_store_reference(
        qkv, cos, sin, positions, table[row_slots.long()], want_k, want_v, heads, kv_heads, page
    )
    k_pool, v_pool = k_pool_start.clone(), v_pool_start.clone()
    rope_paged_kernel[(rows,)](
        qkv, cos, sin, positions, row_slots, table, q, k_pool, v_pool, qkv.stride(0), table.stride(0),
        qkv, qkv, 1e-6,
        HEADS=heads, KV_HEADS=kv_heads, HEAD_DIM=head_dim, PAGE=page, BLOCK_HEADS=4, QK_NORM=False,
    )  # fmt: skip
    torch.testing.assert_close(q, want_q, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(k_pool, want_k, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(v_pool, want_v)

    scale = head_dim**-0.5
    want = paged_attention_reference(
        q, k_pool, v_pool, positions, table[row_slots.long()], heads, kv_heads, page, scale
    )
    out = torch.empty_like(q)
    paged_attention_kernel[(rows, heads)](
        q, k_pool, v_pool, positions, row_slots, table, out, scale, table.stride(0),
        HEADS=heads, KV_HEADS=kv_heads, HEAD_DIM=head_dim, PAGE=page,
    )  # fmt: skip
    torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-5)


@needs_triton
def test_the_row_norm_kernel_matches_transformers_rms_norm() -> None:
    from altlas.generation.decode_kernels import rmsnorm_kernel
    from altlas.generation.paged_decoder import _rms_norm

    g = torch.Generator().manual_seed(3)
    norm = transformers.models.llama.modeling_llama.LlamaRMSNorm(48, eps=1e-5)
    norm.weight.data = torch.randn(48, generator=g)
    for rows in (1, 5):
        x = torch.randn(rows, 48, generator=g) * 10
        out = torch.empty_like(x)
        rmsnorm_kernel[(rows,)](x, norm.weight, out, 48, 1e-5, BLOCK=64)
        with torch.no_grad():
            torch.testing.assert_close(out, norm(x), atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(_rms_norm(x, norm.weight, 1e-5), norm(x))


def test_reference_attention_matches_dense_attention_in_float64() -> None:
    from altlas.generation.paged_decoder import paged_attention_reference

    g = torch.Generator().manual_seed(1)
    heads, kv_heads, head_dim, page = 4, 2, 8, 4
    positions = torch.tensor([0, 9], dtype=torch.int32)
    table = torch.tensor([[5, 0, 0], [3, 1, 7]], dtype=torch.int32)
    k_pool = torch.randn(8 * page, kv_heads, head_dim, generator=g, dtype=torch.float64)
    v_pool = torch.randn(8 * page, kv_heads, head_dim, generator=g, dtype=torch.float64)
    q = torch.randn(2, heads * head_dim, generator=g, dtype=torch.float64)
    out = paged_attention_reference(q, k_pool, v_pool, positions, table, heads, kv_heads, page, 0.5)
    for row in range(2):
        length = int(positions[row]) + 1
        at = torch.tensor([int(table[row, p // page]) * page + p % page for p in range(length)])
        keys = k_pool[at].repeat_interleave(2, dim=1)  # [length, heads, dim]
        values = v_pool[at].repeat_interleave(2, dim=1)
        scores = torch.einsum("hd,lhd->hl", q[row].view(heads, head_dim) * 0.5, keys)
        dense = torch.einsum("hl,lhd->hd", torch.softmax(scores, -1), values).reshape(-1)
        torch.testing.assert_close(out[row], dense.to(out.dtype), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("use_kernels", [False, pytest.param(True, marks=needs_triton)])
def test_a_batched_step_matches_transformers_per_sequence(use_kernels: bool) -> None:
    """Three sequences of different lengths stepped together for 10 tokens, against each
    one alone through transformers' cache."""
    from altlas.generation.engine import cache_of
    from altlas.generation.paged_decoder import PagedLlamaDecoder

    model = tiny_llama(2, seed=2)
    decoder = PagedLlamaDecoder(
        model, max_context=128, slots=4, cache_tokens=256, page=8, use_kernels=use_kernels
    )
    lengths = [5, 8, 19]  # under, at and over a page
    free = list(range(decoder.pages - 1, 0, -1))[::3]  # scattered pages
    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"  # type: ignore[attr-defined]
    states, pages = [], []
    with torch.no_grad():
        for length in lengths:
            prompt = torch.randint(0, 97, (1, length))
            out = model(input_ids=prompt, use_cache=True)  # type: ignore[operator]
            mine = [free.pop() for _ in range(-(-(length + 10) // 8))]
            decoder.load_prefill(cache_of(out), length, mine)
            states.append([cache_of(out), out.logits[0, -1].argmax(), length])
            pages.append(mine)
        for row, mine in enumerate(pages):
            decoder.table[row, : len(mine)] = torch.tensor(mine, dtype=torch.int32)
            decoder.row_slots[row] = row
        for step in range(10):
            for row, (_, token, position) in enumerate(states):
                decoder.tokens[row] = token
                decoder.positions[row] = position
            ours = decoder.step(len(lengths))
            for row, state in enumerate(states):
                cache, token, position = state
                out = model(input_ids=token.view(1, 1), use_cache=True, **{name: cache})  # type: ignore[operator]
                want = out.logits[0, -1]
                torch.testing.assert_close(
                    ours[row], want, atol=3e-5, rtol=1e-4, msg=lambda m, s=step: f"{s}: {m}"
                )
                state[:] = [cache_of(out), want.argmax(), position + 1]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tokenizers = pytest.importorskip("tokenizers")
    folder = tmp_path_factory.mktemp("tiny-llama")
    tiny_llama(2, seed=3).save_pretrained(folder)  # type: ignore[attr-defined]
    vocab = {f"t{i}": i for i in range(97)}
    tokenizer = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="t0"))
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="t0").save_pretrained(folder)
    return folder


def _engines(folder: Path, **continuous: int) -> tuple[object, object]:
    from altlas.generation.engine import TextGenerator

    plain = TextGenerator(folder, torch.device("cpu"), torch.float32, max_context=200, fast_decode=False)
    batched = TextGenerator(folder, torch.device("cpu"), torch.float32, max_context=200, **continuous)
    assert batched.continuous is not None
    for engine in (plain, batched):
        engine.eos_ids = frozenset()
        if engine.continuous is not None:
            engine.continuous.eos_ids = frozenset()
    return plain, batched


def _prompts(count: int) -> list[list[int]]:
    return [[(7 * i + 3 * k) % 97 for i in range(3 + 11 * k)] for k in range(count)]


def _concurrently(engine: object, prompts: list[list[int]], tokens: int) -> list[tuple[int, ...]]:
    from altlas.generation.sampling import SamplingParams

    results: list[tuple[int, ...]] = [()] * len(prompts)

    def run(k: int) -> None:
        greedy = SamplingParams(max_tokens=tokens + k, temperature=0.0)  # they end at different steps
        results[k] = engine.complete(prompts[k], greedy).token_ids  # type: ignore[attr-defined]

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(prompts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_concurrent_generations_decode_the_same_tokens_as_one_at_a_time(tiny_folder: Path) -> None:
    from altlas.generation.sampling import SamplingParams

    plain, batched = _engines(tiny_folder, max_sequences=4, kv_cache_tokens=512)
    prompts = _prompts(6)  # more than the slots: some wait and join as others leave
    got = _concurrently(batched, prompts, 12)
    for k, prompt in enumerate(prompts):
        want = plain.complete(prompt, SamplingParams(max_tokens=12 + k, temperature=0.0)).token_ids  # type: ignore[attr-defined]
        assert got[k] == want, k
    stats = batched.continuous.stats  # type: ignore[attr-defined]
    assert stats.finished == 6 and stats.max_active > 1 and stats.step_tokens > stats.steps
    assert batched.continuous.free_pages == batched.continuous.decoder.pages - 1  # type: ignore[attr-defined]
    batched.close()  # type: ignore[attr-defined]


def test_a_dry_page_pool_preempts_and_the_answers_stay_the_same(tiny_folder: Path) -> None:
    from altlas.generation.sampling import SamplingParams

    # room for 200 positions (the context) plus a page: four sequences of ~40-80 must take turns
    plain, batched = _engines(tiny_folder, max_sequences=4, kv_cache_tokens=200)
    prompts = _prompts(4)
    got = _concurrently(batched, prompts, 40)
    for k, prompt in enumerate(prompts):
        want = plain.complete(prompt, SamplingParams(max_tokens=40 + k, temperature=0.0)).token_ids  # type: ignore[attr-defined]
        assert got[k] == want, k
    assert batched.continuous.stats.preempted > 0  # type: ignore[attr-defined]
    batched.close()  # type: ignore[attr-defined]


def test_stopping_early_frees_the_slot_and_a_full_queue_refuses(tiny_folder: Path) -> None:
    from altlas.errors import OverloadedError
    from altlas.generation.sampling import SamplingParams

    _, batched = _engines(tiny_folder, max_sequences=1, kv_cache_tokens=256)
    batcher = batched.continuous  # type: ignore[attr-defined]
    long = SamplingParams(max_tokens=150, temperature=0.0)
    events = batched.stream([1, 2, 3], long)  # type: ignore[attr-defined]
    next(events)
    events.close()  # the caller leaves after one piece
    assert batched.complete([4, 5], SamplingParams(max_tokens=3, temperature=0.0)).completion_tokens == 3  # type: ignore[attr-defined]
    assert batcher.stats.cancelled == 1 and batcher.active == 0
    batcher.max_queue = 0  # as if the queue were full
    with pytest.raises(OverloadedError) as refused:
        batcher.submit([1], long, 5)
    assert refused.value.retry_after_s >= 1
    batched.close()  # type: ignore[attr-defined]


def test_batched_sampling_follows_each_rows_rule() -> None:
    from altlas.generation.sampling import SamplingParams, next_tokens

    torch.manual_seed(0)
    logits = torch.randn(4, 50)
    params = [
        SamplingParams(temperature=0.0),
        SamplingParams(temperature=1.0, top_k=1),
        SamplingParams(temperature=0.8, top_p=1e-6),
        SamplingParams(temperature=1.5, top_k=5),
    ]
    top5 = set(torch.topk(logits[3], 5).indices.tolist())
    for _ in range(30):
        chosen = next_tokens(logits, params, [None] * 4, [None] * 4)
        assert chosen[:3] == [int(logits[r].argmax()) for r in range(3)]
        assert chosen[3] in top5
    seeded = [SamplingParams(temperature=1.0, seed=7)] * 2
    gens = [torch.Generator().manual_seed(7) for _ in range(2)]
    first = next_tokens(logits[:1].repeat(2, 1), seeded, [None, None], gens)
    assert first[0] == first[1]


def test_a_request_that_fails_at_admission_fails_alone_and_gone_callers_leave_the_queue(
    tiny_folder: Path,
) -> None:
    """Review findings: a seed torch cannot take once failed every running generation and lost
    a slot; a caller gone while queued kept its place (and counted against the queue bound)."""
    from altlas.errors import InvalidInputError
    from altlas.generation.sampling import SamplingParams

    with pytest.raises(InvalidInputError, match="seed"):
        SamplingParams(temperature=1.0, seed=2**64)
    _, batched = _engines(tiny_folder, max_sequences=1, kv_cache_tokens=256)
    batcher = batched.continuous  # type: ignore[attr-defined]
    running = batched.stream([1, 2, 3], SamplingParams(max_tokens=120, temperature=0.0))  # type: ignore[attr-defined]
    next(running)  # it holds the only slot
    broken = SamplingParams(temperature=1.0, seed=5)
    object.__setattr__(broken, "seed", 2**64)  # past the check: as if torch refused it
    failing = batched.stream([4, 5], broken)  # type: ignore[attr-defined]
    waiting = [batcher.submit([6, 7], SamplingParams(max_tokens=3, temperature=0.0), 3) for _ in range(3)]
    for stream in waiting:
        stream.cancel()
    deadline = time.monotonic() + 30
    while batcher.waiting > 1 and time.monotonic() < deadline:  # the three gone callers leave
        time.sleep(0.01)
    assert batcher.waiting == 1
    rest = list(running)  # the running generation is untouched
    assert rest[-1].finish_reason == "length" and rest[-1].completion_tokens == 120
    with pytest.raises((RuntimeError, ValueError)):  # torch's own error, for this request only
        list(failing)
    assert batcher.free_pages == batcher.decoder.pages - 1 and batcher.active == 0
    assert batched.complete([8, 9], SamplingParams(max_tokens=4, temperature=0.0)).completion_tokens == 4  # type: ignore[attr-defined]
    batched.close()  # type: ignore[attr-defined]


def test_rotary_with_qk_norms_matches_transformers_qwen3() -> None:
    """Qwen3's per-head q/k RMS norms before rotary embedding: the reference against
    transformers' Qwen3RMSNorm + apply_rotary_pos_emb (bit for bit in bf16: the same roundings),
    the kernel against the reference (fp32)."""
    from transformers.models.qwen3 import modeling_qwen3 as qwen3

    from altlas.generation.paged_decoder import rope_and_store_reference

    g = torch.Generator().manual_seed(6)
    heads, kv_heads, head_dim, page, rows = 4, 2, 32, 8, 3
    positions = torch.tensor([0, 9, 30], dtype=torch.int32)
    table = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]], dtype=torch.int32)
    angles = torch.randn(32, head_dim // 2, generator=g).repeat(1, 2)
    for dtype in (torch.bfloat16, torch.float32):
        qkv = (torch.randn(rows, (heads + 2 * kv_heads) * head_dim, generator=g) * 4).to(dtype)
        cos, sin = angles.cos().to(dtype), angles.sin().to(dtype)
        q_norm, k_norm = qwen3.Qwen3RMSNorm(head_dim, 1e-6), qwen3.Qwen3RMSNorm(head_dim, 1e-6)
        q_norm.weight.data = torch.randn(head_dim, generator=g)
        k_norm.weight.data = torch.randn(head_dim, generator=g)
        q_norm, k_norm = q_norm.to(dtype), k_norm.to(dtype)
        pools = [torch.zeros(16 * page, kv_heads, head_dim, dtype=dtype) for _ in range(2)]
        q = rope_and_store_reference(
            qkv, cos, sin, positions, table, *pools, heads, kv_heads, page,
            q_norm=q_norm.weight, k_norm=k_norm.weight, eps=1e-6,
        )  # fmt: skip
        with torch.no_grad():
            q_t = q_norm(qkv[:, : heads * head_dim].view(rows, heads, head_dim))  # [rows, heads, dim]
            k_t = k_norm(qkv[:, heads * head_dim : (heads + kv_heads) * head_dim].view(rows, kv_heads, -1))
            at = positions.long()
            want_q, want_k = qwen3.apply_rotary_pos_emb(q_t, k_t, cos[at], sin[at])  # cos [rows, 1, dim]
        assert torch.equal(q.view(rows, heads, head_dim), want_q)
        pool_rows = table[torch.arange(rows), at // page].long() * page + at % page
        assert torch.equal(pools[0][pool_rows], want_k)
    if not fused_available(torch.device("cpu")):
        return
    from altlas.generation.paged_kernels import rope_paged_kernel

    kernel_pools = [torch.zeros_like(pool) for pool in pools]
    out = torch.empty_like(q)
    rope_paged_kernel[(rows,)](
        qkv, cos, sin, positions, torch.arange(rows, dtype=torch.int32), table, out, *kernel_pools,
        qkv.stride(0), table.stride(0), q_norm.weight, k_norm.weight, 1e-6,
        HEADS=heads, KV_HEADS=kv_heads, HEAD_DIM=head_dim, PAGE=page, BLOCK_HEADS=4, QK_NORM=True,
    )  # fmt: skip
    torch.testing.assert_close(out, q, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(kernel_pools[0], pools[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(kernel_pools[1], pools[1])
