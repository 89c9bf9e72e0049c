"""OpenAI-compatible endpoints: /v1/embeddings, /v1/completions, /v1/chat/completions.

Requests and responses keep OpenAI's shapes, so the official client and tools built on it
work unchanged; `stream: true` answers with server-sent events ending in `data: [DONE]`.
What a request cost travels beside that, where clients ignore it: the headers
X-Altlas-Processing-Ms, X-Altlas-Queue-Ms and X-Altlas-Device, and an `altlas` object in
JSON bodies (and in the last chunk of a stream). For a stream the processing header is
the time to the first token; the full time is in the last chunk.
Extensions beyond OpenAI's parameters: top_k and repetition_penalty.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import orjson
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from starlette.types import Receive

from altlas.api.cost import request_cost, served_cost
from altlas.api.vectors import MAX_TEXTS_PER_REQUEST, encode_base64
from altlas.engine.service import Embedded, ModelService
from altlas.errors import InputTooLargeError, InvalidInputError
from altlas.generation.engine import TokenEvent
from altlas.generation.sampling import (
    MAX_REPETITION_PENALTY,
    MAX_TEMPERATURE,
    MAX_TOKENS,
    MAX_TOP_K,
    MIN_DIVISOR,
    SamplingParams,
)
from altlas.logs import request_id_var
from altlas.orchestrator.generations import GenerationAsk, Started, start_generation
from altlas.orchestrator.serving import LoadedModels
from altlas.scheduling.waiting import wait_for

__all__ = [
    "ChatRequest",
    "CompletionRequest",
    "EmbeddingsRequest",
    "Generation",
    "embed",
    "generate",
    "generate_json",
    "generation_threads",
    "openai_router",
]

T = TypeVar("T")


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: StrictStr
    user: StrictStr | None = None


class EmbeddingsRequest(_Request):
    input: StrictStr | list[StrictStr] = Field(description=f"a text or up to {MAX_TEXTS_PER_REQUEST} texts")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: StrictInt | None = None


class _Sampling(_Request):
    max_tokens: StrictInt | None = Field(default=None, ge=1, le=MAX_TOKENS)
    temperature: float = Field(
        default=1.0, ge=0.0, le=MAX_TEMPERATURE,
        description=f"0: greedy; below {MIN_DIVISOR:g} it samples as {MIN_DIVISOR:g} (greedy in effect)",
    )  # fmt: skip
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: StrictInt = Field(
        default=0, ge=0, le=MAX_TOP_K, description="altlas extension: keep the k likeliest tokens (0: off)"
    )
    repetition_penalty: float = Field(
        default=1.0, gt=0.0, le=MAX_REPETITION_PENALTY,
        description=f"altlas extension; below {MIN_DIVISOR:g} it acts as {MIN_DIVISOR:g}",
    )  # fmt: skip
    stop: StrictStr | list[StrictStr] | None = None
    seed: StrictInt | None = Field(default=None, ge=0, lt=2**63)
    n: Literal[1] = 1
    stream: bool = False
    stream_options: dict[str, bool] | None = None
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    logprobs: Literal[False] | None = None

    def sampling(self, default_max: int) -> SamplingParams:
        for name in ("frequency_penalty", "presence_penalty"):
            if getattr(self, name):
                raise InvalidInputError("is not supported (use repetition_penalty)", field=name)
        stops = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        return SamplingParams(
            max_tokens=self.max_tokens or default_max, temperature=self.temperature, top_p=self.top_p,
            top_k=self.top_k, repetition_penalty=self.repetition_penalty, stop=stops, seed=self.seed,
        )  # fmt: skip


class CompletionRequest(_Sampling):
    prompt: StrictStr | list[StrictStr]
    echo: Literal[False] = False


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")  # name, tool_call_id ... are accepted and not used

    role: Literal["system", "user", "assistant", "developer"]
    content: StrictStr | list[dict[str, Any]]

    def text(self, index: int) -> str:
        if isinstance(self.content, str):
            return self.content
        parts = []
        for part in self.content:
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise InvalidInputError("only text parts are supported", field=f"messages[{index}].content")
            parts.append(part["text"])
        return "".join(parts)


class ChatRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: StrictInt | None = Field(default=None, ge=1, le=MAX_TOKENS)


def _sse(payload: dict[str, Any] | str) -> bytes:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n".encode()


def openai_router(
    models: LoadedModels, service: ModelService, timeout_s: float, threads: ThreadPoolExecutor
) -> APIRouter:
    """The routes: embeddings through the models' `service`, generations over the loaded
    `models`; `timeout_s`: the request time limit (0: none); `threads`: where generations run
    (`generation_threads`)."""
    router = APIRouter(prefix="/v1", tags=["openai"])

    # embeddings

    @router.post("/embeddings", summary="Embeddings (OpenAI shape; encoding_format float or base64)")
    async def embeddings(body: EmbeddingsRequest, request: Request) -> Response:
        return await embed(service, body, timeout_s, request.receive)

    # text generation

    @router.post(
        "/completions",
        summary="Text completion (OpenAI shape; stream: true for server-sent events)",
        response_model=None,
    )
    async def completions(body: CompletionRequest, request: Request) -> Response:
        return await _generation(models, body, timeout_s, request, threads)

    @router.post(
        "/chat/completions",
        summary="Chat completion (OpenAI shape; stream: true for server-sent events)",
        response_model=None,
    )
    async def chat_completions(body: ChatRequest, request: Request) -> Response:
        return await _generation(models, body, timeout_s, request, threads)

    return router


def _texts(body: EmbeddingsRequest) -> list[str]:
    texts = [body.input] if isinstance(body.input, str) else body.input
    if not texts:
        raise InvalidInputError("must hold at least one text", field="input")
    if len(texts) > MAX_TEXTS_PER_REQUEST:
        raise InputTooLargeError(
            f"has {len(texts):,} texts; the limit is {MAX_TEXTS_PER_REQUEST:,}", field="input"
        )
    return texts


def _embedding_answer(body: EmbeddingsRequest, got: Embedded) -> Response:
    headers, cost = served_cost(got.header.served)
    data = [
        {"object": "embedding", "index": i,
         "embedding": encode_base64(v) if body.encoding_format == "base64" else v}
        for i, v in enumerate(got.vectors)
    ]  # fmt: skip
    tokens = got.header.tokens
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    result = {"object": "list", "data": data, "model": body.model, "usage": usage, "altlas": cost}
    # orjson writes float32 vectors straight from numpy: ~50x json.dumps over lists of floats
    return Response(orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY), 200, headers, "application/json")


async def embed(
    service: ModelService, body: EmbeddingsRequest, timeout_s: float, receive: Receive
) -> Response:
    """One /v1/embeddings request, its body validated; `receive` tells of a client that leaves."""
    texts = _texts(body)
    got = await service.embed(
        body.model, texts, timeout_s, request_id_var.get() or "", dimensions=body.dimensions, receive=receive
    )
    return await _small_or_threaded(len(texts), _embedding_answer, body, got)


def generation_threads() -> ThreadPoolExecutor:
    """The threads generations run on, each for as long as its answer takes: not anyio's pool,
    whose 40 threads would cap the generations in flight below a continuous batch's slots.
    The app owns it (made when the routes are mounted, shut down with the app)."""
    return ThreadPoolExecutor(max_workers=256, thread_name_prefix="altlas-generate")


async def _generation(
    models: LoadedModels, body: CompletionRequest | ChatRequest, timeout_s: float, request: Request,
    threads: ThreadPoolExecutor,
) -> Response:  # fmt: skip
    """`generate` on a generation thread, its answer as a response; a client that leaves stops
    its generation (its slot goes to the next request at the next step, or it never starts)."""
    gone = threading.Event()
    future = threads.submit(generate, models, body, timeout_s, gone)
    try:
        generation = await wait_for(future, 0, request.receive, "the generation")
    except BaseException:
        gone.set()
        raise
    if generation.chunks is not None:
        chunks = (_sse(chunk) for chunk in generation.chunks)
        return StreamingResponse(chunks, media_type="text/event-stream", headers=generation.headers)
    if generation.body is None:  # the client left mid-answer: nobody reads this
        return Response(status_code=499)
    return JSONResponse(generation.body, headers=generation.headers)


@dataclass(frozen=True)
class Generation:
    """What `generate` gives back: the answer's headers (X-Altlas-*: its cost) and the whole
    answer's JSON body, or (stream: true) its server-sent events' payloads (JSON objects, then
    "[DONE]"; the lease is held until the last), or neither: the client left mid-answer."""

    headers: dict[str, str]
    body: dict[str, Any] | None = None
    chunks: Iterator[dict[str, Any] | str] | None = None


def generate(
    models: LoadedModels,
    body: CompletionRequest | ChatRequest,
    timeout_s: float,
    gone: threading.Event | None = None,
) -> Generation:
    """One completion or chat request: the whole answer, or (stream: true) its events. Runs on a
    worker thread: it waits for the model's turn (at most `timeout_s`) and generates there;
    `gone` set (the client left) stops a whole-answer generation at its next tokens."""
    chat = isinstance(body, ChatRequest)
    go = start_generation(models, _ask(body), timeout_s)
    ident = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
    created = int(time.time())
    shape = _ChatShape(ident, created, body.model) if chat else _TextShape(ident, created, body.model)
    if body.stream:
        include_usage = bool((body.stream_options or {}).get("include_usage"))
        headers, _ = request_cost(go.lease, go.first_ms, go.queue_ms)
        return Generation(headers, chunks=_stream_events(go, shape, include_usage))
    with go.turn:
        pieces, last = [go.first.text], go.first
        for event in go.events:
            if gone is not None and gone.is_set():
                go.events.close()  # the slot (or turn) goes now, not at the end
                return Generation({})
            pieces.append(event.text)
            last = event
        processing_ms = (time.perf_counter() - go.started) * 1e3
    usage = _usage(go.prompt_tokens, last.completion_tokens)
    headers, cost = request_cost(go.lease, processing_ms, go.queue_ms, **_speed(last))
    return Generation(headers, shape.whole("".join(pieces), last.finish_reason or "length", usage, cost))


def _ask(body: CompletionRequest | ChatRequest) -> GenerationAsk:
    """The request in the model's terms (its text parts and sampling checked here)."""
    sampling = body.sampling(1)  # max_tokens: GenerationAsk's own
    if isinstance(body, ChatRequest):
        messages = tuple((m.role if m.role != "developer" else "system", m.text(i))
                         for i, m in enumerate(body.messages))  # fmt: skip
        return GenerationAsk(body.model, sampling, body.max_completion_tokens or body.max_tokens, messages)
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    if len(prompts) != 1:
        raise InvalidInputError("one prompt per request (n=1)", field="prompt")
    return GenerationAsk(body.model, sampling, body.max_tokens, prompt=prompts[0])


