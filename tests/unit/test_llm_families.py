"""Every supported model family through both fast decoders against transformers: a tiny random
model with the family's features (rope scaling type, q/k/v biases, q/k norms, an explicit
head_dim, tied or untied embeddings, grouped-query ratios 1 to 8, a row longer than one tile)
decodes the same 32 greedy tokens as transformers with its KV cache, in fp32.

The kernels run in Triton's interpreter (CI has no GPU): the batch-1 decoder (prefill through
transformers as the engine does, then its kernels step by step, no graph) and the paged decoder
(prefill and decode through its own step rows, as continuous batching runs it). The interpreter
pays per program and per nested function, so the models are small (mostly 1 layer, 2 heads) and
the products take one program each (`gemv_rows`).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest
import torch

from altlas.search.fused_topk import fused_available

from .test_llama_decoder import cache_name

transformers = pytest.importorskip("transformers")

needs_triton = pytest.mark.skipif(
    not fused_available(torch.device("cpu")), reason="needs triton's interpreter"
)

STEPS = 32
PROMPT = 8
CONTEXT = 96
SMALL = {  # 1 layer, 2 heads of 32 sharing a KV head (ratio 2)
    "vocab_size": 97, "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 1,
    "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 256,
    "rms_norm_eps": 1e-5, "initializer_range": 0.1, "tie_word_embeddings": False,
}  # fmt: skip
LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 64}  # fmt: skip
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    # Llama 2/3.x: each rope scaling type; the default one with 2 layers and a KV head per head
    "llama-default": ("llama", {"num_hidden_layers": 2, "num_key_value_heads": 2}),
    "llama-linear": ("llama", {"rope_scaling": {"rope_type": "linear", "factor": 2.0}}),
    # Llama 3.2: llama3 scaling over theta 500000, an explicit head_dim of 64
    "llama3.2-llama3": ("llama", {"rope_theta": 500000.0, "rope_scaling": LLAMA3, "head_dim": 64}),
    "llama-yarn": (
        "llama",
        {"rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64}},
    ),
    "llama-dynamic": ("llama", {"rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}),
    # Mistral 7B v0.3: no sliding window; 8 query heads over 1 KV head (ratio 8), head_dim 16
    "mistral": ("mistral", {"sliding_window": None, "num_attention_heads": 8, "head_dim": 16}),
    # Qwen2.5: q/k/v biases, tied (0.5B-3B) and untied (7B); a window that use_sliding_window turns off
    "qwen2-tied": ("qwen2", {"tie_word_embeddings": True, "sliding_window": 16}),
    "qwen2-untied": ("qwen2", {}),
    # Qwen3: q/k norms, head_dim 128 with hidden 64 (o_proj takes 256), tied
    "qwen3": ("qwen3", {"head_dim": 128, "tie_word_embeddings": True}),
    # a down projection of 8448 columns: longer than one tile, read in column blocks
    "long-rows": ("llama", {"hidden_size": 32, "intermediate_size": 8448, "head_dim": 16}),
}
CONFIGS = {"llama": "LlamaConfig", "mistral": "MistralConfig", "qwen2": "Qwen2Config", "qwen3": "Qwen3Config"}


@cache
def tiny(name: str) -> Any:
    """The case's model in fp32, random weights (seeded); the cases share it (the decoders only
    point its q/k/v and gate/up weights at fused copies, as in serving)."""
    family, settings = CASES[name]
    config = getattr(transformers, CONFIGS[family])(**{**SMALL, **settings})
    torch.manual_seed(len(name))
    model = transformers.AutoModelForCausalLM.from_config(config).eval()
    return model


def prompt_of(name: str) -> torch.Tensor:
    generator = torch.Generator().manual_seed(len(name))
    return torch.randint(0, 97, (1, PROMPT), generator=generator)


@cache
def transformers_greedy(name: str) -> tuple[list[int], list[torch.Tensor]]:
    """transformers' greedy tokens with its KV cache, and each step's logits."""
    from altlas.generation.engine import cache_of

    model = tiny(name)
    keyword = cache_name(model)
    tokens, logits = [], []
    with torch.no_grad():
        out = model(input_ids=prompt_of(name), use_cache=True)
        for _ in range(STEPS):
            logits.append(out.logits[0, -1].clone())
            tokens.append(int(out.logits[0, -1].argmax()))
            step = torch.tensor([[tokens[-1]]])
            out = model(input_ids=step, use_cache=True, **{keyword: cache_of(out)})
    return tokens, logits


@needs_triton
@pytest.mark.parametrize("products", ["fused", "library"])
@pytest.mark.parametrize("name", list(CASES))
def test_the_batch1_decoder_decodes_transformers_greedy_tokens(name: str, products: str) -> None:
    """Prefill as the engine's: the prompt padded to 64 through model.model, its cache loaded;
    the steps' attention one program per head, then from half-way split over positions. The
    products through the fused kernel, or through torch's between small kernels (what the GPU
    picks for wide rows)."""
    from altlas.generation.engine import cache_of
    from altlas.generation.llama_decoder import DEFAULT_TILE, LIBRARY, PRODUCTS, LlamaDecoder, supports

    model, prompt = tiny(name), prompt_of(name)
    assert supports(model) is None and supports(model, CONTEXT) is None
    want, want_logits = transformers_greedy(name)
    decoder = LlamaDecoder(model, CONTEXT, use_graph=False)
    decoder.products = dict.fromkeys(PRODUCTS, DEFAULT_TILE if products == "fused" else LIBRARY)
    decoder.gemv_rows = 1 << 14  # one program per product: the interpreter pays per program
    # near positions: 2 shares a head combined by the output product (fused) or one program a head
    # (library); the second half: flash-decoding with its combine kernel
    decoder.near_splits, decoder.split_from, decoder.splits = 2, PROMPT + STEPS // 2, 2
    got, logits = [], []
    with torch.no_grad():
        padded = torch.cat([prompt, prompt[:, -1:].expand(1, 64 - PROMPT)], dim=1)
        out = model.model(input_ids=padded, use_cache=True)
        decoder.load_prefill(cache_of(out), PROMPT)
        logits.append(model.lm_head(out.last_hidden_state[0, PROMPT - 1]))
        for step in range(STEPS):
            got.append(int(logits[-1].argmax()))
            if step + 1 < STEPS:
                logits.append(decoder.step(torch.tensor(got[-1]), PROMPT + step).clone())
    assert got == want
    torch.testing.assert_close(torch.stack(logits), torch.stack(want_logits), atol=1e-4, rtol=1e-4)


@needs_triton
@pytest.mark.parametrize("name", list(CASES))
def test_the_paged_decoder_decodes_transformers_greedy_tokens(name: str) -> None:
    """Prefill and decode through the decoder's own step rows (kernels), as continuous.py runs
    them: the prompt's rows in one step, then a row a step, across a page boundary."""
    from altlas.generation.paged_decoder import PagedLlamaDecoder

    model, prompt = tiny(name), prompt_of(name)
    want, want_logits = transformers_greedy(name)
    decoder = PagedLlamaDecoder(model, CONTEXT, slots=2, cache_tokens=CONTEXT, page=32, use_kernels=True)
    pages = [3, 1]  # out of order: 64 positions
    decoder.table[1, : len(pages)] = torch.tensor(pages, dtype=torch.int32)
    got, logits = [], []
    with torch.no_grad():
        decoder.tokens[:PROMPT] = prompt[0]
        decoder.positions[:PROMPT] = torch.arange(PROMPT, dtype=torch.int32)
        decoder.row_slots[:PROMPT] = 1
        logits.append(decoder.step(PROMPT)[PROMPT - 1].clone())
        for step in range(STEPS):
            got.append(int(logits[-1].argmax()))
            if step + 1 < STEPS:
                decoder.tokens[0], decoder.positions[0] = got[-1], PROMPT + step
                logits.append(decoder.step(1)[0].clone())
    assert got == want
    torch.testing.assert_close(torch.stack(logits), torch.stack(want_logits), atol=1e-4, rtol=1e-4)


