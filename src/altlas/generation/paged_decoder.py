"""Decode steps for many sequences at once over a paged KV cache (Llama-family models: the
families llama_decoder.supports accepts).

Continuous batching (continuous.py) keeps up to `slots` sequences decoding together. A step
runs up to `max_rows` *rows*, each a token at its position in its sequence (its slot): the
last token of every decoding sequence, and chunks of new sequences' prompts, so prefill and
decode share one launch (a prompt's rows write their keys and values before attention reads
them, and each attends up to its own position). It returns one row of logits per row.

Keys and values live in a pool of pages of `page` positions shared by all sequences: a
sequence holds only the pages its length needs (a block-table row lists them), so a short
answer does not reserve a long context's memory.

The matrix products run as batched cuBLAS/torch products (the weights are read once per
step for all sequences: that is where batching pays); rotary embedding with the cache write
and attention read positions and pages from device memory (Triton kernels on CUDA,
paged_kernels.py; the torch references below on CPU), so on CUDA each batch size bucket is
captured once as a CUDA graph and replayed every step. (`load_prefill` copies a prompt's
keys and values from a transformers forward instead, for tests and tools.)
"""

from __future__ import annotations

from typing import Any

import torch

from altlas.generation.llama_decoder import LlamaWeights, _layer_cache, _pow2

__all__ = ["PagedLlamaDecoder", "paged_attention_reference", "rope_and_store_reference"]


