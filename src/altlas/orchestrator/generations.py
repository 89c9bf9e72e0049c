"""A generation on the model's side: lease, turn, the prompt's ids, the stream of events.

`start_generation` is what an engine does for a completion or chat request, with no HTTP or
OpenAI shapes in it: it leases the model (loading it if needed: call it from a worker thread),
waits for the model's turn (at most the time limit), turns the chat or prompt into ids with the
model's own template, and runs the prefill, so that its errors (a prompt too long, a full
queue) come before any answer. What it returns streams the rest; the caller (the OpenAI routes,
altlas.api.routes.openai_compat) shapes the answer and closes the stream to stop early.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Generator
from contextlib import ExitStack
from dataclasses import dataclass

from altlas.generation.engine import TextGenerator, TokenEvent
from altlas.generation.sampling import SamplingParams
from altlas.orchestrator.backends import GenerationBackend
from altlas.orchestrator.serving import Lease, LoadedModels

__all__ = ["GenerationAsk", "Started", "start_generation"]

DEFAULT_PROMPT_TOKENS = 16  # a completion's answer without max_tokens (a chat's: the context's room)


@dataclass(frozen=True)
class GenerationAsk:
    """A completion or chat request in the model's terms: `messages` (role, content) for a chat,
    else `prompt`; `sampling` as asked, its max_tokens replaced by `max_tokens` or, without
    one, the default (a chat: up to the model's context; a completion: 16)."""

    model: str
    sampling: SamplingParams
    max_tokens: int | None = None
    messages: tuple[tuple[str, str], ...] | None = None
    prompt: str | None = None


@dataclass
class Started:
    """A generation under way: the lease, the prompt's tokens, the first event (the prefill's)
    and the rest (`events`: close it to stop, the model's slot or turn goes at once), the wait
    for the model (`queue_ms`), the start of the processing (perf_counter, the wait left out)
    and the time to the first token. `turn` holds the model's turn: close it when done."""

    lease: Lease
    prompt_tokens: int
    first: TokenEvent
    events: Generator[TokenEvent, None, None]
    queue_ms: float
    started: float
    first_ms: float
    turn: ExitStack


def start_generation(models: LoadedModels, ask: GenerationAsk, timeout_s: float) -> Started:
    """Lease, turn, ids and prefill of `ask` (see the module's docs); `timeout_s` bounds the wait
    for the model (0: none)."""
    chat = ask.messages is not None
    turn = ExitStack()
    try:
        lease = models.lease(ask.model, "generation")
        backend = lease.backend
        assert isinstance(backend, GenerationBackend)  # lease checked the task
        queue_ms = turn.enter_context(backend.turn(timeout_s))
        engine = backend.generator
        if ask.messages is not None:
            ids = engine.chat_ids([{"role": role, "content": content} for role, content in ask.messages])
        else:
            ids = engine.text_ids(ask.prompt or "")
        default = engine.max_context if chat else DEFAULT_PROMPT_TOKENS
        params = dataclasses.replace(ask.sampling, max_tokens=ask.max_tokens or default)
        field = "messages" if chat else "prompt"
        started = time.perf_counter()
        if isinstance(engine, TextGenerator):
            events = engine.stream(ids, params, field, timeout_s=timeout_s)
        else:
            events = engine.stream(ids, params, field)
        first = next(events)  # the prefill runs here, so its errors are still plain 4xx answers
        queue_ms += first.queue_ms  # continuous batching: the wait for a decode slot
        started += first.queue_ms / 1e3  # processing times leave the wait out
        first_ms = (time.perf_counter() - started) * 1e3
    except BaseException:
        turn.close()
        raise
    return Started(lease, len(ids), first, events, queue_ms, started, first_ms, turn)