def test_describe_names_the_family_and_its_features() -> None:
    from altlas.generation.llama_decoder import describe

    assert describe(tiny("qwen3")).startswith("qwen3: 1 layers, hidden 64")
    assert "2 heads / 1 KV heads of 128" in describe(tiny("qwen3"))
    assert "q/k norms" in describe(tiny("qwen3")) and "tied embeddings" in describe(tiny("qwen3"))
    assert "q/k/v biases" in describe(tiny("qwen2-untied")) and "untied" in describe(tiny("qwen2-untied"))
    assert "rope llama3 (theta 500000.0)" in describe(tiny("llama3.2-llama3"))


def model_of(family: str, **settings: Any) -> Any:
    config = getattr(transformers, CONFIGS[family])(**{**SMALL, **settings})
    return transformers.AutoModelForCausalLM.from_config(config).eval()


UNSUPPORTED: dict[str, tuple[Any, str]] = {
    "gpt2": (
        lambda: transformers.GPT2LMHeadModel(transformers.GPT2Config(n_embd=32, n_layer=1, n_head=2)),
        "model type 'gpt2'",
    ),
    "mistral-window": (
        lambda: model_of("mistral", sliding_window=16),
        "sliding-window attention (16 positions)",
    ),
    "qwen2-window": (
        lambda: model_of("qwen2", use_sliding_window=True, sliding_window=16, max_window_layers=0),
        "sliding-window attention (16 positions)",
    ),
    "longrope": (
        lambda: model_of(
            "llama",
            rope_scaling={
                "rope_type": "longrope",
                "short_factor": [1.0] * 16,
                "long_factor": [2.0] * 16,
                "factor": 4.0,
                "original_max_position_embeddings": 64,
            },
        ),
        "rope scaling 'longrope'",
    ),
    "gelu": (lambda: model_of("llama", hidden_act="gelu"), "activation 'gelu'"),
    "mlp-bias": (lambda: model_of("llama", mlp_bias=True), "MLP biases"),
    "head-dim-24": (lambda: model_of("llama", head_dim=24), "head_dim 24"),
}


