"""Backends: a loaded model of one task on one device, behind one small interface.

Each backend is built from a registry entry (`ModelSpec`), the path its source resolves to,
a device and a precision; `warmup` runs its code paths once so first requests pay no
set-up, and `close` lets go of what it holds. The work itself lives in the task's own
package (altlas.embeddings, altlas.generation); a backend only adapts it. Every backend
answers the whole `Backend` protocol (what the manager, its status and its metrics ask of
any model), with nothing or zero where a question does not apply to its task.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import torch

from altlas.audio.decode import AudioFile
from altlas.audio.vad import SpeechSegment, VoiceActivityDetector
from altlas.embeddings.batched import text_batcher, text_request
from altlas.embeddings.engine import Embedder, TextRequest
from altlas.errors import InvalidInputError, OverloadedError, TimedOutError
from altlas.generation.convert import model_folder
from altlas.generation.engine import TextGenerator
from altlas.generation.llama_cpp_engine import LlamaCppGenerator
from altlas.orchestrator.registry import ModelSpec
from altlas.runtime.device import describe_device
from altlas.scheduling.batcher import BatchPolicy, DynamicBatcher, Served
from altlas.scheduling.spillover import BatchQueue, SpilloverRouter, SpillPolicy
from altlas.vision.classifier import ImageClassifier, Prediction

__all__ = [
    "REPLICA_TASKS",
    "Backend",
    "BatchedBackend",
    "EmbeddingBackend",
    "GenerationBackend",
    "ImageBackend",
    "VadBackend",
    "VadRequest",
    "add_cpu_replica",
    "build_backend",
]


Item = TypeVar("Item")
Output = TypeVar("Output")


class Backend(Protocol):
    """A loaded model of one task on one device: all that the manager, its status and its
    metrics ask of any model. What only one task does (an embedder's `submit`, a generator's
    `turn`) is on that task's class; callers narrow to it first."""

    task: str
    device: torch.device

    @property
    def decode_path(self) -> str | None:
        """How a generation model decodes tokens; None for the other tasks."""

    @property
    def decode_fallback(self) -> str | None:
        """Why a generation model that could have had a fast path decodes through transformers;
        None when it has one (or was never to), and for the other tasks."""

    def warmup(self, inputs: list[str]) -> None:
        """Run the model's code paths once (on `inputs`, for a model of text), so that the
        first requests pay no set-up."""

    def close(self) -> None:
        """Let go of the model (and of its CPU replica); what it accepted finishes first."""

    def in_flight(self) -> int:
        """Requests queued or running: a model with any is never unloaded for room."""

    def batchers(self) -> list[DynamicBatcher[Any, Any, Any]]:
        """Its dynamic batchers (its CPU replica's too); none for a model without one."""

    def spillovers(self) -> int:
        """Requests its CPU replica took over its life; 0 without a replica."""

    def oom_splits(self) -> int:
        """Batches split because they ran out of device memory, over its life."""

    def replica_device(self) -> str | None:
        """The device of its CPU replica (described), or None without one."""

    def decoding(self) -> dict[str, Any] | None:
        """A continuously batched generation model's decode state and counters; None otherwise."""


class BatchedBackend(Generic[Item, Output]):
    """What the backends whose requests go through a dynamic batcher share: the queue they are
    submitted to (the model's batcher, or a router that sends overflow to a CPU replica, see
    `add_cpu_replica`) and what the manager counts from it. Such a model decodes no tokens."""

    device: torch.device
    batcher: BatchQueue[Item, Output]
    replica: BatchedBackend[Item, Output] | None  # the same model on the CPU, for overflow
    decode_path: str | None = None
    decode_fallback: str | None = None

    def in_flight(self) -> int:
        return self.batcher.in_flight()

    def batchers(self) -> list[DynamicBatcher[Any, Any, Any]]:
        queue = self.batcher
        if isinstance(queue, SpilloverRouter):
            return [queue.primary, queue.replica]
        return [queue] if isinstance(queue, DynamicBatcher) else []

    def spillovers(self) -> int:
        return self.batcher.spilled if isinstance(self.batcher, SpilloverRouter) else 0

    def oom_splits(self) -> int:
        return sum(batcher.stats.oom_splits for batcher in self.batchers())

    def replica_device(self) -> str | None:
        return self.batcher.replica.device if isinstance(self.batcher, SpilloverRouter) else None

    def decoding(self) -> None:
        return None

    def close(self) -> None:
        """Close the queue (each batcher finishes what it accepted), then the replica."""
        self.batcher.close()
        if self.replica is not None:
            self.replica.close()


