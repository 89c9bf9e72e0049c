"""Text generation with a causal language model (transformers + torch), token by token.

`TextGenerator` loads a transformers model folder (see convert.py for GGUF files) on a
device, turns chat messages into token ids with the model's own chat template, and
streams the answer: every step yields the new text (decoded incrementally, never a
half character), and generation ends at an end-of-turn token, a stop sequence (which is
not part of the answer) or the token budget.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from altlas.errors import InputTooLargeError, InvalidInputError, OverloadedError
from altlas.generation.continuous import ContinuousBatcher
from altlas.generation.llama_decoder import LlamaDecoder, supports
from altlas.generation.paged_decoder import PagedLlamaDecoder
from altlas.generation.sampling import NO_TOKEN, SamplingParams, UnusableLogitsError, next_token

__all__ = [
    "Completion",
    "StopScanner",
    "TextGenerator",
    "TokenEvent",
    "answer_budget",
    "cache_of",
    "collect",
    "end_of_turn_ids",
    "last_event",
]

log = logging.getLogger("altlas.generation")


def cache_of(output: Any) -> Any:
    """The KV cache of a transformers forward's output (`cache` in 5.x, `past_key_values` before)."""
    return output.cache if hasattr(output, "cache") else output.past_key_values


@dataclass(frozen=True)
class TokenEvent:
    """A piece of the answer; the last event of a stream has finish_reason "stop" or "length"."""

    text: str
    finish_reason: str | None = None
    completion_tokens: int = 0  # on the last event: tokens generated (stop sequences included)
    token_ids: tuple[int, ...] = ()  # on the last event: the generated ids
    prefill_ms: float = 0.0  # on the last event: prompt to first token
    decode_ms: float = 0.0  # on the last event: first token to the end
    queue_ms: float = 0.0  # arrival to a decode slot (continuous batching; 0 otherwise)


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    prefill_ms: float
    decode_ms: float
    token_ids: tuple[int, ...] = ()


