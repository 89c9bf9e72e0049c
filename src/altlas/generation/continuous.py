"""Continuous batching: concurrent generations share decode steps, joining and leaving the
running batch between steps.

One decode thread per model owns the paged decoder (paged_decoder.py). Each turn of its
loop it admits waiting requests into free slots (a slot and pages of the shared pool for
their prompts), then runs one step over rows of tokens: the last token of every decoding
sequence, and as much of the new sequences' prompts as the step's rows allow (prefill rides
in the same launch as decoding, chunked if a prompt is long; an eager prefill per arrival
stalled every running sequence for ~25 ms). A sequence whose tokens are all in the cache gets
its next token sampled and handed to its caller. A sequence leaves when it ends (end-of-turn
token, token budget, the caller stops or goes away); its slot and pages go to the next in
line at once, not when the whole batch ends.

Memory: pages are taken as sequences grow. When the pool runs dry, the youngest sequence is
*preempted*: its slot and pages are freed and it waits at the head of the queue; readmitted,
its prompt and answer so far run through the model again and it carries on where it stopped
(recomputing is cheaper than keeping a copy, and the caller sees only a pause).

Callers read token ids from a `SequenceStream` (detokenizing and stop sequences are theirs:
engine.py); the decode thread never waits for a caller.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Generator
from dataclasses import dataclass, field

import numpy as np
import torch

from altlas.errors import AltlasError, OverloadedError, TimedOutError
from altlas.generation.paged_decoder import PagedLlamaDecoder
from altlas.generation.sampling import NO_TOKEN, SamplingParams, UnusableLogitsError, next_tokens
from altlas.observability.nvtx import ranged

__all__ = ["ContinuousBatcher", "ContinuousStats", "SequenceStream"]

log = logging.getLogger("altlas.generation")


class SequenceStream:
    """One caller's generation: token ids as they come, then why it ended."""

    def __init__(self, pace_s: float = 0.0) -> None:
        self._items: queue.SimpleQueue[int | str | BaseException] = queue.SimpleQueue()
        self.pace_s = pace_s
        self.cancelled = False
        self.queue_ms = 0.0  # arrival to admission (the first admission, if it was preempted)

    def tokens(self, timeout_s: float = 0.0) -> Generator[list[int], None, str]:
        """The ids, in chunks of those that came since the last look (a caller that falls
        behind catches up in one go); returns the finish reason ("stop" or "length").
        TimedOutError if the first token has not come within `timeout_s` (0: no limit);
        stopping early cancels."""
        limit: float | None = timeout_s if timeout_s > 0 else None
        first = True
        try:
            while True:
                try:
                    item = self._items.get(timeout=limit)
                except queue.Empty:
                    raise TimedOutError(
                        f"generation did not start within the {timeout_s:g} s limit", field="timeout"
                    ) from None
                if not first and self.pace_s:  # past the first token: let a few gather
                    time.sleep(self.pace_s)
                first, limit = False, None
                chunk: list[int] = []
                while isinstance(item, int):
                    chunk.append(item)
                    try:
                        item = self._items.get_nowait()
                    except queue.Empty:
                        break
                if chunk:
                    yield chunk
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, str):
                    return item
        finally:
            self.cancel()  # a no-op once ended; otherwise the decode thread lets the slot go

    def cancel(self) -> None:
        self.cancelled = True


@dataclass(eq=False)
class _Sequence:
    ids: list[int]  # prompt and answer so far
    params: SamplingParams
    budget: int  # answer tokens at most
    stream: SequenceStream
    arrived: float
    generated: int = 0
    pages: list[int] = field(default_factory=list)
    slot: int = -1  # its block-table row while admitted
    cached: int = 0  # ids whose keys and values are in its pages (the rest are fed next step)
    seen: torch.Tensor | None = None  # ids on the device, for the repetition penalty
    generator: torch.Generator | None = None
    admitted: bool = False


@dataclass(slots=True)
class ContinuousStats:
    """Counters over the batcher's life (status endpoints and metrics read them)."""

    submitted: int = 0
    rejected: int = 0
    finished: int = 0
    cancelled: int = 0
    preempted: int = 0
    failed: int = 0  # ended by an error of their own (the others in their steps went on)
    steps: int = 0
    step_tokens: int = 0  # rows (prompt or answer tokens) run, summed over steps
    max_active: int = 0


