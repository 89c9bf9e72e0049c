"""Fast batch-1 decoding for Llama-family models: a static KV cache, fused Triton kernels,
and on CUDA one CUDA graph per decode step.

transformers' eager forward issues ~20 kernels per layer from Python for every token, so a
small model decodes at the host's pace (13 tokens/s measured for SmolLM2-135M through
`generate` on an H100 host). Here the prompt still runs through transformers (prefill, any
length), its keys and values are copied into a preallocated cache of `max_context`
positions, and each next token runs 5 launches per layer (decode_kernels.py: four products
with the norm, bias, activation or residual folded in, attention with the rotary embedding and
the cache write folded in, a head's positions split over programs and combined by the output
product) and the LM head with the final norm, all reading the position from device memory, so
the whole step is captured once and replayed (twice: past `split_from` positions attention is
split over many more programs, combined by a kernel of its own).

Supported (`supports` says why not otherwise, and the engine then decodes through
transformers): the families of FAMILIES, read from the transformers model as it is:
Llama 2/3/3.1/3.2/3.3 with rope scaling default, linear, llama3, yarn (the rotary tables are
the model's own) or dynamic within its original context; Mistral without a sliding window in
use; Qwen2/2.5 (q/k/v biases); Qwen3 dense (per-head q/k norms, an explicit head_dim); tied
or untied embeddings, grouped-query attention, rows of any length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from altlas.observability.nvtx import ranged

__all__ = [
    "FAMILIES",
    "LIBRARY",
    "PRODUCTS",
    "ROPE_TYPES",
    "TILES",
    "LlamaDecoder",
    "LlamaWeights",
    "Tile",
    "describe",
    "supports",
    "tiles_for",
]

FAMILIES = ("llama", "mistral", "qwen2", "qwen3")  # transformers' model_type
ROPE_TYPES = ("default", "linear", "llama3", "yarn", "dynamic")
MAX_SPLITS = 64  # flash-decoding's programs per head at most
NEAR_SPLITS = 8  # before split_from: shares of a head's positions, combined by the output product
FOLD_VALUES = 16384  # partial-softmax values an output product's program combines at most


def supports(model: Any, max_context: int | None = None, *, kernels: bool = True) -> str | None:
    """None if the fast decoders can run this model over `max_context` positions (default:
    the model's max_position_embeddings), else the reason they cannot. `kernels`: with the
    Triton kernels (the batch-1 decoder always; the paged one on CUDA), which need triton; the
    paged decoder on the CPU runs torch alone."""
    if kernels:
        try:
            import triton  # noqa: F401
        except ImportError:
            return "triton is not installed"
    config = model.config
    model_type = getattr(config, "model_type", "?")
    if model_type not in FAMILIES:
        return f"model type {model_type!r} (only {', '.join(FAMILIES)})"
    if getattr(config, "hidden_act", "silu") != "silu":
        return f"activation {config.hidden_act!r} (only silu)"
    context = max_context or int(getattr(config, "max_position_embeddings", 0) or 2048)
    window = sliding_window(config, context)
    if window is not None:
        return f"sliding-window attention ({window} positions) over a {context}-position context"
    reason = _rope_reason(model, context)
    if reason is not None:
        return reason
    return _shape_reason(model)


def describe(model: Any) -> str:
    """The model's family and the features the decoders use, for logs: e.g. "qwen3: 36 layers,
    hidden 2560, 32 heads / 8 KV heads of 128, rope default, q/k norms, tied embeddings"."""
    config = model.config
    heads, kv_heads, head_dim = _attention_shape(config)
    attn = model.model.layers[0].self_attn
    features = [
        f"{config.num_hidden_layers} layers, hidden {config.hidden_size}, intermediate "
        f"{config.intermediate_size}, vocab {config.vocab_size}",
        f"{heads} heads / {kv_heads} KV heads of {head_dim}",
        f"rope {rope_type(config)} (theta {rope_parameters(config).get('rope_theta', '?')})",
    ]
    if attn.q_proj.bias is not None:
        features.append("q/k/v biases")
    if attn.o_proj.bias is not None:
        features.append("output bias")
    if getattr(attn, "q_norm", None) is not None:
        features.append("q/k norms")
    tied = model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    features.append("tied embeddings" if tied else "untied embeddings")
    return f"{config.model_type}: " + ", ".join(features)


def rope_parameters(config: Any) -> dict[str, Any]:
    """The config's rotary settings, whichever transformers wrote it: `rope_parameters` (5.x,
    theta included) or `rope_scaling` (4.x, None for plain rotary; theta beside it)."""
    settings = config.to_dict()
    parameters = dict(settings.get("rope_parameters") or settings.get("rope_scaling") or {})
    if "rope_theta" in settings:
        parameters.setdefault("rope_theta", settings["rope_theta"])
    return parameters


def rope_type(config: Any) -> str:
    """default, linear, llama3, yarn, dynamic ... ("per layer type" for a dict of them)."""
    parameters = rope_parameters(config)
    if parameters and all(isinstance(value, dict) for value in parameters.values()):
        return "per layer type"
    return str(parameters.get("rope_type") or parameters.get("type") or "default")


def sliding_window(config: Any, max_context: int) -> int | None:
    """The attention window, if some layer's attention is really windowed within `max_context`
    positions (a window of W positions hides a key only from queries W or more positions on).
    Qwen2/Qwen3 configs carry a window with use_sliding_window false: transformers 5 then drops
    it, 4.x kept it and looked at the switch; the layers windowed are layer_types' sliding ones
    (5.x) or those from max_window_layers on (4.x). Mistral windows every layer."""
    window = getattr(config, "sliding_window", None)
    if not window or window >= max_context:
        return None
    qwen = config.model_type in ("qwen2", "qwen3")
    if qwen and not getattr(config, "use_sliding_window", False):
        return None
    layer_types = getattr(config, "layer_types", None)
    if layer_types is not None:
        return int(window) if "sliding_attention" in layer_types else None
    if qwen and config.num_hidden_layers <= getattr(config, "max_window_layers", 0):
        return None
    return int(window)


def _rope_reason(model: Any, max_context: int) -> str | None:
    config = model.config
    kind = rope_type(config)
    if kind not in ROPE_TYPES:
        return f"rope scaling {kind!r} (only {', '.join(ROPE_TYPES)})"
    if float(rope_parameters(config).get("partial_rotary_factor", 1.0)) != 1.0:
        return "partial rotary embedding"
    if kind == "dynamic":
        # Past its original context a dynamic rotary embedding recomputes its frequencies from
        # the sequence's length (and changes the module); within it, it is the default one.
        original = getattr(model.model.rotary_emb, "original_max_seq_len", None)
        original = int(original or config.max_position_embeddings)
        if max_context > original:
            return (
                f"dynamic rope scaling over {max_context} positions (its frequencies change past "
                f"the original {original})"
            )
    return None


def _attention_shape(config: Any) -> tuple[int, int, int]:
    heads = int(config.num_attention_heads)
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
    return heads, kv_heads, head_dim


def _shape_reason(model: Any) -> str | None:
    heads, kv_heads, head_dim = _attention_shape(model.config)
    if head_dim & (head_dim - 1) or head_dim < 16:
        return f"head_dim {head_dim} (a power of two from 16)"
    if heads % kv_heads:
        return f"{heads} query heads over {kv_heads} KV heads"
    for layer in model.model.layers:
        attn, mlp = layer.self_attn, layer.mlp
        if any(linear.bias is not None for linear in (mlp.gate_proj, mlp.up_proj, mlp.down_proj)):
            return "MLP biases"
        if len({linear.bias is None for linear in (attn.q_proj, attn.k_proj, attn.v_proj)}) > 1:
            return "biases on some of q, k and v only"
        if attn.q_proj.weight.shape[0] != heads * head_dim:
            return f"q_proj has {attn.q_proj.weight.shape[0]} rows, not {heads} x {head_dim}"
        if (getattr(attn, "q_norm", None) is None) != (getattr(attn, "k_norm", None) is None):
            return "a q norm without a k norm, or the other way"
    return None


class LlamaWeights:
    """What a decoder reads from a transformers Llama-family model (shared by the batch-1 decoder
    here and the paged one): device and dtype, the attention's shape, the RMS-norm epsilon, the
    embedding, final norm and LM head, each layer's fused weights (views of the model's) and
    the rotary tables."""

    def __init__(self, model: Any, max_context: int, decoder: str, *, kernels: bool = True) -> None:
        """`decoder` names the decoder in the error for a model it does not support; `kernels`:
        whether it runs the Triton kernels."""
        reason = supports(model, max_context, kernels=kernels)
        if reason is not None:
            raise ValueError(f"the {decoder} does not support this model: {reason}")
        config = model.config
        inner = model.model
        self.device = inner.embed_tokens.weight.device
        self.dtype = inner.embed_tokens.weight.dtype
        self.heads, self.kv_heads, self.head_dim = _attention_shape(config)
        self.eps = float(config.rms_norm_eps)
        self.max_context = max_context
        self.embed, self.final_norm, self.lm_head = (
            inner.embed_tokens.weight,
            inner.norm.weight,
            model.lm_head.weight,
        )
        self.weights = layer_weights(model)
        self.qk_norm = "q_norm" in self.weights[0]
        self.cos, self.sin = rotary_tables(model, max_context, self.head_dim)


class LlamaDecoder(LlamaWeights):
    """Decode state for one sequence at a time: weights (views of the model's), cache, buffers.

    Tuning (attributes, read at each step; set them before the first step on CUDA, whose graphs
    keep what they captured): `products` says how each of a layer's products runs (a Tile of
    gemv_kernel or cuBLAS; None: timed on the GPU at the first step); `gemv_rows` overrides the
    rows a fused product's program takes (the interpreter pays per program, so CPU tests take
    more); from position `split_from` on, attention runs `splits` programs per head
    (flash-decoding)."""

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
        # The step's greedy choice (greedy_kernel, the step's last launch): its id, or NO_TOKEN;
        # it is also written to `token` and the position advanced, so a greedy caller passes
        # `token` back and the next step starts with no launch but the graph's.
        self.greedy = torch.zeros(1, dtype=torch.long, device=self.device)
        self._next_position: int | None = None  # what `position` holds after the last step
        self.x = torch.zeros(self.hidden, device=self.device, dtype=self.dtype)
        self.qkv = torch.zeros(
            (self.heads + 2 * self.kv_heads) * self.head_dim, device=self.device, dtype=self.dtype
        )
        self.attn = torch.zeros(self.heads * self.head_dim, device=self.device, dtype=self.dtype)
        self.act = torch.zeros(self.intermediate, device=self.device, dtype=self.dtype)
        self.logits = torch.zeros(self.lm_head.shape[0], device=self.device, dtype=self.dtype)
        self.gemv_rows: int | None = None
        # ~1,000 attention programs over long contexts (a head's positions split `splits` ways);
        # before `split_from`, `near_splits` shares a head where the output product can combine
        # them as it reads them (`_folds_combine`; no launch added), else one program a head: a
        # head's positions are read in parallel, not block after block (SmolLM2 on an H200:
        # attention ~9 of a layer's ~17 us at position 160 with one program a head).
        self.splits = min(MAX_SPLITS, max(2, _floor_pow2(1024 // self.heads)))
        self.near_splits = NEAR_SPLITS
        self.split_from = 512
        self.partials = torch.zeros(
            self.heads * MAX_SPLITS * (self.head_dim + 2), device=self.device, dtype=torch.float32
        )
        self.use_graph = self.device.type == "cuda" if use_graph is None else use_graph
        # Programmatic dependent launch (Hopper on, in graphs): each kernel starts while the one
        # before it finishes, its weights already loading (decode_kernels.py).
        self.pdl = self.use_graph and pdl_supported(self.device)
        self.graphs: dict[bool, torch.cuda.CUDAGraph] = {}  # by split attention or not
        # How each of a layer's products runs: a Tile of gemv_kernel (norm / bias / SwiGLU /
        # residual folded in) or LIBRARY (cuBLAS's matrix-vector product between small kernels).
        # The best tile depends on the matrix and the GPU (measured on an H200: 2-8 rows, one tile
        # or tiles of 512-2048 columns, 2-4 warps; the wrong one reads at 6 % of the bandwidth),
        # so on CUDA each product is timed every way of TILES and cuBLAS's, over every layer's
        # weights (graph replays), before the first capture; elsewhere DEFAULT_TILE.
        self.products: dict[str, Tile | str] | None = (
            None if self.use_graph else dict.fromkeys(PRODUCTS, DEFAULT_TILE)
        )
        widest = max(w.shape[0] for w in self.weights[0].values() if w.dim() == 2)
        self.normed = torch.zeros(self.hidden, device=self.device, dtype=self.dtype)
        self.product = torch.zeros(widest, device=self.device, dtype=self.dtype)

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
        """Logits [vocab] (model dtype) after feeding `token` (a 0-d or [1] device tensor; or
        `self.token`, the last step's greedy choice, as it is) at `position`; `self.greedy`
        holds their greedy choice."""
        if position >= self.max_context:
            raise ValueError(f"position {position} is past the {self.max_context}-position cache")
        if token.data_ptr() != self.token.data_ptr():
            self.token.copy_(token.view(1))
        if position != self._next_position:
            self.position.fill_(position)
        self._next_position = position + 1
        split = position >= self.split_from
        if not self.use_graph:
            self._forward(split)
            return self.logits
        if self.products is None or not self.graphs:
            self._prepare()
        self.graphs[split].replay()
        return self.logits

    def _prepare(self) -> None:
        """On CUDA, at the first step: each product's way chosen, then both graphs captured (no
        capture in the middle of an answer). The runs this takes advance the step's inputs:
        they are put back."""
        inputs = self.token.clone(), self.position.clone()
        if self.products is None:
            self.products = self._choose_products()
        for kind in (False, True) if self.max_context > self.split_from else (False,):
            self.graphs[kind] = self._capture(kind)
        self.token.copy_(inputs[0])
        self.position.copy_(inputs[1])

    def _capture(self, split: bool) -> torch.cuda.CUDAGraph:
        stream = torch.cuda.Stream(self.device)  # type: ignore[no-untyped-call]
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(2):  # compile the kernels, settle cuBLAS's workspaces
                self._forward(split)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            self._forward(split)
        return graph

    @torch.no_grad()
    def _forward(self, split: bool) -> None:
        torch.index_select(self.embed, 0, self.token, out=self.x[None, :])
        for i, w in enumerate(self.weights):
            self._product("qkv", w)
            combine = self._attend(i, w, split)
            self._product("out", w, combine=combine)
            for kind in ("gate_up", "down"):
                self._product(kind, w)
        self._product("head", {})  # the final norm folded in
        self._choose_greedy()

    def _choose_greedy(self) -> None:
        from altlas.generation.decode_kernels import greedy_kernel
        from altlas.generation.sampling import NO_TOKEN

        greedy_kernel[(1,)](
            self.logits, self.logits.shape[0], self.greedy, self.token, self.position, self.max_context - 1,
            BLOCK=GREEDY_BLOCK, NO_TOKEN=NO_TOKEN, PDL=self.pdl, launch_pdl=self.pdl, num_warps=16,
        )  # fmt: skip

    def _attend(self, layer: int, w: dict[str, torch.Tensor], split: bool) -> int:
        """Attention of layer `layer`'s rotated q over its cache up to the position, this
        position's k and v written there first: one program per head into self.attn, or
        `splits` (`split`) or `near_splits` per head into self.partials, combined into
        self.attn by a second launch, or (the returned number of shares, else 0) by the output
        product as it reads them."""
        from altlas.generation.decode_kernels import attention_combine_kernel, rope_attention_kernel

        for name in ("splits", "near_splits"):
            n = getattr(self, name)
            if not 1 <= n <= MAX_SPLITS or n & (n - 1):
                raise ValueError(f"{name} must be a power of two up to {MAX_SPLITS}, not {n}")
        k_cache, v_cache = self.k_cache[layer], self.v_cache[layer]
        splits = self.splits if split else self.near_splits
        folds = self._folds_combine(splits)
        if not split and not folds:
            splits = 1  # near shares only where no launch is added to combine them
        rope_attention_kernel[(self.heads, splits)](
            self.qkv, self.cos, self.sin, self.position, k_cache, v_cache,
            self.partials if splits > 1 else self.attn, self.head_dim**-0.5,
            k_cache.stride(0), k_cache.stride(1),
            w.get("q_norm", self.qkv), w.get("k_norm", self.qkv), self.eps,
            HEADS=self.heads, GROUP=self.heads // self.kv_heads, HEAD_DIM=self.head_dim,
            BLOCK_POS=64, SPLITS=splits, QK_NORM=self.qk_norm, PDL=self.pdl, launch_pdl=self.pdl,
        )  # fmt: skip
        if splits == 1:
            return 0
        if folds:
            return splits
        attention_combine_kernel[(self.heads,)](
            self.partials, self.attn, HEAD_DIM=self.head_dim, SPLITS=splits, PDL=self.pdl,
            launch_pdl=self.pdl,
        )  # fmt: skip
        return 0

    def _folds_combine(self, splits: int) -> bool:
        """Whether the output product combines `splits` (> 1) partial softmaxes a head as it
        reads them: the way it runs is one tile of gemv_kernel over the whole row and the
        partials it reads a program stay few (FOLD_VALUES)."""
        way = self._way("out")
        cols = self.heads * self.head_dim
        return (
            splits > 1
            and isinstance(way, Tile)
            and way.width(cols) >= cols
            and _pow2(self.heads) * splits * self.head_dim <= FOLD_VALUES
        )

    def _way(self, kind: str) -> Tile | str:
        return DEFAULT_TILE if self.products is None else self.products[kind]

    def _product(
        self, kind: str, w: dict[str, torch.Tensor], way: Tile | str | None = None, *, combine: int = 0
    ) -> None:
        """One of a layer's products (PRODUCTS), `way` (a Tile or LIBRARY) or else the way
        `self.products` says; `combine`: the output product reads that many partial softmaxes a
        head (`_attend`) instead of the attention's output."""
        weight, vector, out, options = self.product_args(kind, w)
        if combine:
            vector, options["combine"] = self.partials, combine
        way = way or self._way(kind)
        if isinstance(way, Tile):
            self._gemv(weight, vector, out, tile=way, **options)
        else:
            self._library_gemv(weight, vector, out, **options)

    def product_args(
        self, kind: str, w: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """(weight, input, output, the fused options) of one of layer `w`'s products (PRODUCTS;
        "head": the LM head's, with the final norm, whatever `w`)."""
        if kind == "head":
            return self.lm_head, self.x, self.logits, {"norm": self.final_norm}
        if kind == "qkv":
            return w["qkv"], self.x, self.qkv, {"norm": w["norm1"], "bias": w.get("qkv_bias")}
        if kind == "out":
            return w["out"], self.attn, self.x, {"residual": True, "bias": w.get("out_bias")}
        if kind == "gate_up":
            return w["gate_up"], self.x, self.act, {"norm": w["norm2"], "swiglu": True}
        return w["down"], self.act, self.x, {"residual": True}

    @torch.no_grad()
    def _choose_products(self) -> dict[str, Tile | str]:
        """Each product the fastest way on this GPU of its tiles (`tiles_for`) and cuBLAS's."""
        chosen: dict[str, Tile | str] = {}
        for kind in PRODUCTS:
            times = self.product_times(kind)
            chosen[kind] = min(times, key=times.__getitem__)
        return chosen

    def product_times(self, kind: str) -> dict[Tile | str, float]:
        """µs per layer of product `kind` every way it can run here (`tiles_for`, LIBRARY),
        timed in CUDA graphs over every layer's weights in turn, as a step reads them (one
        matrix again and again would be read from the L2 cache; the LM head's: once a step)."""
        weight, _, _, options = self.product_args(kind, self.weights[0])
        ways: list[Tile | str] = [*tiles_for(weight.shape, swiglu=options.get("swiglu", False)), LIBRARY]
        layers = self.weights[:1] if kind == "head" else self.weights
        times: dict[Tile | str, float] = {}
        for way in ways:

            def run(way: Tile | str = way) -> None:
                for w in layers:
                    self._product(kind, w, way)

            times[way] = graph_time(run, reps=2) / len(layers)
        return times

    def _library_gemv(
        self, weight: torch.Tensor, vector: torch.Tensor, out: torch.Tensor, *,
        norm: torch.Tensor | None = None, bias: torch.Tensor | None = None, swiglu: bool = False,
        residual: bool = False,
    ) -> None:  # fmt: skip
        """What _gemv computes, with cuBLAS's product: the norm (a kernel) first, the product with
        its bias (rounded once, like nn.Linear), then SwiGLU or the residual add in torch, each
        rounded to the model's dtype as transformers rounds it."""
        from altlas.generation.decode_kernels import rmsnorm_kernel

        if norm is not None:
            size = vector.shape[0]
            rmsnorm_kernel[(1,)](vector, norm, self.normed, size, self.eps, BLOCK=_pow2(size))
            vector = self.normed
        product = self.product[: weight.shape[0]] if swiglu or residual else out
        if bias is not None:
            torch.addmv(bias, weight, vector, out=product)
        else:
            torch.mv(weight, vector, out=product)
        if swiglu:
            gate, up = product.chunk(2)
            torch.mul(torch.nn.functional.silu(gate), up, out=out)
        elif residual:
            out.add_(product)

    def _gemv(
        self, weight: torch.Tensor, vector: torch.Tensor, out: torch.Tensor, *, tile: Tile | None = None,
        norm: torch.Tensor | None = None, bias: torch.Tensor | None = None, swiglu: bool = False,
        residual: bool = False, combine: int = 0,
    ) -> None:  # fmt: skip
        """out = weight @ vector (+ bias) through gemv_kernel as `tile` says, with the norm /
        SwiGLU / residual fused; `combine`: `vector` holds that many partial softmaxes a head,
        combined into the attention's output first."""
        from altlas.generation.decode_kernels import gemv_kernel

        tile = tile or DEFAULT_TILE
        rows, cols = weight.shape
        rows //= 2 if swiglu else 1
        block_c = tile.width(cols)
        block_r = tile.rows
        if self.gemv_rows is not None:  # a tile holds 2**20 values at most
            block_r = min(self.gemv_rows, _pow2(rows), (1 << 20) // block_c)
        gemv_kernel[(-(-rows // block_r),)](
            weight, vector, norm if norm is not None else vector, bias if bias is not None else vector,
            out, rows, cols, self.eps,
            NORM=norm is not None, SWIGLU=swiglu, RESIDUAL=residual, BIAS=bias is not None,
            BLOCK_R=block_r, BLOCK_C=block_c, COL_BLOCKS=-(-cols // block_c), PDL=self.pdl,
            COMBINE=combine, HEAD_DIM=self.head_dim if combine else 0, launch_pdl=self.pdl,
            num_warps=tile.warps,
        )  # fmt: skip


PRODUCTS = ("qkv", "out", "gate_up", "down", "head")  # a layer's matrix-vector products, the LM head's
LIBRARY = "library"  # a product through cuBLAS (torch.mv) between small kernels


@dataclass(frozen=True)
class Tile:
    """How gemv_kernel runs a product: `rows` rows per program, a row read in one tile when it
    is at most `cols` long (a power of two), else in tiles of `cols` columns; `warps` warps."""

    rows: int
    cols: int
    warps: int = 4

    def width(self, length: int) -> int:
        """The tile's columns for rows of `length`."""
        return _pow2(length) if length <= self.cols else self.cols

    def __str__(self) -> str:
        return f"{self.rows}x{self.cols}/{self.warps}w"


DEFAULT_TILE = Tile(4, 2048)
GREEDY_BLOCK = 8192  # logits a greedy_kernel iteration reads (16 warps: 16 a thread)
# The fastest tiles of the products of SmolLM2-135M to Qwen3-4B in a sweep of 2-16 rows, tiles of
# 512 to whole rows and 2-8 warps on an H200 (scripts/gpu_families.py prints each shape's times of
# these): few rows over narrow tiles in 2 warps up to whole rows of 2,048-8,192 in 4 or 8.
TILES = (
    Tile(8, 512, 2), Tile(4, 512, 2), Tile(2, 512, 4), Tile(4, 2048, 4), Tile(8, 1024, 4),
    Tile(1, 8192, 4), Tile(2, 8192, 4), Tile(4, 8192, 4), Tile(4, 8192, 8),
)  # fmt: skip
MAX_TILE_VALUES = 16384  # more weights in one program's registers spill (8 x 4,096 x 2: 6 % of the bandwidth)


def tiles_for(shape: torch.Size | tuple[int, int], *, swiglu: bool = False) -> list[Tile]:
    """The TILES worth timing for a [rows, cols] weight: those whose program holds at most
    MAX_TILE_VALUES weights (SwiGLU's two halves count twice), each distinct way once."""
    cols = shape[1]
    found: dict[tuple[int, int, int], Tile] = {}
    for tile in TILES:
        values = tile.rows * tile.width(cols) * (2 if swiglu else 1)
        if values <= MAX_TILE_VALUES:
            found.setdefault((tile.rows, tile.width(cols), tile.warps), tile)
    return list(found.values()) or [DEFAULT_TILE]


def pdl_supported(device: torch.device) -> bool:
    """Whether kernels on `device` can be launched as programmatic dependents: CUDA compute
    capability 9.0 on (Hopper) and a Triton that has grid dependency control."""
    if device.type != "cuda":
        return False
    from altlas.generation.decode_kernels import PDL_AVAILABLE

    return PDL_AVAILABLE and torch.cuda.get_device_capability(device)[0] >= 9


def graph_time(run: Any, *args: Any, reps: int = 20, **options: Any) -> float:
    """µs per call of run(*args, **options) on CUDA, from a CUDA graph of `reps` calls replayed
    (no launch overhead in the time)."""
    stream = torch.cuda.Stream()  # type: ignore[no-untyped-call]
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        run(*args, **options)  # compile, settle cuBLAS's workspace
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, capture_error_mode="thread_local"):
        for _ in range(reps):
            run(*args, **options)
    graph.replay()
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
    end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
    start.record()
    for _ in range(5):
        graph.replay()
    end.record()
    torch.cuda.synchronize()
    return float(start.elapsed_time(end)) * 1e3 / (5 * reps)


def layer_weights(model: Any) -> list[dict[str, torch.Tensor]]:
    """Each layer's weights for the fused kernels: norms, [q; k; v] and [gate; up] fused (once
    per model, shared by every decoder over it), the output and down projections; and where
    the model has them, the [q; k; v] bias ("qkv_bias"), the output bias ("out_bias") and the
    per-head q and k norms ("q_norm", "k_norm")."""
    weights = []
    with torch.no_grad():
        for layer in model.model.layers:
            attn, mlp = layer.self_attn, layer.mlp
            projections = (attn.q_proj, attn.k_proj, attn.v_proj)
            w = {
                "norm1": layer.input_layernorm.weight,
                "qkv": _fuse_once(*projections),
                "out": attn.o_proj.weight,
                "norm2": layer.post_attention_layernorm.weight,
                "gate_up": _fuse_once(mlp.gate_proj, mlp.up_proj),
                "down": mlp.down_proj.weight,
            }
            if attn.q_proj.bias is not None:
                w["qkv_bias"] = _fuse_once(*projections, part="bias")
            if attn.o_proj.bias is not None:
                w["out_bias"] = attn.o_proj.bias
            if getattr(attn, "q_norm", None) is not None:
                w["q_norm"], w["k_norm"] = attn.q_norm.weight, attn.k_norm.weight
            weights.append(w)
    return weights


def rotary_tables(model: Any, max_context: int, head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin) [max_context, head_dim]: the model's own rotary tables for every position,
    the same values its transformers forward uses (rope scaling and yarn's attention scaling
    included). `supports` has checked that a dynamic rotary embedding stays in its original
    context here: past it, the call would change the module's frequencies."""
    inner = model.model
    weight = inner.embed_tokens.weight
    with torch.no_grad():
        positions = torch.arange(max_context, device=weight.device)[None, :]
        probe = torch.zeros(1, max_context, head_dim, device=weight.device, dtype=weight.dtype)
        cos, sin = inner.rotary_emb(probe, positions)
    if cos.shape[-1] != head_dim:
        raise ValueError(f"rotary tables of {cos.shape[-1]} dimensions for heads of {head_dim}")
    return cos[0].contiguous(), sin[0].contiguous()


def _fuse(*linears: Any, part: str = "weight") -> torch.Tensor:
    """One tensor of several projections' weights (or biases) of the same input; the model's
    layers are pointed at slices of it, so the weights are not held twice."""
    fused = torch.cat([getattr(linear, part) for linear in linears])
    start = 0
    for linear in linears:
        rows = getattr(linear, part).shape[0]
        setattr(linear, part, torch.nn.Parameter(fused[start : start + rows], requires_grad=False))
        start += rows
    return fused


def _fuse_once(*linears: Any, part: str = "weight") -> torch.Tensor:
    """`_fuse`, remembered on the first layer: a second decoder over the same model (the
    one-at-a-time and the batched decoder) shares the fused weights instead of copying them."""
    name = f"_altlas_fused_{part}"
    fused = getattr(linears[0], name, None)
    if fused is None:
        fused = _fuse(*linears, part=part)
        setattr(linears[0], name, fused)
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


def _floor_pow2(n: int) -> int:
    return 1 << (max(n, 1).bit_length() - 1)