class EmbeddingBackend(BatchedBackend[TextRequest, np.ndarray]):
    """Embeddings through a dynamic batcher: concurrent requests share forward passes, a large
    request runs in pieces that take turns with the others (altlas.embeddings.batched)."""

    task = "embedding"

    def __init__(
        self, name: str, path: Path, device: torch.device, precision: str, policy: BatchPolicy,
        forward_batch_tokens: int | None = None,
    ) -> None:  # fmt: skip
        """forward_batch_tokens: tokens per forward pass (default by device: GPU 65,536, CPU
        1,024); a gathered batch larger than that runs as several passes."""
        self.embedder = Embedder(path, device=str(device), precision=precision)
        if forward_batch_tokens is not None:
            self.embedder.forward_batch_tokens = forward_batch_tokens
        self.device = self.embedder.device
        self.batcher = text_batcher(
            self.embedder, f"{name}@{self.device}", policy, device=describe_device(self.device)
        )
        self.replica = None

    def submit(
        self, texts: list[str], field: str = "input", *, normalize: bool = True
    ) -> tuple[Future[Served[np.ndarray]], TextRequest]:
        """Queue texts: (future of their vectors, L2-normalised unless `normalize` is False; the
        request, whose `tokens` count is set once its batch is prepared). Tokenizing waits for
        the batch: one call for all its texts, on the batcher's thread, not the caller's (on a
        server, the event loop). A text the tokenizer cannot take (not valid Unicode) is refused
        here, naming `field`."""
        request = text_request(texts, field, normalize)
        return self.batcher.submit(request), request

    def encode(
        self, texts: list[str], timeout_s: float | None = None, field: str = "input"
    ) -> Served[np.ndarray]:
        """Unit vectors of `texts` through the batcher, waiting in this thread; TimeoutError
        after `timeout_s`, and then what has not run yet never runs."""
        future, _request = self.submit(texts, field)
        try:
            return future.result(timeout_s)
        except TimeoutError:
            future.cancel()
            raise

    def warmup(self, inputs: list[str]) -> None:
        self.embedder.warmup()
        if inputs:
            self.encode(inputs)

    def close(self) -> None:
        super().close()
        self.embedder.close()


class GenerationBackend:
    """One generation at a time, in arrival order; at most `policy.max_queue` waiting (with
    continuous batching, the engine's own queue instead). `decode_path` names how tokens are
    decoded; `decode_fallback` why a model that could have had a fast path decodes through
    transformers (None when it has one, or was never to)."""

    task = "generation"

    def __init__(
        self, generator: TextGenerator | LlamaCppGenerator, device: torch.device, policy: BatchPolicy
    ) -> None:
        self.generator = generator
        self.device = device
        self.decode_path = generator.decode_path
        self.decode_fallback = generator.decode_fallback if isinstance(generator, TextGenerator) else None
        self.max_queue = policy.max_queue
        self._turn = threading.Lock()
        self._waiting = 0
        self._count = threading.Lock()
        self._recent_s: deque[float] = deque(maxlen=16)

    @contextmanager
    def turn(self, timeout_s: float) -> Iterator[float]:
        """Hold the model for one generation; yields the ms waited. OverloadedError when
        `max_queue` requests wait already, TimedOutError after `timeout_s` (0: no limit).
        With continuous batching there is no turn to wait for: generations share the decode
        steps, and the engine's own queue bounds and times them."""
        if isinstance(self.generator, TextGenerator) and self.generator.continuous is not None:
            yield 0.0
            return
        with self._count:
            if self._waiting >= self.max_queue:
                recent = list(self._recent_s) or [1.0]
                raise OverloadedError(
                    f"{self._waiting} generations are waiting for this model (the limit)",
                    retry_after_s=max(1.0, round(self._waiting * sum(recent) / len(recent), 1)),
                )
            self._waiting += 1
        arrived = time.perf_counter()
        try:
            acquired = self._turn.acquire(timeout=timeout_s if timeout_s > 0 else -1)
        finally:
            with self._count:
                self._waiting -= 1
        if not acquired:
            raise TimedOutError(f"no turn on the model within the {timeout_s:g} s limit", field="timeout")
        started = time.perf_counter()
        try:
            yield (started - arrived) * 1e3
        finally:
            self._recent_s.append(time.perf_counter() - started)
            self._turn.release()

    def decoding(self) -> dict[str, Any] | None:
        """With continuous batching: generations running and waiting, free KV pages, and the
        counters (steps, rows, preemptions, cancellations ...); None otherwise."""
        batcher = self.generator.continuous if isinstance(self.generator, TextGenerator) else None
        if batcher is None:
            return None
        counters = {name: getattr(batcher.stats, name) for name in batcher.stats.__slots__}
        pool = {"free_pages": batcher.free_pages, "pages": batcher.decoder.pages - 1}
        return {"active": batcher.active, "waiting": batcher.waiting, **pool, **counters}

    def in_flight(self) -> int:
        """Generations waiting or running (the memory manager never evicts a busy model)."""
        batcher = self.generator.continuous if isinstance(self.generator, TextGenerator) else None
        if batcher is not None:
            return batcher.waiting + batcher.active
        return self._waiting + int(self._turn.locked())

    def batchers(self) -> list[DynamicBatcher[Any, Any, Any]]:
        return []  # generations take turns, or share decode steps in the continuous batcher

    def spillovers(self) -> int:
        return 0  # no CPU replica

    def oom_splits(self) -> int:
        return 0

    def replica_device(self) -> None:
        return None

    def warmup(self, inputs: list[str]) -> None:
        self.generator.warmup(inputs)

    def close(self) -> None:
        if isinstance(self.generator, TextGenerator):
            self.generator.close()  # generations in flight finish first
        else:
            self.generator.llm.close()


