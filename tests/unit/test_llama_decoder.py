"""The fast decoder's kernels and step against transformers' Llama forward, on a small random model.

Runs in the Triton interpreter on CPU (CI) and on CUDA (tests/gpu adds the CUDA-graph path
on the real model).
"""

from __future__ import annotations

import pytest
import torch

from altlas.search.fused_topk import fused_available

transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.skipif(not fused_available(torch.device("cpu")), reason="needs triton's interpreter")


def tiny_llama(kv_heads: int = 2, seed: int = 0) -> object:
    config = transformers.LlamaConfig(
        vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=kv_heads, max_position_embeddings=256, rms_norm_eps=1e-5, rope_theta=10000.0,
        tie_word_embeddings=True,
    )  # fmt: skip
    torch.manual_seed(seed)
    return transformers.LlamaForCausalLM(config).eval()


@pytest.mark.parametrize("kv_heads", [1, 2, 4])
def test_decode_steps_match_transformers(kv_heads: int) -> None:
    from altlas.generation.engine import cache_of
    from altlas.generation.llama_decoder import LlamaDecoder

    model = tiny_llama(kv_heads)
    prompt = torch.randint(0, 97, (1, 7))
    with torch.no_grad():
        out = model(input_ids=prompt, use_cache=True)
        cache = cache_of(out)
        decoder = LlamaDecoder(model, max_context=64, use_graph=False)
        decoder.load_prefill(cache, prompt.shape[1])
        token = out.logits[0, -1].argmax()
        for step in range(12):
            position = prompt.shape[1] + step
            ours = decoder.step(token, position).clone()
            out = model(input_ids=token.view(1, 1), use_cache=True, **{cache_name(model): cache})
            cache = cache_of(out)
            want = out.logits[0, -1]
            torch.testing.assert_close(ours, want, atol=2e-5, rtol=1e-4)
            token = want.argmax()


def test_attention_spans_several_position_blocks() -> None:
    from altlas.generation.engine import cache_of
    from altlas.generation.llama_decoder import LlamaDecoder

    model = tiny_llama(2, seed=1)
    prompt = torch.randint(0, 97, (1, 150))  # the kernel reads 64 positions per block: three blocks
    with torch.no_grad():
        out = model(input_ids=prompt, use_cache=True)
        decoder = LlamaDecoder(model, max_context=200, use_graph=False)
        decoder.load_prefill(cache_of(out), 150)
        token = torch.tensor(5)
        ours = decoder.step(token, 150).clone()
        want = model(input_ids=token.view(1, 1), use_cache=True, **{cache_name(model): cache_of(out)}).logits[
            0, -1
        ]
    torch.testing.assert_close(ours, want, atol=2e-5, rtol=1e-4)


def cache_name(model: object) -> str:
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"  # type: ignore[attr-defined]


def test_unsupported_models_say_why() -> None:
    from altlas.generation.llama_decoder import supports

    model = tiny_llama()
    assert supports(model) is None
    config = model.config  # type: ignore[attr-defined]
    name = "rope_parameters" if "rope_parameters" in config.to_dict() else "rope_scaling"
    config.__dict__[name] = {"rope_type": "longrope", "factor": 4.0, "rope_theta": 10000.0}
    assert "rope scaling 'longrope'" in (supports(model) or "")


def test_the_engine_decodes_the_same_tokens_on_both_paths(tmp_path: object) -> None:
    """TextGenerator with the fast decoder (padded prefill, static cache) and without agree."""
    from pathlib import Path

    from altlas.generation.engine import TextGenerator
    from altlas.generation.sampling import SamplingParams

    folder = Path(str(tmp_path)) / "tiny"
    model = tiny_llama(2, seed=3)
    model.save_pretrained(folder)  # type: ignore[attr-defined]
    tokenizers = pytest.importorskip("tokenizers")
    vocab = {f"t{i}": i for i in range(97)}
    tokenizer = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="t0"))
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="t0").save_pretrained(folder)
    fast = TextGenerator(folder, torch.device("cpu"), torch.float32, max_context=200, fast_decode=True)
    plain = TextGenerator(folder, torch.device("cpu"), torch.float32, max_context=200, fast_decode=False)
    for engine in (fast, plain):
        engine.eos_ids = frozenset()
    for length in (3, 64, 70):  # under, at and over one prefill bucket
        prompt = [(7 * i + 3) % 97 for i in range(length)]
        greedy = SamplingParams(max_tokens=6, temperature=0.0)
        assert fast.complete(prompt, greedy).token_ids == plain.complete(prompt, greedy).token_ids


