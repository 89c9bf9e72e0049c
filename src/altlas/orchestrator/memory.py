"""GPU memory accounting: one budget per GPU, what each loaded model holds of it, and which idle
models to unload so that another one fits.

A model on a GPU accounts for its weights (measured after loading: what the allocator grew by)
plus an activation reserve for its largest batch, so that a model admitted at load time does
not run out of memory at its first full batch. The reserve is estimated before loading from
the batch policy (`activation_reserve`) and raised after warm-up to the peak measured there.

A load that does not fit unloads idle (nothing queued or running, no request for a few
seconds), unpinned models, least recently used first, but only if that makes enough room:
nothing is unloaded for a load that would be refused anyway. Everything here is arithmetic
over numbers, so it is tested without a GPU; the manager gathers the numbers and acts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "IDLE_AFTER_S",
    "MemoryCounters",
    "Resident",
    "Room",
    "activation_reserve",
    "plan_room",
]

IDLE_AFTER_S = 2.0  # a model leased this recently may be about to submit: not idle yet
# Values per token per hidden unit at a layer's widest point: Q, K, V and the attention output
# (4), the feed-forward's 4x expansion (4), residual and norm copies (~4) and the attention
# scores (heads x sequence per token: ~4 hidden-widths at typical lengths). Layers run one
# after another without gradients, so about one layer's worth is live at once.
_VALUES_PER_HIDDEN = 16
_BYTES_PER_VALUE = 4  # fp32: an upper bound for fp16 and bf16 models
_IMAGE_VALUES = 3 * 224 * 224  # one input image
_IMAGE_WIDENING = 12  # EfficientNet-Lite0's widest feature maps hold ~8x its input's values
_IMAGES_PER_BATCH = 64  # ImageBackend's cap on a batch
# A batch bigger than this share of the budget is split when it runs out of memory (the
# batcher's OOM split), so reserving more would only turn loads away.
_MAX_RESERVE_SHARE = 0.25


@dataclass(frozen=True, slots=True)
class Resident:
    """A loaded model as the budget sees it."""

    name: str
    bytes: int  # weights and activation reserve
    pinned: bool  # never unloaded to make room
    idle: bool  # nothing queued or running, no recent lease
    last_used: float  # time.time() of its last lease; 0 if never


@dataclass(frozen=True, slots=True)
class Room:
    """The answer for one load: whether it fits, after unloading `evict` (in that order)."""

    fits: bool
    evict: tuple[str, ...]
    reason: str  # a sentence for the model's status, or the refusal's message


@dataclass(slots=True)
class MemoryCounters:
    """Counters over the manager's life (read by GET /v1/models and, later, metrics)."""

    loads: int = 0  # models loaded (a version swap counts one)
    unloads: int = 0  # models unloaded (by request or eviction)
    evictions: int = 0  # models unloaded to make room for another
    refusals: int = 0  # GPU loads refused for want of room (an explicit cuda policy)
    cpu_fallbacks: int = 0  # `auto` loads sent to the CPU for want of room


def plan_room(need: int, budget: int, residents: Sequence[Resident]) -> Room:
    """Whether `need` more bytes fit a GPU of `budget` bytes holding `residents`, and which
    idle, unpinned residents to unload first (least recently used first) to make them fit."""
    used = sum(r.bytes for r in residents)
    free = budget - used
    sentence = f"needs about {_gb(need)} GB; {_gb(max(0, free))} GB of the {_gb(budget)} GB GPU budget left"
    if need <= free:
        return Room(True, (), f"{sentence}: fits")
    evict: list[Resident] = []
    for resident in sorted(residents, key=lambda r: r.last_used):
        if free >= need:
            break
        if resident.idle and not resident.pinned:
            evict.append(resident)
            free += resident.bytes
    if free >= need:
        names = ", ".join(r.name for r in evict)
        return Room(True, tuple(r.name for r in evict), f"{sentence}: fits after unloading {names} (idle)")
    return Room(False, (), f"{sentence}, {_gb(used)} GB held by {_holders(residents)}: does not fit")


def activation_reserve(task: str, source: Path, max_batch_tokens: int, budget: int) -> int:
    """GPU bytes the activations of a model's largest batch may take, estimated before loading
    (at most a quarter of the GPU's `budget`).

    Embedding models: each of a full batch's tokens carries `_VALUES_PER_HIDDEN` values per
    hidden unit (read from the folder's config.json; 0 if it has none). Image models: a full
    batch of 224 x 224 RGB images, widened `_IMAGE_WIDENING` times. Others reserve nothing
    here: voice detection's pieces are small, and a generator's KV cache is allocated at load,
    so it is measured with the weights. The warm-up's measured peak raises the reserve later."""
    if task == "embedding":
        estimate = max_batch_tokens * _hidden_size(source) * _VALUES_PER_HIDDEN * _BYTES_PER_VALUE
    elif task == "image-classification":
        images = min(max_batch_tokens, _IMAGES_PER_BATCH)
        estimate = images * _IMAGE_VALUES * _IMAGE_WIDENING * _BYTES_PER_VALUE
    else:
        estimate = 0
    return min(estimate, int(budget * _MAX_RESERVE_SHARE))


def _hidden_size(source: Path) -> int:
    config = source / "config.json" if source.is_dir() else source.with_name("config.json")
    try:
        hidden = json.loads(config.read_text(encoding="utf-8")).get("hidden_size", 0)
    except (OSError, ValueError, AttributeError):
        return 0
    return hidden if isinstance(hidden, int) and hidden > 0 else 0


def _holders(residents: Sequence[Resident]) -> str:
    if not residents:
        return "no model"
    parts = []
    for r in sorted(residents, key=lambda r: -r.bytes):
        why = "pinned" if r.pinned else ("idle" if r.idle else "in use")
        parts.append(f"{r.name} {_gb(r.bytes)} GB ({why})")
    return ", ".join(parts)


def _gb(count: int) -> str:
    return f"{count / 1e9:.2f}"