class PagedLlamaDecoder(LlamaWeights):
    """Weights (views of the model's), the page pool, block tables and step buffers."""

    def __init__(
        self, model: Any, max_context: int, slots: int, cache_tokens: int, *, page: int = 16,
        max_rows: int = 512, use_kernels: bool | None = None, use_graph: bool | None = None,
    ) -> None:  # fmt: skip
        if slots < 1 or page < 1 or page & (page - 1):
            raise ValueError("slots must be >= 1 and the page size a power of two")
        device_type = next(model.parameters()).device.type
        kernels = device_type == "cuda" if use_kernels is None else use_kernels
        super().__init__(model, max_context, "paged decoder", kernels=kernels)
        self.slots = slots
        self.max_rows = _pow2(max(max_rows, slots))
        self.page = page
        # page 0 is scratch: idle rows of a batch bucket write there and nobody reads it
        self.pages = max(cache_tokens, max_context) // page + 2
        layers = len(self.weights)
        pool_shape = (layers, self.pages * page, self.kv_heads, self.head_dim)
        self.k_pool = torch.zeros(pool_shape, device=self.device, dtype=self.dtype)
        self.v_pool = torch.zeros(pool_shape, device=self.device, dtype=self.dtype)
        self.pages_per_sequence = -(-max_context // page)
        # one table row per slot, plus an all-scratch row (slot `slots`) for idle rows of a bucket
        self.table = torch.zeros(slots + 1, self.pages_per_sequence, dtype=torch.int32, device=self.device)
        self.tokens = torch.zeros(self.max_rows, dtype=torch.long, device=self.device)
        self.positions = torch.zeros(self.max_rows, dtype=torch.int32, device=self.device)
        self.row_slots = torch.full((self.max_rows,), slots, dtype=torch.int32, device=self.device)
        self.use_kernels = kernels
        self.use_graph = self.device.type == "cuda" if use_graph is None else use_graph
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}
        self._pool: Any = None  # a graph memory pool handle, shared by the buckets

    @property
    def bytes_per_token(self) -> int:
        """KV-cache bytes one position of one sequence takes (all layers, keys and values)."""
        return int(2 * len(self.weights) * self.kv_heads * self.head_dim * self.k_pool.element_size())

    def bucket(self, rows: int) -> int:
        """The rows a step of `rows` runs at: with CUDA graphs the next power of two (a graph per
        bucket), else exactly `rows` (padding would only cost arithmetic)."""
        if rows > self.max_rows:
            raise ValueError(f"{rows} rows; a step takes {self.max_rows} at most")
        return _pow2(max(rows, 1)) if self.use_graph else max(rows, 1)

    # the cache

    def load_prefill(self, cache: Any, length: int, pages: list[int], row: int = 0) -> None:
        """Copy row `row` of transformers' cache of prompts (keys after rotary embedding), its
        first `length` positions, into `pages`."""
        if len(pages) * self.page < length:
            raise ValueError(f"{len(pages)} pages hold fewer than {length} positions")
        rows = self._rows(pages, length)
        with torch.no_grad():
            for i in range(len(self.weights)):
                keys, values = _layer_cache(cache, i)
                self.k_pool[i][rows] = keys[row, :, :length].transpose(0, 1)
                self.v_pool[i][rows] = values[row, :, :length].transpose(0, 1)

    def _rows(self, pages: list[int], length: int) -> torch.Tensor:
        positions = torch.arange(length, device=self.device)
        page_ids = torch.tensor(pages, dtype=torch.long, device=self.device)
        return page_ids[positions // self.page] * self.page + positions % self.page

    # a step

    def step(self, rows: int) -> torch.Tensor:
        """Logits [bucket, vocab] (model dtype) after feeding tokens[i] at positions[i] of slot
        row_slots[i] for the first `rows` rows (rows past them must be idle: token 0 at position
        0 of the scratch slot). The caller fills tokens, positions, row_slots and table first."""
        size = self.bucket(rows)
        if not self.use_graph:
            return self._forward(size)
        if size not in self._graphs:
            self._capture(size)
        graph, logits = self._graphs[size]
        graph.replay()
        return logits

    def capture_all(self) -> None:
        """Capture every bucket's graph now (idle rows only: nothing in the pages changes but
        scratch), so that no request waits for a capture."""
        if not self.use_graph:
            return
        for size in sorted({self.bucket(n) for n in range(1, self.max_rows + 1)}, reverse=True):
            if size not in self._graphs:
                self._capture(size)

    def _capture(self, size: int) -> None:
        stream = torch.cuda.Stream(self.device)  # type: ignore[no-untyped-call]
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(2):  # compile the kernels, settle cuBLAS's workspaces
                self._forward(size)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        # One memory pool for all buckets (only one step runs at a time, and its logits are read
        # before the next): ten private pools held ~10x the largest bucket's activations.
        with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
            logits = self._forward(size)
        self._graphs[size] = (graph, logits)

    @torch.no_grad()
    def _forward(self, size: int) -> torch.Tensor:
        tokens, positions, row_slots = self.tokens[:size], self.positions[:size], self.row_slots[:size]
        table = self.table
        x = self.embed[tokens]
        for i, w in enumerate(self.weights):
            qkv = _linear(self._norm(x, w["norm1"]), w["qkv"], w.get("qkv_bias"))
            q = self._rope_and_store(qkv, positions, row_slots, table, i)
            attention = self._attend(q, positions, row_slots, table, i)
            if "out_bias" in w:  # residual + o_proj(attention), as transformers rounds it
                x = x + torch.addmm(w["out_bias"], attention, w["out"].t())
            else:
                x = torch.addmm(x, attention, w["out"].t())  # the residual add inside the product
            gate, up = (self._norm(x, w["norm2"]) @ w["gate_up"].t()).chunk(2, dim=-1)
            x = torch.addmm(x, torch.nn.functional.silu(gate) * up, w["down"].t())
        logits: torch.Tensor = self._norm(x, self.final_norm) @ self.lm_head.t()
        return logits

    def _norm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        if not self.use_kernels:
            return _rms_norm(x, weight, self.eps)
        from altlas.generation.decode_kernels import rmsnorm_kernel

        out = torch.empty_like(x)
        rmsnorm_kernel[(x.shape[0],)](x, weight, out, x.shape[1], self.eps, BLOCK=_pow2(x.shape[1]))
        return out

    def _rope_and_store(
        self, qkv: torch.Tensor, positions: torch.Tensor, row_slots: torch.Tensor, table: torch.Tensor,
        layer: int,
    ) -> torch.Tensor:  # fmt: skip
        k_pool, v_pool = self.k_pool[layer], self.v_pool[layer]
        w = self.weights[layer]
        q_norm, k_norm = w.get("q_norm"), w.get("k_norm")
        if not self.use_kernels:
            return rope_and_store_reference(
                qkv, self.cos, self.sin, positions, table[row_slots.long()], k_pool, v_pool, self.heads,
                self.kv_heads, self.page, q_norm=q_norm, k_norm=k_norm, eps=self.eps,
            )  # fmt: skip
        from altlas.generation.paged_kernels import rope_paged_kernel

        q = torch.empty(qkv.shape[0], self.heads * self.head_dim, device=self.device, dtype=self.dtype)
        rope_paged_kernel[(qkv.shape[0],)](
            qkv, self.cos, self.sin, positions, row_slots, table, q, k_pool, v_pool, qkv.stride(0),
            table.stride(0), q_norm if q_norm is not None else qkv, k_norm if k_norm is not None else qkv,
            self.eps,
            HEADS=self.heads, KV_HEADS=self.kv_heads, HEAD_DIM=self.head_dim, PAGE=self.page,
            BLOCK_HEADS=_pow2(max(self.heads, self.kv_heads)), QK_NORM=q_norm is not None,
        )  # fmt: skip
        return q

    def _attend(
        self, q: torch.Tensor, positions: torch.Tensor, row_slots: torch.Tensor, table: torch.Tensor,
        layer: int,
    ) -> torch.Tensor:  # fmt: skip
        k_pool, v_pool = self.k_pool[layer], self.v_pool[layer]
        scale = self.head_dim**-0.5
        if not self.use_kernels:
            return paged_attention_reference(
                q, k_pool, v_pool, positions, table[row_slots.long()], self.heads, self.kv_heads, self.page,
                scale,
            )  # fmt: skip
        from altlas.generation.paged_kernels import paged_attention_kernel

        out = torch.empty_like(q)
        paged_attention_kernel[(q.shape[0], self.heads)](
            q, k_pool, v_pool, positions, row_slots, table, out, scale, table.stride(0),
            HEADS=self.heads, KV_HEADS=self.kv_heads, HEAD_DIM=self.head_dim, PAGE=self.page,
        )  # fmt: skip
        return out


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x @ weight.T (+ bias), as nn.Linear computes it (the bias added before the rounding)."""
    return x @ weight.t() if bias is None else torch.addmm(bias, x, weight.t())


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """transformers' LlamaRMSNorm: normalise in fp32, round to the model's dtype, scale."""
    x32 = x.float()
    normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return weight * normed.to(x.dtype)


def rope_and_store_reference(
    qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, positions: torch.Tensor, table: torch.Tensor,
    k_pool: torch.Tensor, v_pool: torch.Tensor, heads: int, kv_heads: int, page: int, *,
    q_norm: torch.Tensor | None = None, k_norm: torch.Tensor | None = None, eps: float = 1e-6,
) -> torch.Tensor:  # fmt: skip
    """Rotary embedding of each row's q and k at its position (q*cos + rotate_half(q)*sin, each
    product and the sum rounded to the model's dtype like transformers), after per-head RMS
    norms of q and k where given (Qwen3's q_norm, k_norm); k and v written to the row's page;
    returns q [rows, heads * head_dim]."""
    rows, head_dim = qkv.shape[0], cos.shape[-1]
    q = qkv[:, : heads * head_dim].view(rows, heads, head_dim)
    k = qkv[:, heads * head_dim : (heads + kv_heads) * head_dim].view(rows, kv_heads, head_dim)
    v = qkv[:, (heads + kv_heads) * head_dim :].view(rows, kv_heads, head_dim)
    if q_norm is not None and k_norm is not None:
        q, k = _rms_norm(q, q_norm, eps), _rms_norm(k, k_norm, eps)
    at = positions.long()
    c, s = cos[at].float()[:, None, :], sin[at].float()[:, None, :]

    def rotate(t: torch.Tensor) -> torch.Tensor:
        t32 = t.float()
        half = head_dim // 2
        turned = torch.cat((-t32[..., half:], t32[..., :half]), dim=-1)
        return ((t32 * c).to(t.dtype).float() + (turned * s).to(t.dtype).float()).to(t.dtype)

    pool_rows = table[torch.arange(rows, device=qkv.device), at // page].long() * page + at % page
    k_pool[pool_rows] = rotate(k)
    v_pool[pool_rows] = v
    return rotate(q).reshape(rows, heads * head_dim)


def paged_attention_reference(
    q: torch.Tensor, k_pool: torch.Tensor, v_pool: torch.Tensor, positions: torch.Tensor,
    table: torch.Tensor, heads: int, kv_heads: int, page: int, scale: float,
) -> torch.Tensor:  # fmt: skip
    """Each row's query over its positions 0..position, through its pages, softmax in fp32."""
    rows, head_dim = q.shape[0], k_pool.shape[-1]
    length = int(positions.max()) + 1
    span = torch.arange(length, device=q.device)
    pool_rows = table[:, span // page].long() * page + span % page  # [rows, length]
    group = heads // kv_heads
    keys = k_pool[pool_rows].float().repeat_interleave(group, dim=2)  # [rows, length, heads, dim]
    values = v_pool[pool_rows].float().repeat_interleave(group, dim=2)
    scores = torch.einsum("rhd,rlhd->rhl", q.view(rows, heads, head_dim).float() * scale, keys)
    future = span[None, :] > positions[:, None].long()
    weights = torch.softmax(scores.masked_fill(future[:, None, :], float("-inf")), dim=-1)
    return torch.einsum("rhl,rlhd->rhd", weights, values).to(q.dtype).reshape(rows, heads * head_dim)