@pytest.mark.parametrize("name", list(UNSUPPORTED))
def test_unsupported_models_get_a_reason_not_an_exception(name: str) -> None:
    from altlas.generation.llama_decoder import LlamaDecoder, supports
    from altlas.generation.paged_decoder import PagedLlamaDecoder

    build, reason = UNSUPPORTED[name]
    model = build()
    assert reason in (supports(model) or ""), supports(model)
    with pytest.raises(ValueError, match="does not support this model"):
        LlamaDecoder(model, 64, use_graph=False)
    with pytest.raises(ValueError, match="does not support this model"):
        PagedLlamaDecoder(model, 64, slots=1, cache_tokens=64, use_kernels=False)


def test_a_window_is_refused_only_where_it_is_used() -> None:
    from altlas.generation.llama_decoder import supports

    mistral = model_of("mistral", sliding_window=4096)  # Mistral 7B v0.1's window: longer than 256
    assert supports(mistral) is None and supports(mistral, 4096) is None
    assert "sliding-window attention (4096 positions)" in (supports(mistral, 4097) or "")
    qwen_off = model_of("qwen2", use_sliding_window=False, sliding_window=16)  # as Qwen2.5 ships
    qwen_late = model_of("qwen2", use_sliding_window=True, sliding_window=16, max_window_layers=1)
    assert supports(qwen_off) is None and supports(qwen_late) is None  # its one layer is below 1
    qwen_off.config.sliding_window = 16  # as transformers 4.x kept it: the switch still rules
    assert supports(qwen_off) is None


def test_dynamic_rope_only_within_its_original_context_and_the_module_unchanged() -> None:
    from altlas.generation.llama_decoder import LlamaDecoder, supports

    model = model_of("llama", rope_scaling={"rope_type": "dynamic", "factor": 2.0})
    rotary = model.model.rotary_emb
    inv_freq = rotary.inv_freq.clone()
    assert supports(model) is None and supports(model, 256) is None
    assert "dynamic rope scaling over 257 positions" in (supports(model, 257) or "")
    with pytest.raises(ValueError, match="dynamic rope scaling"):
        LlamaDecoder(model, 512, use_graph=False)
    LlamaDecoder(model, 256, use_graph=False)
    assert torch.equal(rotary.inv_freq, inv_freq) and rotary.max_seq_len_cached == 256
