"""A generation's model-side work, wherever it runs (an engine process, or the API's own
process): lease, turn and prefill (altlas.orchestrator.generations.start_generation), then its
replies, `Begun` and one `Token` a piece, handed to `send` as the model produces them."""

from __future__ import annotations

import threading
from collections.abc import Callable

from altlas.engine import messages as wire
from altlas.generation.engine import TokenEvent
from altlas.orchestrator.generations import GenerationAsk, start_generation
from altlas.orchestrator.serving import LoadedModels

__all__ = ["generation_work"]


def generation_work(
    message: wire.Generate, models: LoadedModels, stop: threading.Event, send: Callable[[wire.Reply], None]
) -> None:
    """Run `message` on this thread (call it from a worker thread: a model may load first):
    Begun, then each piece as a Token up to the one with a finish reason; once `stop` is set
    it ends before the next token, sending nothing more (the model's turn or decode slot goes
    at once). The model's errors (a prompt too long, a full queue) are raised before Begun."""
    messages = None if message.messages is None else tuple(message.messages)
    ask = GenerationAsk(message.model, message.sampling, message.max_tokens, messages, message.prompt)
    go = start_generation(models, ask, message.timeout_s)
    with go.turn:
        try:
            if stop.is_set():
                return
            send(wire.Begun(message.id, go.prompt_tokens, go.queue_ms, go.first_ms, go.lease.device,
                            go.lease.gpu_bytes))  # fmt: skip
            send(_token(message.id, go.first))
            for event in go.events:
                if stop.is_set():
                    return
                send(_token(message.id, event))
        finally:
            go.events.close()  # the turn or decode slot goes now


def _token(ident: int, event: TokenEvent) -> wire.Token:
    return wire.Token(
        ident, event.text, event.finish_reason, event.completion_tokens, event.token_ids, event.prefill_ms,
        event.decode_ms, event.queue_ms,
    )  # fmt: skip