class TextGenerator:
    """A causal LM and its tokenizer on one device; one generation at a time."""

    def __init__(
        self,
        folder: Path,
        device: torch.device,
        dtype: torch.dtype,
        max_context: int | None = None,
        *,
        fast_decode: bool | None = None,
        max_sequences: int = 0,
        kv_cache_tokens: int = 0,
        max_queue: int = 1024,
        model: Any = None,
    ) -> None:
        """fast_decode: the static-cache, CUDA-graph decoder of llama_decoder.py (default: on CUDA
        when the model is Llama-shaped); otherwise every token goes through transformers.
        max_sequences > 0: continuous batching (continuous.py) of up to that many generations
        at once over a paged KV cache of `kv_cache_tokens` positions, for Llama-shaped models;
        generations then no longer wait for each other's turn. A model that neither fast path
        takes decodes through transformers: `decode_fallback` says why, in a log line too; only
        `fast_decode=True`, asked for by name, makes that an error. model: the folder's model
        already loaded (benchmarks share one between engines); the folder then gives the tokenizer."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.folder = folder
        self.device = device
        self.dtype = dtype
        try:
            self.tokenizer: Any = AutoTokenizer.from_pretrained(folder)
            if model is None:
                model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
        except (OSError, ValueError, KeyError) as exc:
            raise InvalidInputError(f"cannot load a causal LM from {folder}: {exc}", field="source") from None
        self.model = model.to(device).eval()
        # transformers 5 renamed the KV-cache argument and output field from past_key_values to cache
        self._cache_name = (
            "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
        )
        config = self.model.config
        limit = int(getattr(config, "max_position_embeddings", 0) or 2048)
        self.max_context = min(max_context or limit, limit)
        self.eos_ids = end_of_turn_ids(self.model, self.tokenizer)
        self.decoder: LlamaDecoder | None = None
        self.continuous: ContinuousBatcher | None = None
        self.decode_path = "transformers"
        self.decode_fallback: str | None = None  # why a model that could decode fast does not
        batched = max_sequences > 0
        wanted = batched or bool(fast_decode) or (fast_decode is None and device.type == "cuda")
        kernels = not batched or device.type == "cuda"  # the paged decoder on the CPU runs torch alone
        reason = supports(self.model, self.max_context, kernels=kernels) if wanted else None
        if reason is None and wanted:
            try:
                self._fast_path(batched, max_sequences, kv_cache_tokens, max_queue)
            except ValueError as exc:  # a decoder's own refusal of this model's shape
                reason = str(exc)
        if reason is not None:
            if fast_decode:  # asked for by name: an error, not a quiet fallback
                raise InvalidInputError(f"fast decoding is not available: {reason}", field="fast_decode")
            self.decode_fallback = reason
            log.warning(
                "fast decoding is not available for this model; it decodes through transformers",
                extra={"folder": str(folder), "device": str(device), "reason": reason},
            )
        self.completion_tokens = 0  # counters over the engine's life
        self._count_lock = threading.Lock()

    def _fast_path(self, batched: bool, max_sequences: int, kv_cache_tokens: int, max_queue: int) -> None:
        """Continuous batching over a paged cache when `batched`, else the batch-1 static-cache decoder."""
        if batched:
            paged = PagedLlamaDecoder(self.model, self.max_context, max_sequences, kv_cache_tokens or 8192)
            name = f"{self.folder.name}@{self.device}"
            self.continuous = ContinuousBatcher(name, paged, self.eos_ids, max_queue)
            self.decode_path = f"continuous batching of up to {max_sequences} over a paged cache" + (
                " + CUDA graphs" if paged.use_graph else ""
            )
        else:
            self.decoder = LlamaDecoder(self.model, self.max_context)
            graph = "CUDA graph" if self.decoder.use_graph else "eager kernels"
            self.decode_path = f"static cache + {graph}"

    # prompts

    def chat_ids(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """Token ids of a conversation in the model's chat template, ready for the assistant's turn."""
        if self.tokenizer.chat_template is None:
            raise InvalidInputError("this model has no chat template; use completions", field="messages")
        ids: Any = self.tokenizer.apply_chat_template(
            list(messages), add_generation_prompt=True, tokenize=True
        )
        if isinstance(ids, dict) or hasattr(ids, "keys"):  # a BatchEncoding in some versions
            ids = ids["input_ids"]
        return [int(i) for i in ids]

    def text_ids(self, prompt: str) -> list[int]:
        return [int(i) for i in self.tokenizer(prompt)["input_ids"]]

    # generation

    def complete(self, ids: Sequence[int], params: SamplingParams) -> Completion:
        return collect(self.stream(ids, params), len(ids))

    def stream(
        self, ids: Sequence[int], params: SamplingParams, field: str = "prompt", timeout_s: float = 0.0
    ) -> Generator[TokenEvent, None, None]:
        """The answer as it is generated; the caller may stop iterating (or close it) at any time.
        `field` names the input in errors (prompt, messages). With continuous batching the
        request queues for a slot (OverloadedError when the queue is full, TimedOutError when
        no token came within `timeout_s`; 0: no limit)."""
        budget = answer_budget(ids, params, self.max_context, field)
        if self.model is None:  # closed (unloaded or swapped) after the caller took its lease
            raise OverloadedError("the model was just unloaded; send the request again", retry_after_s=1)
        if self.continuous is not None:
            sequence = self.continuous.submit(list(ids), params, budget)
            return self._events(sequence.tokens(timeout_s), params.stop, lambda: sequence.queue_ms)
        return self._events(self._one_at_a_time(list(ids), params, budget), params.stop, lambda: 0.0)

    def close(self) -> None:
        """Finish the generations accepted, then let go of the model and its caches."""
        if self.continuous is not None:
            self.continuous.close()
        self.continuous = None
        self.model = None
        self.decoder = None  # its cache, buffers and CUDA graph

    def _events(
        self, tokens: Generator[list[int], None, str], stop: Sequence[str], queued_ms: Callable[[], float]
    ) -> Generator[TokenEvent, None, None]:
        """Text events of a stream of token ids: decoded a piece at a time, stop sequences
        held back and cut, and a last event with the reason and the timings."""
        started = time.perf_counter()
        text = _Detokenizer(self.tokenizer)
        stops = StopScanner(stop)
        generated: list[int] = []
        first_token_at = 0.0
        finish = "length"
        try:
            while True:
                try:
                    chunk = next(tokens)
                except StopIteration as end:
                    finish = end.value
                    break
                first_token_at = first_token_at or time.perf_counter()
                generated.extend(chunk)
                with self._count_lock:  # many generations run at once now
                    self.completion_tokens += len(chunk)
                emit, stopped = stops.feed(text.add(chunk))
                if emit:
                    yield TokenEvent(emit, queue_ms=queued_ms())
                if stopped:
                    finish = "stop"
                    break
        finally:
            tokens.close()  # the caller stopped, or a stop sequence: the slot or turn goes at once
        if finish == "length" or not stops.stopped:
            rest = stops.flush()
            if rest:
                yield TokenEvent(rest, queue_ms=queued_ms())
        yield last_event(finish, generated, started + queued_ms() / 1e3, first_token_at, queued_ms())

    def _prefill(self, ids: list[int]) -> tuple[torch.Tensor, Any]:
        """Logits after the prompt, and its KV cache. The prompt is padded on the right to a
        multiple of PREFILL_BUCKET: causal attention keeps the pads out of the real tokens'
        results, only the real positions' keys and values are copied, and the GPU meets a few
        prompt shapes that the warm-up has run (a new shape's first prefill cost 62 ms instead
        of 18 on an H100). Logits only for the last real position, not for every pad."""
        padded = _bucket(len(ids), self.max_context)
        prompt = torch.tensor([ids + [ids[-1]] * (padded - len(ids))], device=self.device)
        output = self.model.model(input_ids=prompt, use_cache=True)
        return self.model.lm_head(output.last_hidden_state[0, len(ids) - 1]), cache_of(output)

    def _one_at_a_time(
        self, ids: list[int], params: SamplingParams, budget: int
    ) -> Generator[list[int], None, str]:
        """Token ids of one generation holding the model alone; returns the finish reason."""
        generator = None
        if params.seed is not None and not params.greedy:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(params.seed)
        seen = torch.zeros(len(ids) + budget, dtype=torch.long, device=self.device)
        seen[: len(ids)] = torch.tensor(ids, device=self.device)
        # Each step's tensor work sits in its own inference_mode block, never across a yield:
        # a stream may be resumed on another thread, and the mode is per thread.
        with torch.inference_mode():
            if self.decoder is None:
                output = self.model(input_ids=seen[None, : len(ids)], use_cache=True)
                logits = output.logits[0, -1]
            else:
                logits, cache = self._prefill(ids)
                self.decoder.load_prefill(cache, len(ids))
        # Greedy without a penalty: after the first token (from the prefill's logits) the
        # decoder's step has chosen it already (its last kernel, the same rule as next_token's)
        # and holds it as the next step's input.
        chosen_by_step = self.decoder is not None and params.greedy and params.repetition_penalty == 1.0
        for step in range(budget):
            with torch.inference_mode():
                from_step = chosen_by_step and step > 0
                if from_step:
                    assert self.decoder is not None
                    token = self.decoder.greedy[0]
                else:
                    token = next_token(logits, params, seen[: len(ids) + step], generator)
                token_id = int(token)
                if token_id == NO_TOKEN:
                    raise UnusableLogitsError()
                if token_id not in self.eos_ids:
                    seen[len(ids) + step] = token
                    if step + 1 < budget and self.decoder is not None:
                        logits = self.decoder.step(
                            self.decoder.token if from_step else token, len(ids) + step
                        )
                    elif step + 1 < budget:
                        cache = {self._cache_name: getattr(output, self._cache_name)}
                        output = self.model(input_ids=token.view(1, 1), use_cache=True, **cache)
                        logits = output.logits[0, -1]
            if token_id in self.eos_ids:
                return "stop"
            yield [token_id]
        return "length"

    def warmup(self, prompts: Sequence[str]) -> None:
        """Run the prefill and decode paths once per prompt, and the prefill at a spread of
        lengths (cuBLAS and attention pick kernels per shape, the allocator grows), so that
        first requests pay no set-up."""
        for prompt in prompts or ["Hello"]:
            chat = self.tokenizer.chat_template is not None
            ids = self.chat_ids([{"role": "user", "content": prompt}]) if chat else self.text_ids(prompt)
            self.complete(ids, SamplingParams(max_tokens=4, temperature=0.0))
            self.complete(ids, SamplingParams(max_tokens=2, temperature=0.7, top_p=0.9, top_k=40, seed=0))
        if self.device.type == "cuda" and (self.decoder is not None or self.continuous is not None):
            filler = self.text_ids("warm up ") or [0]
            for length in range(PREFILL_BUCKET, min(1024, self.max_context - 1) + 1, PREFILL_BUCKET):
                ids = (filler * (length // len(filler) + 1))[:length]
                self.complete(ids, SamplingParams(max_tokens=2, temperature=0.0))


def end_of_turn_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    """Every id that ends an answer: the model config's end-of-sequence id(s), its generation
    config's (generation_config.json: Llama 3 lists three, <|end_of_text|>, <|eom_id|> and
    <|eot_id|>; Qwen2.5 both <|im_end|> and <|endoftext|>) and the tokenizer's."""
    generation = getattr(model, "generation_config", None)
    found: set[int] = set()
    for eos in (model.config.eos_token_id, getattr(generation, "eos_token_id", None), tokenizer.eos_token_id):
        found.update(int(i) for i in (eos if isinstance(eos, list | tuple) else [eos]) if i is not None)
    return frozenset(found)