def generate_json(
    models: LoadedModels, body: CompletionRequest | ChatRequest, timeout_s: float
) -> dict[str, Any]:
    """The whole answer's JSON body (what an async job keeps)."""
    generation = generate(models, body.model_copy(update={"stream": False}), timeout_s)
    assert generation.body is not None  # nobody sets `gone` here
    return generation.body


_SMALL_INPUT = 32  # texts whose answer is built right on the event loop


async def _small_or_threaded(size: int, work: Callable[..., T], *args: Any) -> T:
    """`work` in the event loop for small inputs (a worker-thread hop costs more than it),
    on a worker thread for large ones (so the loop keeps serving)."""
    if size <= _SMALL_INPUT:
        return work(*args)
    return await run_in_threadpool(work, *args)


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}  # fmt: skip


def _speed(last: TokenEvent) -> dict[str, Any]:
    tokens, decode_s = last.completion_tokens, last.decode_ms / 1e3
    rate = (tokens - 1) / decode_s if tokens > 1 and decode_s > 0 else None
    return {
        "time_to_first_token_ms": round(last.prefill_ms, 3),
        "decode_tokens_per_s": rate and round(rate, 1),
    }


def _stream_events(
    go: Started, shape: _TextShape | _ChatShape, include_usage: bool
) -> Iterator[dict[str, Any] | str]:
    """The SSE payloads; the lease and turn are held until the last event or the client leaves."""
    with go.turn:
        yield shape.opening()
        last = go.first
        for event in _chain(go.first, go.events):
            last = event
            if event.finish_reason is None and event.text:
                yield shape.piece(event.text)
        total_ms = (time.perf_counter() - go.started) * 1e3
        _, cost = request_cost(go.lease, total_ms, go.queue_ms, **_speed(last))
        usage = _usage(go.prompt_tokens, last.completion_tokens)
        yield shape.closing(last.finish_reason or "length", cost, None if include_usage else usage)
        if include_usage:
            yield shape.usage_chunk(usage)
        yield "[DONE]"