@pytest.mark.parametrize("qk_norm", [False, True])
def test_split_attention_matches_one_program_per_head(qk_norm: bool) -> None:
    """rope_attention_kernel against torch: the new position's q and k normalised per head
    (Qwen3) and rotated, k and v written into the cache, dense attention over the cache; and
    flash-decoding (positions split over programs, partial softmaxes combined) against one
    program per head: shares of whole blocks, empty shares, position 0, GQA."""
    from transformers.models.llama.modeling_llama import rotate_half

    from altlas.generation.decode_kernels import attention_combine_kernel, rope_attention_kernel

    g = torch.Generator().manual_seed(4)
    heads, kv_heads, head_dim, context, splits, eps = 4, 2, 16, 160, 4, 1e-6
    group = heads // kv_heads
    cos = torch.randn(context, head_dim, generator=g)
    sin = torch.randn(context, head_dim, generator=g)
    q_norm, k_norm = torch.randn(head_dim, generator=g), torch.randn(head_dim, generator=g)
    scale = head_dim**-0.5
    shape = {"HEADS": heads, "GROUP": group, "HEAD_DIM": head_dim, "BLOCK_POS": 16, "QK_NORM": qk_norm}
    for position in (0, 20, 149):  # the new position alone; two shares of four; the last share short
        qkv = torch.randn((heads + 2 * kv_heads) * head_dim, generator=g)
        k_cache = torch.randn(kv_heads, context, head_dim, generator=g)
        v_cache = torch.randn(kv_heads, context, head_dim, generator=g)
        pos = torch.tensor([position], dtype=torch.int32)
        outs, caches = {}, {}
        for n in (1, splits):
            k, v = k_cache.clone(), v_cache.clone()
            out = torch.empty(heads * head_dim)
            partials = torch.full((heads, n, head_dim + 2), float("nan"))
            rope_attention_kernel[(heads, n)](
                qkv, cos, sin, pos, k, v, out if n == 1 else partials, scale, k.stride(0), k.stride(1),
                q_norm, k_norm, eps, **shape, SPLITS=n, PDL=False,
            )  # fmt: skip
            if n > 1:
                attention_combine_kernel[(heads,)](partials, out, HEAD_DIM=head_dim, SPLITS=n, PDL=False)
            outs[n], caches[n] = out, (k, v)
        q, k_new, v_new = qkv.split([heads * head_dim, kv_heads * head_dim, kv_heads * head_dim])
        q, k_new = q.view(heads, head_dim), k_new.view(kv_heads, head_dim)
        if qk_norm:
            q = q_norm * (q * torch.rsqrt(q.pow(2).mean(-1, keepdim=True) + eps))
            k_new = k_norm * (k_new * torch.rsqrt(k_new.pow(2).mean(-1, keepdim=True) + eps))
        q = q * cos[position] + rotate_half(q) * sin[position]
        k_new = k_new * cos[position] + rotate_half(k_new) * sin[position]
        want_k, want_v = k_cache.clone(), v_cache.clone()
        want_k[:, position], want_v[:, position] = k_new, v_new.view(kv_heads, head_dim)
        keys = want_k[:, : position + 1].repeat_interleave(group, dim=0)  # [heads, length, dim]
        values = want_v[:, : position + 1].repeat_interleave(group, dim=0)
        weights = torch.softmax(torch.einsum("hd,hld->hl", q * scale, keys), -1)
        dense = torch.einsum("hl,hld->hd", weights, values).reshape(-1)
        for n in (1, splits):
            torch.testing.assert_close(caches[n][0], want_k, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(caches[n][1], want_v, atol=0, rtol=0)
            torch.testing.assert_close(outs[n], dense, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(outs[splits], outs[1], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_output_product_combines_partial_softmaxes_as_the_combine_kernel_does(dtype: torch.dtype) -> None:
    """gemv_kernel with COMBINE reads flash-decoding's partial softmaxes (an empty share among
    them, heads not a power of two) and computes the output product of what
    attention_combine_kernel writes, rounded to the model's dtype the same way."""
    from altlas.generation.decode_kernels import attention_combine_kernel, gemv_kernel

    g = torch.Generator().manual_seed(7)
    heads, head_dim, splits, rows = 3, 16, 4, 24
    cols = heads * head_dim
    partials = torch.randn(heads, splits, head_dim + 2, generator=g)
    partials[..., head_dim + 1] = partials[..., head_dim + 1].abs() + 0.5  # weight totals
    partials[:, 1] = 0.0
    partials[:, 1, head_dim] = float("-inf")  # an empty share
    weight = (torch.randn(rows, cols, generator=g) / 8).to(dtype)
    start = torch.randn(rows, generator=g).to(dtype)
    attn = torch.empty(cols, dtype=dtype)
    attention_combine_kernel[(heads,)](partials, attn, HEAD_DIM=head_dim, SPLITS=splits, PDL=False)
    outs = []
    for vector, combine in ((attn, 0), (partials, splits)):
        out = start.clone()
        gemv_kernel[(3,)](
            weight, vector, vector, vector, out, rows, cols, 1e-6, NORM=False, SWIGLU=False,
            RESIDUAL=True, BIAS=False, BLOCK_R=8, BLOCK_C=64, COL_BLOCKS=1, PDL=False,
            COMBINE=combine, HEAD_DIM=head_dim if combine else 0,
        )  # fmt: skip
        outs.append(out)
    best = partials[..., head_dim]
    scale = torch.exp(best - best.max(dim=1, keepdim=True).values)  # [heads, splits]
    totals = (partials[..., head_dim + 1] * scale).sum(1)
    combined = (partials[..., :head_dim] * scale[..., None]).sum(1) / totals[:, None]
    # fp32 to 1e-5; bf16 to torch's default (a rounding's last bit)
    tolerance = {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {}
    torch.testing.assert_close(attn, combined.reshape(-1).to(dtype), **tolerance)
    torch.testing.assert_close(outs[1], outs[0], atol=0, rtol=0)
    want = (start.float() + (weight.float() @ attn.float()).to(dtype).float()).to(dtype)
    torch.testing.assert_close(outs[1], want, **tolerance)


@pytest.mark.parametrize("kind", ["norm+bias", "swiglu", "residual"])
def test_long_rows_in_column_blocks_match_one_tile_and_torch(kind: str) -> None:
    """gemv_kernel over rows longer than a tile (COL_BLOCKS tiles of BLOCK_C, the norm's sum of
    squares over the whole vector first) against its one-tile path and torch."""
    from altlas.generation.decode_kernels import gemv_kernel

    g = torch.Generator().manual_seed(5)
    rows, cols, eps = 24, 300, 1e-5
    swiglu = kind == "swiglu"
    weight = torch.randn(2 * rows if swiglu else rows, cols, generator=g) / 8
    vector, norm = torch.randn(cols, generator=g) * 3, torch.randn(cols, generator=g)
    bias, start = torch.randn(rows, generator=g), torch.randn(rows, generator=g)
    flags = {"NORM": kind == "norm+bias", "SWIGLU": swiglu, "RESIDUAL": kind == "residual"}
    flags["BIAS"] = flags["NORM"]
    outs = []
    for block_c, col_blocks in ((512, 1), (128, 3)):
        out = start.clone()
        gemv_kernel[(3,)](
            weight, vector, norm, bias, out, rows, cols, eps, **flags,
            BLOCK_R=8, BLOCK_C=block_c, COL_BLOCKS=col_blocks, PDL=False,
        )  # fmt: skip
        outs.append(out)
    x = vector
    if flags["NORM"]:
        x = norm * (vector * torch.rsqrt(vector.pow(2).mean() + eps))
    want = weight @ x
    if swiglu:
        want = torch.nn.functional.silu(want[:rows]) * want[rows:]
    want = want + bias if flags["BIAS"] else want
    want = want + start if flags["RESIDUAL"] else want
    torch.testing.assert_close(outs[1], outs[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(outs[1], want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["norm+bias", "swiglu", "residual"])
def test_every_tile_the_gpu_may_choose_computes_the_same_product(kind: str) -> None:
    """The decoder's fused product through each tile of tiles_for (few or many rows a program,
    rows in one tile or looped over narrow ones, 2-8 warps) and through cuBLAS's way (torch)
    against torch, for rows longer than the narrow tiles."""
    from altlas.generation.llama_decoder import LlamaDecoder, tiles_for

    decoder = LlamaDecoder(tiny_llama(), max_context=16, use_graph=False)
    g = torch.Generator().manual_seed(6)
    rows, cols, eps = 24, 1100, decoder.eps
    swiglu = kind == "swiglu"
    weight = torch.randn(2 * rows if swiglu else rows, cols, generator=g) / 8
    vector, norm = torch.randn(cols, generator=g) * 3, torch.randn(cols, generator=g)
    bias, start = torch.randn(rows, generator=g), torch.randn(rows, generator=g)
    options: dict[str, object] = {"swiglu": swiglu, "residual": kind == "residual"}
    if kind == "norm+bias":
        options.update(norm=norm, bias=bias)
    x = norm * (vector * torch.rsqrt(vector.pow(2).mean() + eps)) if kind == "norm+bias" else vector
    want = weight @ x
    if swiglu:
        want = torch.nn.functional.silu(want[:rows]) * want[rows:]
    want = want + bias if kind == "norm+bias" else want
    want = want + start if kind == "residual" else want
    tiles = tiles_for(weight.shape, swiglu=swiglu)
    assert len(tiles) >= 6 and any(tile.width(cols) < cols for tile in tiles)
    decoder.normed, decoder.product = torch.zeros(cols), torch.zeros(2 * rows)
    for way in [*tiles, None]:
        out = start.clone()
        if way is None:
            decoder._library_gemv(weight, vector, out, **options)  # type: ignore[arg-type]
        else:
            decoder._gemv(weight, vector, out, tile=way, **options)  # type: ignore[arg-type]
        torch.testing.assert_close(out, want, atol=1e-4, rtol=1e-5, msg=f"{way}")


def test_the_steps_greedy_choice_follows_next_tokens_rule() -> None:
    """greedy_kernel (a step's last launch) against sampling.next_token's greedy choice on
    fresh random logits over several blocks, with ties (the first wins), NaN (never chosen),
    +inf, and no usable logit (NO_TOKEN, and 0 as the next input); the position advanced by
    one, never past the last."""
    from altlas.generation.decode_kernels import greedy_kernel
    from altlas.generation.sampling import NO_TOKEN, SamplingParams, next_token

    g = torch.Generator().manual_seed(9)
    vocab, greedy = 1000, SamplingParams(temperature=0.0)
    cases = []
    for _ in range(4):
        cases.append(torch.randn(vocab, generator=g))
    tie = torch.randn(vocab, generator=g)
    tie[[700, 300, 900]] = 50.0  # equal maxima in different blocks and lanes
    nan = torch.randn(vocab, generator=g)
    nan[[5, 600]] = float("nan")
    inf = torch.randn(vocab, generator=g)
    inf[[999, 400]] = float("inf")
    cases += [tie, nan, inf, torch.full((vocab,), float("nan")), torch.full((vocab,), float("-inf"))]
    for logits in cases:
        for dtype in (torch.float32, torch.bfloat16):
            x = logits.to(dtype)
            choice, token = torch.full((1,), 7), torch.full((1,), 7)
            position = torch.tensor([41], dtype=torch.int32)
            greedy_kernel[(1,)](
                x, vocab, choice, token, position, 42, BLOCK=256, NO_TOKEN=NO_TOKEN, PDL=False
            )
            want = int(next_token(x, greedy, None, None))
            assert int(choice) == want
            assert int(token) == (0 if want == NO_TOKEN else want)
            assert int(position) == 42
            greedy_kernel[(1,)](
                x, vocab, choice, token, position, 42, BLOCK=256, NO_TOKEN=NO_TOKEN, PDL=False
            )
            assert int(position) == 42  # the last position at most
    assert int(next_token(tie, greedy, None, None)) == 300


def test_a_greedy_caller_feeds_the_decoders_own_choice_back() -> None:
    """Passing `decoder.token` (the step's own greedy choice) step after step decodes the same
    tokens and logits as choosing each token from the logits and passing it in."""
    from altlas.generation.engine import cache_of
    from altlas.generation.llama_decoder import LlamaDecoder

    model = tiny_llama(2, seed=2)
    prompt = torch.randint(0, 97, (1, 5), generator=torch.Generator().manual_seed(2))
    runs = []
    for own in (False, True):
        with torch.no_grad():
            out = model(input_ids=prompt, use_cache=True)
            decoder = LlamaDecoder(model, max_context=32, use_graph=False)
            decoder.load_prefill(cache_of(out), 5)
            token, tokens, logits = out.logits[0, -1].argmax(), [], []
            for position in range(5, 17):
                logits.append(decoder.step(decoder.token if own and tokens else token, position).clone())
                token = logits[-1].argmax()
                tokens.append(int(decoder.greedy[0]))
                assert tokens[-1] == int(token)
        runs.append((tokens, torch.stack(logits)))
    assert runs[0][0] == runs[1][0]
    torch.testing.assert_close(runs[0][1], runs[1][1], atol=0, rtol=0)