@dataclass(frozen=True, slots=True)
class VadRequest:
    audio: AudioFile  # decoded a block at a time as the detector reads it, never whole
    threshold: float = 0.5
    min_speech_ms: float = 250
    min_silence_ms: float = 100
    pad_ms: float = 30


class VadBackend(BatchedBackend[VadRequest, tuple[list[SpeechSegment], float]]):
    """One file at a time (its pieces already run side by side), queued like every backend; the
    file is decoded, resampled and detected a block at a time on the runner's thread."""

    task = "audio-vad"

    def __init__(
        self, name: str, path: Path, device: torch.device, chunk_seconds: float, policy: BatchPolicy,
        cpu_threads: int = 2,
    ) -> None:  # fmt: skip
        """cpu_threads: torch threads for a file on the CPU. Silero steps through 32 ms windows of
        tiny operations; spread over 16 threads they wait on each other (H200 host, a 10 s
        file: ~370 ms on 16 threads, ~60 ms on 2), so a CPU replica was slower than no replica."""
        self.detector = VoiceActivityDetector(path, device, chunk_seconds)
        self.device = device
        self.cpu_threads = cpu_threads
        self.batcher = DynamicBatcher(
            f"{name}@{device}", prepare=_only, run=self._run, policy=_one_at_a_time(policy),
            device=describe_device(device),
        )  # fmt: skip
        self.replica = None

    def _run(self, request: VadRequest) -> list[tuple[list[SpeechSegment], float]]:
        if self.device.type == "cpu" and torch.get_num_threads() != self.cpu_threads:
            torch.set_num_threads(self.cpu_threads)  # this (runner) thread only: OpenMP's count is per thread
        return [
            self.detector.stream_segments(
                request.audio.blocks(), request.audio.rate, threshold=request.threshold,
                min_speech_ms=request.min_speech_ms, min_silence_ms=request.min_silence_ms,
                pad_ms=request.pad_ms,
            )
        ]  # fmt: skip

    def warmup(self, inputs: list[str]) -> None:
        self.detector.warmup()

    def close(self) -> None:
        super().close()
        self.detector.model = None


class ImageBackend(BatchedBackend[tuple[np.ndarray, int], list[Prediction]]):
    """Images batched: each is resized on the device as it is gathered, the batch runs as one."""

    task = "image-classification"

    def __init__(
        self, name: str, kind: str, path: Path, device: torch.device, options: dict[str, object],
        policy: BatchPolicy,
    ) -> None:  # fmt: skip
        self.classifier = ImageClassifier.load(kind, path, device, dict(options))
        self.device = self.classifier.device
        self.batcher = DynamicBatcher(
            f"{name}@{self.device}", prepare=self._prepare, run=self._run, policy=_images(policy),
            device=describe_device(self.device),
        )  # fmt: skip
        self.replica = None

    def _prepare(self, requests: list[tuple[np.ndarray, int]]) -> _ImageBatch:
        pixels = torch.cat([self.classifier.preprocess(image) for image, _ in requests])
        return pixels, [top_k for _, top_k in requests]

    def _run(self, batch: _ImageBatch) -> list[list[Prediction]]:
        pixels, top_ks = batch
        return self.classifier.top_k(self.classifier.logits(pixels), top_ks)

    def warmup(self, inputs: list[str]) -> None:
        self.classifier.warmup()

    def close(self) -> None:
        super().close()
        self.classifier.model = None


_ImageBatch = tuple[torch.Tensor, list[int]]
REPLICA_TASKS = tuple(kind.task for kind in (EmbeddingBackend, VadBackend, ImageBackend))  # batched ones


def _only(items: list[VadRequest]) -> VadRequest:
    (item,) = items
    return item


def _one_at_a_time(policy: BatchPolicy) -> BatchPolicy:
    return replace(policy, enabled=False)


