"""Tiny random causal LMs of each family, as model folders a user would bring: weights, config,
generation config and a byte-level tokenizer with the family's special tokens and chat template
(written here after each family's own tokenizer_config.json, in its layout).

The configs keep what tells the families apart: Llama 3's llama3 rope scaling and its three
end-of-turn ids, Qwen2.5's q/k/v biases and tied embeddings, Qwen3's q/k norms and a head_dim
that is not hidden / heads, Mistral's [INST] turns; and GPT-2, which no fast decoder takes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

LLAMA3_TEMPLATE = (
    "{{- bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
CHATML_TEMPLATE = (  # Qwen's; Qwen2.5 adds its system prompt when the conversation has none
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]"
    "{% else %}{{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
)
PLAIN_TEMPLATE = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}assistant:"

SHAPE = {  # tiny, and the same for every family: 2 layers, 4 query and 2 key-value heads
    "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "max_position_embeddings": 4096, "initializer_range": 0.1,
}  # fmt: skip


LLAMA3_SCALING = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                  "original_max_position_embeddings": 8192}  # fmt: skip


@dataclass(frozen=True)
class Family:
    """One family's tiny model: its config class and settings, tokens, template and stop tokens."""

    name: str
    config: str  # the transformers config class
    settings: dict[str, Any]
    specials: tuple[str, ...]  # the tokenizer's special tokens, ids 0, 1, ... in this order
    bos: str
    eos: str  # the tokenizer's end-of-sequence token
    template: str
    generation_eos: tuple[str, ...] = ()  # generation_config.json's eos_token_id, when it has one
    fast: bool = True  # the fast decoders take it


FAMILIES = {
    family.name: family
    for family in (
        Family(
            "llama-3", "LlamaConfig",
            {**SHAPE, "max_position_embeddings": 131_072, "rope_theta": 500_000.0,
             "rope_scaling": LLAMA3_SCALING, "tie_word_embeddings": True},
            ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
             "<|eom_id|>", "<|eot_id|>"),
            "<|begin_of_text|>", "<|eot_id|>", LLAMA3_TEMPLATE,
            generation_eos=("<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"),
        ),
        Family(
            "qwen2.5", "Qwen2Config",
            {**SHAPE, "rope_theta": 1_000_000.0, "tie_word_embeddings": True, "use_sliding_window": False},
            ("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
            "<|endoftext|>", "<|im_end|>", CHATML_TEMPLATE, generation_eos=("<|im_end|>", "<|endoftext|>"),
        ),
        Family(
            "qwen3", "Qwen3Config",
            {**SHAPE, "head_dim": 32, "rope_theta": 1_000_000.0, "tie_word_embeddings": True,
             "use_sliding_window": False},
            ("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
            "<|endoftext|>", "<|im_end|>", CHATML_TEMPLATE, generation_eos=("<|im_end|>", "<|endoftext|>"),
        ),
        Family(
            "mistral", "MistralConfig",
            {**SHAPE, "rope_theta": 1_000_000.0, "sliding_window": None, "tie_word_embeddings": False},
            ("<unk>", "<s>", "</s>", "[INST]", "[/INST]"),
            "<s>", "</s>", MISTRAL_TEMPLATE,
        ),
        Family(
            "gpt2", "GPT2Config",
            {"n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 1024, "initializer_range": 0.1},
            ("<|endoftext|>",), "<|endoftext|>", "<|endoftext|>", PLAIN_TEMPLATE, fast=False,
        ),
    )
}  # fmt: skip


def byte_level_tokenizer(specials: tuple[str, ...], bos: str, eos: str, template: str) -> Any:
    """A tokenizer of one token per byte (no merges) after `specials`; `template`: its chat template."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {token: i for i, token in enumerate(specials)} | {
        char: len(specials) + i for i, char in enumerate(alphabet)
    }
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in specials])
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=bos, eos_token=eos)
    fast.chat_template = template
    return fast


def tiny_llm_folder(
    path: Path, family: str, seed: int = 0, *, settings: dict[str, Any] | None = None,
    device: str = "cpu", dtype: Any = None,
) -> Path:  # fmt: skip
    """`family`'s tiny random model saved under `path` with its tokenizer (chat_template.jinja)
    and, where the family has one, a generation_config.json listing its end-of-turn ids.
    `settings` replace the tiny shape (a released model's config, its vocabulary kept: ids past
    the tokenizer's decode to nothing); `device` and `dtype`: where and in what the random weights
    are made (a billion-parameter model on the GPU, in bf16, in seconds)."""
    import torch
    import transformers

    spec = FAMILIES[family]
    tokenizer = byte_level_tokenizer(spec.specials, spec.bos, spec.eos, spec.template)
    ids = {token: i for i, token in enumerate(spec.specials)}
    shape = {"vocab_size": len(tokenizer), **spec.settings} if settings is None else settings
    specials = {"bos_token_id": ids[spec.bos], "eos_token_id": ids[spec.eos]}
    config = getattr(transformers, spec.config)(**shape, **specials)
    torch.manual_seed(seed)
    with torch.device(device):
        model = transformers.AutoModelForCausalLM.from_config(config, **({"dtype": dtype} if dtype else {}))
    if spec.generation_eos:
        model.generation_config = transformers.GenerationConfig(
            bos_token_id=ids[spec.bos], eos_token_id=[ids[token] for token in spec.generation_eos]
        )
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def special_id(family: str, token: str) -> int:
    return FAMILIES[family].specials.index(token)
