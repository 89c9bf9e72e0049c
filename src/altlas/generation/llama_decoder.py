"""Fast batch-1 decoding for Llama-family models: a static KV cache, fused Triton kernels,
and on CUDA one CUDA graph per decode step.

transformers' eager forward issues ~20 kernels per layer from Python for every token, so a
small model decodes at the host's pace (13 tokens/s measured for SmolLM2-135M through
`generate` on an H100 host). Here the prompt still runs through transformers (prefill, any
length), its keys and values are copied into a preallocated cache of `max_context`
positions, and each next token runs 5 launches per layer (decode_kernels.py: products with
the norm, activation or residual folded in, rotary embedding with the cache write,
attention) that read the position from device memory, so the whole step is captured once
and replayed.

Supported: LlamaForCausalLM-shaped models (SmolLM2, Llama, Mistral-style without sliding
windows) with plain rotary embeddings and no attention or MLP biases; `supports` says why
not otherwise, and the engine then decodes through transformers.
"""

from __future__ import annotations

from typing import Any

import torch

from altlas.observability.nvtx import ranged

__all__ = ["LlamaDecoder", "LlamaWeights", "supports"]


def supports(model: Any) -> str | None:
    """None if the fast decoder can run this model, else the reason it cannot."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return "triton is not installed"
    config = model.config
    if getattr(config, "model_type", "") not in ("llama", "mistral"):
        return f"model type {getattr(config, 'model_type', '?')!r} (only llama-shaped models)"
    if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        return "attention or MLP biases"
    if getattr(config, "sliding_window", None):
        return "sliding-window attention"
    settings = config.to_dict()  # rope_parameters in transformers 5, rope_scaling before
    scaling = settings.get("rope_parameters") or settings.get("rope_scaling") or {}
    if scaling.get("rope_type", scaling.get("type", "default")) not in ("default", None):
        return f"rope scaling {scaling!r}"
    if getattr(config, "hidden_act", "silu") != "silu":
        return f"activation {config.hidden_act!r}"
    return None


class LlamaWeights:
    """What a decoder reads from a transformers Llama model (shared by the batch-1 decoder here and
    the paged one): device and dtype, the attention's shape, the RMS-norm epsilon, the embedding,
    final norm and LM head, each layer's fused weights (views of the model's) and rotary tables."""

    def __init__(self, model: Any, max_context: int, decoder: str) -> None:
        """`decoder` names the decoder in the error for a model it does not support."""
        reason = supports(model)
        if reason is not None:
            raise ValueError(f"the {decoder} does not support this model: {reason}")
        config = model.config
        inner = model.model
        self.device = inner.embed_tokens.weight.device
        self.dtype = inner.embed_tokens.weight.dtype
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.eps = float(config.rms_norm_eps)
        self.max_context = max_context
        self.embed, self.final_norm, self.lm_head = (
            inner.embed_tokens.weight,
            inner.norm.weight,
            model.lm_head.weight,
        )
        self.weights = layer_weights(model)
        self.cos, self.sin = rotary_tables(model, max_context, self.head_dim)


class LlamaDecoder(LlamaWeights):
    """Decode state for one sequence at a time: weights (views of the model's), cache, buffers."""

    def __init__(self, model: Any, max_context: int, *, use_graph: bool | None = None) -> None:
        super().__init__(model, max_context, "fast decoder")
        config = model.config
        self.layers = config.num_hidden_layers
        self.hidden = config.hidden_size
        self.intermediate = config.intermediate_size
        shape = (self.layers, self.kv_heads, max_context, self.head_dim)
        self.k_cache = torch.zeros(shape, device=self.device, dtype=self.dtype)
        self.v_cache = torch.zeros(shape, device=self.device, dtype=self.dtype)
        # step buffers: inputs (token, position) and everything in between, fixed addresses for the graph
        self.token = torch.zeros(1, dtype=torch.long, device=self.device)
        self.position = torch.zeros(1, dtype=torch.int32, device=self.device)
        self.x = torch.zeros(self.hidden, device=self.device, dtype=self.dtype)
        self.h = torch.zeros_like(self.x)
        self.q = torch.zeros(self.heads * self.head_dim, device=self.device, dtype=self.dtype)
        self.qkv = torch.zeros(
            (self.heads + 2 * self.kv_heads) * self.head_dim, device=self.device, dtype=self.dtype
        )
        self.attn = torch.zeros_like(self.q)
        self.act = torch.zeros(self.intermediate, device=self.device, dtype=self.dtype)
        self.logits = torch.zeros(self.lm_head.shape[0], device=self.device, dtype=self.dtype)
        self.use_graph = self.device.type == "cuda" if use_graph is None else use_graph
        self.graph: torch.cuda.CUDAGraph | None = None

    def load_prefill(self, cache: Any, length: int) -> None:
        """Copy transformers' cache of the prompt (keys after rotary embedding) into ours."""
        if length >= self.max_context:
            raise ValueError(f"the prompt fills the {self.max_context}-position cache")
        with torch.no_grad():
            for i in range(self.layers):
                keys, values = _layer_cache(cache, i)
                self.k_cache[i, :, :length] = keys[0, :, :length]
                self.v_cache[i, :, :length] = values[0, :, :length]

    @ranged("generate.decode_step")
    def step(self, token: torch.Tensor, position: int) -> torch.Tensor:
        """Logits [vocab] (model dtype) after feeding `token` (a 0-d or [1] device tensor) at `position`."""
        if position >= self.max_context:
            raise ValueError(f"position {position} is past the {self.max_context}-position cache")
        self.token.copy_(token.view(1))
        self.position.fill_(position)
        if not self.use_graph:
            self._forward()
            return self.logits
        if self.graph is None:
            self._capture()
        assert self.graph is not None
        self.graph.replay()
        return self.logits

    def _capture(self) -> None:
        stream = torch.cuda.Stream(self.device)  # type: ignore[no-untyped-call]
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(2):  # compile the kernels, settle cuBLAS's workspaces
                self._forward()
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            self._forward()
        self.graph = graph

    @torch.no_grad()
    def _forward(self) -> None:
        from altlas.generation.decode_kernels import attention_kernel, rmsnorm_kernel, rope_cache_kernel

        torch.index_select(self.embed, 0, self.token, out=self.x[None, :])
        cache_head_stride, cache_pos_stride = self.k_cache.stride(1), self.k_cache.stride(2)
        for i, w in enumerate(self.weights):
            self._gemv(w["qkv"], self.x, self.qkv, norm=w["norm1"])  # norm folded in
            k_cache, v_cache = self.k_cache[i], self.v_cache[i]
            rope_cache_kernel[(1,)](
                self.qkv, self.cos, self.sin, self.position, self.q, k_cache, v_cache,
                cache_head_stride, cache_pos_stride,
                HEADS=self.heads, KV_HEADS=self.kv_heads, HEAD_DIM=self.head_dim,
                BLOCK_HEADS=_pow2(max(self.heads, self.kv_heads)),
            )  # fmt: skip
            attention_kernel[(self.heads,)](
                self.q, k_cache, v_cache, self.position, self.attn, self.head_dim**-0.5,
                cache_head_stride, cache_pos_stride,
                GROUP=self.heads // self.kv_heads, HEAD_DIM=self.head_dim, BLOCK_POS=64,
            )  # fmt: skip
            self._gemv(w["out"], self.attn, self.x, residual=True)
            self._gemv(w["gate_up"], self.x, self.act, norm=w["norm2"], swiglu=True)
            self._gemv(w["down"], self.act, self.x, residual=True)
        hidden_block = _pow2(self.hidden)
        rmsnorm_kernel[(1,)](self.x, self.final_norm, self.h, self.hidden, self.eps, BLOCK=hidden_block)
        torch.mv(self.lm_head, self.h, out=self.logits)

    def _gemv(
        self, weight: torch.Tensor, vector: torch.Tensor, out: torch.Tensor, *,
        norm: torch.Tensor | None = None, swiglu: bool = False, residual: bool = False,
    ) -> None:  # fmt: skip
        """out = weight @ vector through gemv_kernel, with the norm / SwiGLU / residual fused."""
        from altlas.generation.decode_kernels import gemv_kernel

        rows, cols = weight.shape
        rows //= 2 if swiglu else 1
        if cols > 8192:
            raise ValueError(f"rows of {cols} weights: the one-tile product takes up to 8192")
        block_r = 4 if rows <= 1024 else 8  # ~100-200 programs for these models' shapes
        gemv_kernel[(-(-rows // block_r),)](
            weight, vector, norm if norm is not None else vector, out, rows, cols, self.eps,
            NORM=norm is not None, SWIGLU=swiglu, RESIDUAL=residual,
            BLOCK_R=block_r, BLOCK_C=_pow2(cols),
        )  # fmt: skip


def layer_weights(model: Any) -> list[dict[str, torch.Tensor]]:
    """Each layer's weights for the fused kernels: norms, [q; k; v] and [gate; up] fused (once
    per model, shared by every decoder over it), the output and down projections."""
    weights = []
    with torch.no_grad():
        for layer in model.model.layers:
            attn, mlp = layer.self_attn, layer.mlp
            weights.append(
                {
                    "norm1": layer.input_layernorm.weight,
                    "qkv": _fuse_once(attn.q_proj, attn.k_proj, attn.v_proj),
                    "out": attn.o_proj.weight,
                    "norm2": layer.post_attention_layernorm.weight,
                    "gate_up": _fuse_once(mlp.gate_proj, mlp.up_proj),
                    "down": mlp.down_proj.weight,
                }
            )
    return weights


def rotary_tables(model: Any, max_context: int, head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin) [max_context, head_dim]: the model's own rotary tables for every position,
    the same values its transformers forward uses."""
    inner = model.model
    weight = inner.embed_tokens.weight
    with torch.no_grad():
        positions = torch.arange(max_context, device=weight.device)[None, :]
        probe = torch.zeros(1, max_context, head_dim, device=weight.device, dtype=weight.dtype)
        cos, sin = inner.rotary_emb(probe, positions)
    return cos[0].contiguous(), sin[0].contiguous()


def _fuse(*linears: Any) -> torch.Tensor:
    """One weight matrix for several projections of the same input; the model's layers are
    pointed at slices of it, so the weights are not held twice."""
    fused = torch.cat([linear.weight for linear in linears])
    start = 0
    for linear in linears:
        rows = linear.weight.shape[0]
        linear.weight = torch.nn.Parameter(fused[start : start + rows], requires_grad=False)
        start += rows
    return fused


def _fuse_once(*linears: Any) -> torch.Tensor:
    """`_fuse`, remembered on the first layer: a second decoder over the same model (the
    one-at-a-time and the batched decoder) shares the fused weights instead of copying them."""
    fused = getattr(linears[0], "_altlas_fused", None)
    if fused is None:
        fused = _fuse(*linears)
        linears[0]._altlas_fused = fused
    assert isinstance(fused, torch.Tensor)
    return fused


def _layer_cache(cache: Any, index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(keys, values) [1, kv_heads, length, head_dim] of one layer of a transformers cache (4.x or 5.x)."""
    if hasattr(cache, "layers"):
        layer = cache.layers[index]
        return layer.keys, layer.values
    return cache.key_cache[index], cache.value_cache[index]


def _pow2(n: int) -> int:
    return 1 << (n - 1).bit_length()