def _chain(first: TokenEvent, rest: Iterator[TokenEvent]) -> Iterator[TokenEvent]:
    yield first
    yield from rest


class _TextShape:
    """/v1/completions bodies and chunks."""

    def __init__(self, ident: str, created: int, model: str) -> None:
        self.head = {"id": ident, "object": "text_completion", "created": created, "model": model}

    def whole(self, text: str, finish: str, usage: dict[str, int], cost: dict[str, Any]) -> dict[str, Any]:
        choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": finish}
        return {**self.head, "choices": [choice], "usage": usage, "altlas": cost}

    def opening(self) -> dict[str, Any]:
        return self.piece("")

    def piece(self, text: str) -> dict[str, Any]:
        return {**self.head, "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": None}]}

    def closing(self, finish: str, cost: dict[str, Any], usage: dict[str, int] | None) -> dict[str, Any]:
        choice = {"text": "", "index": 0, "logprobs": None, "finish_reason": finish}
        return {**self.head, "choices": [choice], "altlas": cost, **({"usage": usage} if usage else {})}

    def usage_chunk(self, usage: dict[str, int]) -> dict[str, Any]:
        return {**self.head, "choices": [], "usage": usage}


class _ChatShape(_TextShape):
    """/v1/chat/completions bodies and chunks."""

    def __init__(self, ident: str, created: int, model: str) -> None:
        self.head = {"id": ident, "object": "chat.completion", "created": created, "model": model}
        self.chunk_head = {**self.head, "object": "chat.completion.chunk"}

    def whole(self, text: str, finish: str, usage: dict[str, int], cost: dict[str, Any]) -> dict[str, Any]:
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                  "finish_reason": finish}  # fmt: skip
        return {**self.head, "choices": [choice], "usage": usage, "altlas": cost}

    def opening(self) -> dict[str, Any]:
        delta = {"role": "assistant", "content": ""}
        return {
            **self.chunk_head,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}],
        }

    def piece(self, text: str) -> dict[str, Any]:
        choice = {"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": None}
        return {**self.chunk_head, "choices": [choice]}

    def closing(self, finish: str, cost: dict[str, Any], usage: dict[str, int] | None) -> dict[str, Any]:
        choice = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish}
        return {**self.chunk_head, "choices": [choice], "altlas": cost, **({"usage": usage} if usage else {})}

    def usage_chunk(self, usage: dict[str, int]) -> dict[str, Any]:
        return {**self.chunk_head, "choices": [], "usage": usage}