class ContinuousBatcher:
    """The decode thread, its slots and page pool, and the queue in front of them."""

    def __init__(
        self, name: str, decoder: PagedLlamaDecoder, eos_ids: frozenset[int], max_queue: int = 1024,
        pace_ms: float = 10.0,
    ) -> None:  # fmt: skip
        """pace_ms: a caller reads its tokens at most this often after the first. Every
        wake-up of a caller's thread takes the GIL from the decode thread; with dozens of
        callers woken once per token the decode thread waited for the GIL longer than the
        GPU took for the step (5x slower at 64 sequences on an H200)."""
        self.name = name
        self.pace_s = pace_ms / 1e3
        self.decoder = decoder
        self.eos_ids = eos_ids
        self.max_queue = max_queue
        self.stats = ContinuousStats()
        self._free_pages = list(range(decoder.pages - 1, 0, -1))  # page 0 is the decoder's scratch
        self._waiting: deque[_Sequence] = deque()
        self._active: list[_Sequence] = []
        self._free_slots = list(range(decoder.slots - 1, -1, -1))
        self._table = np.zeros((decoder.slots + 1, decoder.pages_per_sequence), dtype=np.int32)
        self._table_dirty = True
        self._recent_s: deque[float] = deque(maxlen=32)  # recent generations' durations
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name=f"altlas-decode-{name}", daemon=True)
        self._thread.start()

    # callers

    def submit(self, ids: list[int], params: SamplingParams, budget: int) -> SequenceStream:
        """Queue a generation of at most `budget` tokens after `ids`; OverloadedError when
        `max_queue` wait already."""
        stream = SequenceStream(self.pace_s)
        sequence = _Sequence(list(ids), params, budget, stream, time.perf_counter())
        with self._cond:
            if self._closing:
                raise OverloadedError("the model is being unloaded; send the request again", retry_after_s=1)
            if len(self._waiting) >= self.max_queue:
                self.stats.rejected += 1
                raise OverloadedError(
                    f"{len(self._waiting)} generations are waiting for this model (the limit)",
                    retry_after_s=self._retry_after_s(),
                )
            self.stats.submitted += 1
            self._waiting.append(sequence)
            self._cond.notify()
        return stream

    def _retry_after_s(self) -> float:
        recent = list(self._recent_s) or [1.0]
        per_slot = sum(recent) / len(recent) / self.decoder.slots
        return max(1.0, round(len(self._waiting) * per_slot, 1))

    @property
    def active(self) -> int:
        return len(self._active)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def free_pages(self) -> int:
        return len(self._free_pages)

    def close(self) -> None:
        """Take no more requests; return once those accepted have finished."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    # the decode thread

    def _loop(self) -> None:
        if self.decoder.device.type == "cuda":
            torch.cuda.set_device(self.decoder.device)
        with torch.inference_mode():
            try:
                self.decoder.capture_all()
            except Exception:  # steps capture on first use instead
                log.exception("capturing the decode graphs failed", extra={"model": self.name})
            while True:
                with self._cond:
                    while not self._waiting and not self._active and not self._closing:
                        self._cond.wait()
                    if self._closing and not self._waiting and not self._active:
                        return
                try:
                    self._admit()
                    if self._active:
                        self._step()
                except Exception as exc:  # scheduling itself failed: its sequences, not the thread
                    log.exception("decode step failed", extra={"model": self.name})
                    error = exc if isinstance(exc, AltlasError) else RuntimeError("generation failed")
                    for sequence in self._active:
                        self._release(sequence)
                        sequence.stream._items.put(error)
                    self.stats.failed += len(self._active)
                    self._active = []
                    self._table_dirty = True

    def _admit(self) -> None:
        """Waiting sequences into free slots, first come first served, with pages for their
        prompts (their rows run in the next steps)."""
        page = self.decoder.page
        with self._cond:
            if any(s.stream.cancelled for s in self._waiting):  # gone callers hold no place in line
                kept = [s for s in self._waiting if not s.stream.cancelled]
                self.stats.cancelled += len(self._waiting) - len(kept)
                self._waiting = deque(kept)
            while self._waiting and self._free_slots:
                sequence = self._waiting[0]
                if sequence.stream.cancelled:
                    self._waiting.popleft()
                    self.stats.cancelled += 1
                    continue
                need = -(-(len(sequence.ids) + 1) // page)
                if need > len(self._free_pages):
                    break  # the head waits for pages; nobody overtakes it
                self._waiting.popleft()
                sequence.pages = [self._free_pages.pop() for _ in range(need)]
                sequence.slot = self._free_slots.pop()
                sequence.cached = 0
                if not sequence.admitted:
                    try:
                        self._first_admission(sequence)
                    except Exception as exc:  # this request's own state: it alone fails
                        self._release(sequence)
                        sequence.stream._items.put(exc)
                        continue
                self._active.append(sequence)
                self._table_dirty = True
        self.stats.max_active = max(self.stats.max_active, len(self._active))

    def _first_admission(self, sequence: _Sequence) -> None:
        sequence.admitted = True
        sequence.stream.queue_ms = (time.perf_counter() - sequence.arrived) * 1e3
        device = self.decoder.device
        if sequence.params.repetition_penalty != 1.0:
            sequence.seen = torch.zeros(len(sequence.ids) + sequence.budget, dtype=torch.long, device=device)
            sequence.seen[: len(sequence.ids)] = torch.tensor(sequence.ids, device=device)
        if sequence.params.seed is not None and not sequence.params.greedy:
            sequence.generator = torch.Generator(device=device)
            sequence.generator.manual_seed(sequence.params.seed)

    @ranged("generate.decode_step")
    def _step(self) -> None:
        """One launch over the rows: decoding sequences first (one row each), then prompt
        chunks in admission order up to the step's rows. A failure follows the sequence it
        comes from: a launch that fails runs again one sequence at a time (the rows rewrite the
        same cache positions), and a sequence whose own launch, sampling or hand-over fails
        ends with the error while the others carry on."""
        self._drop_cancelled()
        plan = self._plan_rows()
        if not plan:
            return
        try:
            self._run(plan)
        except Exception as exc:
            if len(plan) == 1:
                self._fail(plan[0][0], exc)
                return
            log.warning(
                "a decode step of %d sequences failed (%r); running them one at a time",
                len(plan), exc, extra={"model": self.name},
            )  # fmt: skip
            for item in plan:
                try:
                    self._run([item])
                except Exception as alone:
                    self._fail(item[0], alone)

    def _run(self, plan: list[tuple[_Sequence, int]]) -> None:
        """Feed the planned rows through the model, then pick the next token of every sequence
        whose cache is then complete. Raises only if the launch fails, with nothing recorded."""
        decoder = self.decoder
        count = sum(fed for _, fed in plan)
        size = decoder.bucket(count)
        tokens = np.zeros(size, dtype=np.int64)
        positions = np.zeros(size, dtype=np.int32)
        slots = np.full(size, decoder.slots, dtype=np.int32)
        row = 0
        ready: list[tuple[_Sequence, int]] = []  # sequences whose cache is complete, their last row
        for sequence, fed in plan:
            start = sequence.cached
            tokens[row : row + fed] = sequence.ids[start : start + fed]
            positions[row : row + fed] = np.arange(start, start + fed)
            slots[row : row + fed] = sequence.slot
            row += fed
            if start + fed == len(sequence.ids):
                ready.append((sequence, row - 1))
        decoder.tokens[:size].copy_(torch.from_numpy(tokens))
        decoder.positions[:size].copy_(torch.from_numpy(positions))
        decoder.row_slots[:size].copy_(torch.from_numpy(slots))
        if self._table_dirty:
            self._table[:] = 0
            for sequence in self._active:
                self._table[sequence.slot, : len(sequence.pages)] = sequence.pages
            decoder.table.copy_(torch.from_numpy(self._table))
            self._table_dirty = False
        logits = decoder.step(count)
        for sequence, fed in plan:
            sequence.cached += fed
        self.stats.steps += 1
        self.stats.step_tokens += count
        if ready:
            self._pick(logits, ready)

    def _pick(self, logits: torch.Tensor, ready: list[tuple[_Sequence, int]]) -> None:
        """Sample the next token of each ready sequence (its row of `logits`) and hand it over.
        If sampling the rows together fails, each row is sampled alone; a sequence whose own
        sampling or hand-over fails, or whose logits hold no usable score, fails alone."""
        sequences = [sequence for sequence, _ in ready]
        rows = [row for _, row in ready]
        chosen: list[int | Exception]
        try:
            chosen = list(self._sample(logits[torch.tensor(rows, device=logits.device)], sequences))
        except Exception:
            log.exception(
                "sampling %d rows together failed; sampling each alone", len(rows), extra={"model": self.name}
            )
            chosen = [self._sample_alone(logits[row : row + 1], sequence) for sequence, row in ready]
        gone: set[int] = set()
        for sequence, token in zip(sequences, chosen, strict=True):
            try:
                if isinstance(token, Exception):
                    raise token
                if token == NO_TOKEN:
                    raise UnusableLogitsError()
                if not self._accept(sequence, token):
                    gone.add(id(sequence))
            except Exception as exc:
                self._fail(sequence, exc)
        if gone:
            self._active = [s for s in self._active if id(s) not in gone]
            self._table_dirty = True

    def _sample(self, logits: torch.Tensor, sequences: list[_Sequence]) -> list[int]:
        return next_tokens(logits, [s.params for s in sequences], [self._seen(s) for s in sequences],
                           [s.generator for s in sequences])  # fmt: skip

    def _sample_alone(self, logits: torch.Tensor, sequence: _Sequence) -> int | Exception:
        try:
            return self._sample(logits, [sequence])[0]
        except Exception as exc:
            return exc

    def _fail(self, sequence: _Sequence, exc: Exception) -> None:
        """End one sequence with an error; the others go on. The caller gets altlas's own
        errors as they are, anything else as a plain failure (the log has the trace)."""
        if isinstance(exc, AltlasError):
            error: Exception = exc
        else:
            log.error("a generation failed", exc_info=exc, extra={"model": self.name})
            error = RuntimeError("generation failed")
        if sequence in self._active:
            self._active.remove(sequence)
            self._table_dirty = True
        self._release(sequence)
        self.stats.failed += 1
        sequence.stream._items.put(error)

    def _plan_rows(self) -> list[tuple[_Sequence, int]]:
        """(sequence, rows it feeds) for this step, with the pages those rows need; the
        youngest are preempted while the pool is dry."""
        page = self.decoder.page
        room = self.decoder.max_rows
        decoding = [s for s in self._active if len(s.ids) - s.cached == 1]
        prefilling = [s for s in self._active if len(s.ids) - s.cached > 1]
        plan: list[tuple[_Sequence, int]] = []
        for sequence in decoding + prefilling:
            if sequence not in self._active:  # preempted below, for an older one
                continue
            fed = min(len(sequence.ids) - sequence.cached, room)
            if fed <= 0:
                continue
            while -(-(sequence.cached + fed) // page) > len(sequence.pages):
                if self._free_pages:
                    sequence.pages.append(self._free_pages.pop())
                    self._table_dirty = True
                    continue
                youngest = self._active[-1]
                self._preempt(youngest)
                room += sum(rows for planned, rows in plan if planned is youngest)
                plan = [(planned, rows) for planned, rows in plan if planned is not youngest]
                if youngest is sequence:
                    break
            else:
                plan.append((sequence, fed))
                room -= fed
        return plan

    def _preempt(self, sequence: _Sequence) -> None:
        self._active.remove(sequence)
        self._release(sequence)
        sequence.cached = 0
        self.stats.preempted += 1
        self._table_dirty = True
        with self._cond:
            self._waiting.appendleft(sequence)

    def _drop_cancelled(self) -> None:
        kept = [s for s in self._active if not s.stream.cancelled]
        if len(kept) != len(self._active):
            for sequence in self._active:
                if sequence.stream.cancelled:
                    self.stats.cancelled += 1
                    self._release(sequence)
            self._active = kept
            self._table_dirty = True

    def _accept(self, sequence: _Sequence, token: int) -> bool:
        """Record a sampled token; whether the sequence goes on."""
        stream = sequence.stream
        if token in self.eos_ids:
            return self._finish(sequence, "stop")
        sequence.ids.append(token)
        sequence.generated += 1
        if sequence.seen is not None:
            sequence.seen[len(sequence.ids) - 1] = token
        stream._items.put(token)
        if sequence.generated >= sequence.budget or len(sequence.ids) >= self.decoder.max_context:
            return self._finish(sequence, "length")
        if stream.cancelled:
            self.stats.cancelled += 1
            self._release(sequence)
            return False
        return True

    def _finish(self, sequence: _Sequence, reason: str) -> bool:
        self._release(sequence)
        self.stats.finished += 1
        self._recent_s.append(time.perf_counter() - sequence.arrived)
        sequence.stream._items.put(reason)
        return False

    def _release(self, sequence: _Sequence) -> None:
        self._free_pages.extend(sequence.pages)
        sequence.pages = []
        if sequence.slot >= 0:
            self._free_slots.append(sequence.slot)
            sequence.slot = -1

    @staticmethod
    def _seen(sequence: _Sequence) -> torch.Tensor | None:
        return None if sequence.seen is None else sequence.seen[: len(sequence.ids)]