def answer_budget(ids: Sequence[int], params: SamplingParams, max_context: int, field: str) -> int:
    """How many tokens the answer may take; errors for an empty prompt or one that fills the context."""
    if not ids:
        raise InvalidInputError("the prompt is empty", field=field)
    if len(ids) >= max_context:
        raise InputTooLargeError(
            f"the prompt has {len(ids):,} tokens; this model's context is {max_context:,} "
            "tokens including the answer",
            field=field,
        )
    return min(params.max_tokens, max_context - len(ids))


def last_event(
    finish: str, generated: list[int], started: float, first_token_at: float, queue_ms: float = 0.0
) -> TokenEvent:
    """A stream's closing event: why it ended, the ids, queue, prefill and decode times."""
    ended = time.perf_counter()
    first_token_at = first_token_at or ended
    timing = {
        "prefill_ms": max(0.0, first_token_at - started) * 1e3,
        "decode_ms": (ended - first_token_at) * 1e3,
    }
    return TokenEvent("", finish, len(generated), tuple(generated), queue_ms=queue_ms, **timing)


def collect(events: Iterator[TokenEvent], prompt_tokens: int) -> Completion:
    """The whole answer of a stream."""
    pieces: list[str] = []
    last = TokenEvent("", "length")
    for event in events:
        pieces.append(event.text)
        last = event
    return Completion(
        "".join(pieces), prompt_tokens, last.completion_tokens, last.finish_reason or "length",
        prefill_ms=last.prefill_ms, decode_ms=last.decode_ms, token_ids=last.token_ids,
    )  # fmt: skip