def _images(policy: BatchPolicy) -> BatchPolicy:
    """Each image costs 1; at most 64 per batch (224 x 224 x 3 floats each)."""
    return replace(policy, max_batch_tokens=min(policy.max_batch_tokens, 64))


def add_cpu_replica(backend: Backend, replica: Backend, policy: SpillPolicy) -> None:
    """Let `replica` (the same model, on the CPU) serve `backend`'s overflow under `policy`;
    closing `backend` closes the replica too. Only backends that batch requests take one."""
    if (
        not isinstance(backend, BatchedBackend)
        or not isinstance(replica, BatchedBackend)
        or type(replica) is not type(backend)
    ):
        raise InvalidInputError(
            f"{backend.task} models take no CPU replica ({', '.join(REPLICA_TASKS)} models do)",
            field="options.cpu_replica",
        )
    primary, spare = backend.batcher, replica.batcher
    if not isinstance(primary, DynamicBatcher) or not isinstance(spare, DynamicBatcher):
        raise InvalidInputError("this model has a replica already", field="options.cpu_replica")
    backend.batcher = SpilloverRouter(primary, spare, policy)
    backend.replica = replica


def _continuous_batching(spec: ModelSpec, device: torch.device, policy: BatchPolicy) -> tuple[int, int]:
    """(generations decoded together, KV-cache positions) from the model's options; (0, 0)
    when batching is off (one generation at a time). Defaults: 32 and 32,768 on a GPU (SmolLM2-135M:
    0.75 GB of cache in bf16), 8 and 8,192 on the CPU."""
    if not policy.enabled:
        return 0, 0
    gpu = device.type == "cuda"
    sequences = spec.options.get("max_sequences", 32 if gpu else 8)
    cache_tokens = spec.options.get("kv_cache_tokens", 32_768 if gpu else 8_192)
    for name, value in (("max_sequences", sequences), ("kv_cache_tokens", cache_tokens)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidInputError("must be a positive integer", field=f"options.{name}")
    return int(sequences), int(cache_tokens)


def build_backend(
    spec: ModelSpec, path: Path, device: torch.device, cache_dir: Path, policy: BatchPolicy
) -> Backend:
    """The backend the spec names, loaded onto `device`; `policy` for those that batch requests."""
    from altlas.runtime.device import resolve_dtype

    if spec.task == "embedding":
        forward = spec.options.get("forward_batch_tokens")
        if forward is not None and (not isinstance(forward, int) or isinstance(forward, bool) or forward < 1):
            raise InvalidInputError("must be a positive integer", field="options.forward_batch_tokens")
        return EmbeddingBackend(spec.name, path, device, spec.precision, policy, forward)
    if spec.task == "generation" and spec.backend == "transformers":
        # fp32 on CPU; on CUDA bf16 unless asked otherwise (fp16 overflows in some small LMs' activations)
        precision = (
            spec.precision if spec.precision != "auto" else ("bf16" if device.type == "cuda" else "fp32")
        )
        max_context = spec.options.get("max_context")
        if max_context is not None and (not isinstance(max_context, int) or max_context < 16):
            raise InvalidInputError("must be an integer >= 16", field="options.max_context")
        fast_decode = spec.options.get("fast_decode")  # default: on CUDA for Llama-shaped models
        if fast_decode is not None and not isinstance(fast_decode, bool):
            raise InvalidInputError("must be true or false", field="options.fast_decode")
        dtype = resolve_dtype(precision, device)
        sequences, cache_tokens = _continuous_batching(spec, device, policy)
        generator = TextGenerator(
            model_folder(path, cache_dir), device, dtype, max_context, fast_decode=fast_decode,
            max_sequences=sequences, kv_cache_tokens=cache_tokens, max_queue=policy.max_queue,
        )  # fmt: skip
        return GenerationBackend(generator, device, policy)
    if spec.task == "generation" and spec.backend == "llama-cpp":
        max_context = spec.options.get("max_context")
        llama = LlamaCppGenerator(path, gpu=device.type == "cuda", max_context=max_context)
        return GenerationBackend(llama, device, policy)
    if spec.task == "audio-vad":
        chunk = spec.options.get("chunk_seconds", 30.0)
        if not isinstance(chunk, int | float) or not 1 <= chunk <= 3600:
            raise InvalidInputError("must be 1 to 3600 seconds", field="options.chunk_seconds")
        threads = spec.options.get("cpu_threads", 2)
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise InvalidInputError("must be a positive integer", field="options.cpu_threads")
        return VadBackend(spec.name, path, device, float(chunk), policy, threads)
    if spec.task == "image-classification":
        return ImageBackend(spec.name, spec.backend, path, device, spec.options, policy)
    raise InvalidInputError(
        f"backend {spec.backend!r} for task {spec.task} is not available here", field="backend"
    )
