"""A BERT encoder in plain PyTorch, loaded from Hugging Face weight names.

Written for inference speed, not training: Q, K and V are one fused matrix
product, attention is `scaled_dot_product_attention` (flash or memory-efficient
kernels on CUDA; no mask at all when a batch has one length), and the module
holds no dropout. Shapes: B sequences, S tokens, H hidden, N heads, D = H / N.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from altlas.embeddings.model_files import EncoderSpec
from altlas.errors import InvalidInputError

__all__ = ["BertEncoder", "load_state_dict"]


class BertLayer(nn.Module):
    def __init__(self, spec: EncoderSpec) -> None:
        super().__init__()
        h = spec.hidden_size
        self.num_heads = spec.num_heads
        self.qkv = nn.Linear(h, 3 * h)
        self.attn_out = nn.Linear(h, h)
        self.attn_norm = nn.LayerNorm(h, eps=spec.layer_norm_eps)
        self.ffn_in = nn.Linear(h, spec.intermediate_size)
        self.ffn_out = nn.Linear(spec.intermediate_size, h)
        self.ffn_norm = nn.LayerNorm(h, eps=spec.layer_norm_eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, s, h = x.shape  # x: [B, S, H]
        qkv = self.qkv(x).view(b, s, 3, self.num_heads, h // self.num_heads).permute(2, 0, 3, 1, 4)
        # qkv: [3, B, N, S, D]; mask: [B, 1, 1, S] bool, True where a real token is
        attn = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=mask)
        attn = attn.transpose(1, 2).reshape(b, s, h)
        x = self.attn_norm(x + self.attn_out(attn))
        out: torch.Tensor = self.ffn_norm(x + self.ffn_out(F.gelu(self.ffn_in(x))))
        return out


class BertEncoder(nn.Module):
    def __init__(self, spec: EncoderSpec) -> None:
        super().__init__()
        self.spec = spec
        h = spec.hidden_size
        self.word = nn.Embedding(spec.vocab_size, h)
        self.position = nn.Embedding(spec.max_positions, h)
        self.token_type = nn.Embedding(spec.type_vocab_size, h)
        self.embed_norm = nn.LayerNorm(h, eps=spec.layer_norm_eps)
        self.layers = nn.ModuleList(BertLayer(spec) for _ in range(spec.num_layers))

    def forward(self, input_ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids: [B, S]; mask: [B, S] bool or None when no token is padding -> [B, S, H]."""
        s = input_ids.shape[1]
        positions = self.position.weight[:s]  # [S, H]
        x = self.word(input_ids) + positions + self.token_type.weight[0]
        x = self.embed_norm(x)
        attn_mask = None if mask is None else mask[:, None, None, :]
        for layer in self.layers:
            x = layer(x, attn_mask)
        hidden: torch.Tensor = x
        return hidden


def _rename(name: str) -> str | None:
    """Hugging Face BERT weight name -> ours (None for weights we do not use, like the pooler)."""
    for prefix in ("bert.", "model."):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    name = name.replace(".gamma", ".weight").replace(".beta", ".bias")
    simple = {
        "embeddings.word_embeddings.weight": "word.weight",
        "embeddings.position_embeddings.weight": "position.weight",
        "embeddings.token_type_embeddings.weight": "token_type.weight",
        "embeddings.LayerNorm.weight": "embed_norm.weight",
        "embeddings.LayerNorm.bias": "embed_norm.bias",
    }
    if name in simple:
        return simple[name]
    if not name.startswith("encoder.layer."):
        return None
    _, _, index, rest = name.split(".", 3)
    mapping = {
        "attention.output.dense": "attn_out",
        "attention.output.LayerNorm": "attn_norm",
        "intermediate.dense": "ffn_in",
        "output.dense": "ffn_out",
        "output.LayerNorm": "ffn_norm",
    }
    for source, target in mapping.items():
        if rest.startswith(source + "."):
            return f"layers.{index}.{target}.{rest[len(source) + 1 :]}"
    if rest.startswith("attention.self."):
        return f"layers.{index}.qkv_parts.{rest[len('attention.self.') :]}"
    return None


def load_state_dict(weights_file: Path, spec: EncoderSpec) -> dict[str, torch.Tensor]:
    """Our state dict from a safetensors or PyTorch checkpoint, Q/K/V fused."""
    if weights_file.suffix == ".safetensors":
        from safetensors.torch import load_file

        raw = load_file(str(weights_file))
    else:
        raw = torch.load(weights_file, map_location="cpu", weights_only=True)
    state: dict[str, torch.Tensor] = {}
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for name, tensor in raw.items():
        target = _rename(name)
        if target is None:
            continue
        if ".qkv_parts." in target:
            layer, _, rest = target.partition(".qkv_parts.")
            parts.setdefault(layer, {})[rest] = tensor  # e.g. "query.weight"
        else:
            state[target] = tensor
    for layer, pieces in parts.items():
        for kind in ("weight", "bias"):
            try:
                state[f"{layer}.qkv.{kind}"] = torch.cat(
                    [pieces[f"{p}.{kind}"] for p in ("query", "key", "value")]
                )
            except KeyError as exc:
                raise InvalidInputError(
                    f"{weights_file}: missing attention weight {exc}", field="model"
                ) from None
    return state