PREFILL_BUCKET = 64  # prompt lengths are padded to a multiple of this on the fast-decode path


def _bucket(length: int, limit: int) -> int:
    return min(-(-length // PREFILL_BUCKET) * PREFILL_BUCKET, limit)


class _Detokenizer:
    """Text of a growing token sequence, a piece at a time: a piece is released only when
    its last character is complete (byte-level tokens can split a UTF-8 character)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.prefix = 0
        self.read = 0

    def add(self, token_ids: list[int]) -> str:
        self.ids.extend(token_ids)
        decode = self.tokenizer.decode
        before = decode(self.ids[self.prefix : self.read], skip_special_tokens=True)
        after = decode(self.ids[self.prefix :], skip_special_tokens=True)
        if len(after) <= len(before) or after.endswith("\ufffd"):
            return ""
        self.prefix, self.read = self.read, len(self.ids)
        return str(after[len(before) :])


class StopScanner:
    """Holds back text that may be the start of a stop sequence; ends at the first stop."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(stops)
        self.held = ""
        self.stopped = False

    def feed(self, piece: str) -> tuple[str, bool]:
        if not self.stops:
            return piece, False
        self.held += piece
        found = [i for i in (self.held.find(s) for s in self.stops) if i >= 0]
        if found:
            self.stopped = True
            emit, self.held = self.held[: min(found)], ""
            return emit, True
        keep = max((n for s in self.stops for n in range(1, len(s)) if self.held.endswith(s[:n])), default=0)
        emit = self.held[: len(self.held) - keep]
        self.held = self.held[len(self.held) - keep :]
        return emit, False

    def flush(self) -> str:
        rest, self.held = self.held, ""
        return rest
