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
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, TypeVar

import orjson
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from starlette.types import Receive

from altlas.api.cost import generation_cost, served_cost
from altlas.api.vectors import MAX_TEXTS_PER_REQUEST, encode_base64
from altlas.engine.messages import Token
from altlas.engine.service import Embedded, GenerationStream, ModelService
from altlas.errors import InputTooLargeError, InvalidInputError
from altlas.generation.params import (
    MAX_REPETITION_PENALTY,
    MAX_TEMPERATURE,
    MAX_TOKENS,
    MAX_TOP_K,
    MIN_DIVISOR,
    SamplingParams,
)
from altlas.logs import request_id_var
from altlas.scheduling.waiting import ClientGone

__all__ = [
    "ChatRequest",
    "CompletionRequest",
    "EmbeddingsRequest",
    "embed",
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


def openai_router(service: ModelService, timeout_s: float) -> APIRouter:
    """The routes, answered by the models' `service`; `timeout_s`: the request time limit (0:
    none; for a generation, its wait for the model's turn)."""
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
        return await _generation(service, body, timeout_s, request)

    @router.post(
        "/chat/completions",
        summary="Chat completion (OpenAI shape; stream: true for server-sent events)",
        response_model=None,
    )
    async def chat_completions(body: ChatRequest, request: Request) -> Response:
        return await _generation(service, body, timeout_s, request)

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
    """The threads in-process generations run on (altlas.engine.service.LocalModels), each for
    as long as its answer takes: not anyio's pool, whose 40 threads would cap the generations in
    flight below a continuous batch's slots. The app owns it (made when the routes are mounted,
    shut down with the app)."""
    return ThreadPoolExecutor(max_workers=256, thread_name_prefix="altlas-generate")


async def _generation(
    service: ModelService, body: CompletionRequest | ChatRequest, timeout_s: float, request: Request
) -> Response:
    """One completion or chat request, whole or (stream: true) as server-sent events; a client
    that leaves stops its generation (its slot goes to the next request at the next step, or it
    never starts)."""
    answer = await _started(service, body, timeout_s, request.receive)
    if body.stream:
        return StreamingResponse(answer.events(), media_type="text/event-stream", headers=answer.headers())
    whole = await answer.whole()
    return JSONResponse(whole, headers=answer.headers(whole["altlas"]))


async def generate_json(
    service: ModelService, body: CompletionRequest | ChatRequest, timeout_s: float
) -> dict[str, Any]:
    """The whole answer's JSON body (what an async job keeps)."""
    return await (await _started(service, body, timeout_s, None)).whole()


async def _started(
    service: ModelService, body: CompletionRequest | ChatRequest, timeout_s: float, receive: Receive | None
) -> _Answer:
    """`body`'s generation under way (the model's turn waited for at most `timeout_s`, the
    prefill done: its errors raised here), as the answer it makes."""
    chat = isinstance(body, ChatRequest)
    sampling = body.sampling(1)  # max_tokens: the ask's own (the engine fills in the default)
    if isinstance(body, ChatRequest):
        messages = [
            (m.role if m.role != "developer" else "system", m.text(i)) for i, m in enumerate(body.messages)
        ]
        ask: dict[str, Any] = {
            "messages": messages,
            "max_tokens": body.max_completion_tokens or body.max_tokens,
        }
    else:
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if len(prompts) != 1:
            raise InvalidInputError("one prompt per request (n=1)", field="prompt")
        ask = {"prompt": prompts[0], "max_tokens": body.max_tokens}
    stream = await service.generate(
        body.model, sampling, timeout_s, request_id_var.get() or "", receive=receive, **ask
    )
    ident = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
    created = int(time.time())
    shape = _ChatShape(ident, created, body.model) if chat else _TextShape(ident, created, body.model)
    include_usage = bool((body.stream_options or {}).get("include_usage"))
    return _Answer(stream, shape, include_usage)


class _Answer:
    """A generation under way and the OpenAI answer it makes: whole, or as SSE events."""

    def __init__(self, stream: GenerationStream, shape: _TextShape | _ChatShape, include_usage: bool) -> None:
        self.stream = stream
        self.shape = shape
        self.include_usage = include_usage
        self.begun_at = time.perf_counter()  # the processing time: first_ms, then from here

    def headers(self, cost: dict[str, Any] | None = None) -> dict[str, str]:
        """The X-Altlas-* headers: of the whole answer (its `cost`), or of a stream's start (the
        processing time is the time to the first token)."""
        begun = self.stream.begun
        return generation_cost(begun, cost["processing_ms"] if cost else begun.first_ms)[0]

    async def whole(self) -> dict[str, Any]:
        """The whole answer's body (ClientGone: the client left mid-answer, the generation stopped)."""
        async with self.stream:
            pieces, last = [], None
            async for token in self.stream:
                pieces.append(token.text)
                last = token
        assert last is not None  # a stream ends with its finishing Token
        return self.shape.whole("".join(pieces), last.finish_reason or "length", *self._totals(last))

    async def events(self) -> AsyncIterator[bytes]:
        """The SSE events; the generation stops when the client leaves."""
        shape = self.shape
        try:
            async with self.stream:
                yield _sse(shape.opening())
                last = None
                async for token in self.stream:
                    last = token
                    if token.text:  # the last one's too: text held back for a stop sequence
                        yield _sse(shape.piece(token.text))
                assert last is not None
                usage, cost = self._totals(last)
                yield _sse(
                    shape.closing(last.finish_reason or "length", cost, None if self.include_usage else usage)
                )
                if self.include_usage:
                    yield _sse(shape.usage_chunk(usage))
                yield _sse("[DONE]")
        except ClientGone:  # nobody reads the rest
            return

    def _totals(self, last: Token) -> tuple[dict[str, int], dict[str, Any]]:
        """(usage, the `altlas` cost object) once the last Token came."""
        begun = self.stream.begun
        processing_ms = begun.first_ms + (time.perf_counter() - self.begun_at) * 1e3
        usage = _usage(begun.prompt_tokens, last.completion_tokens)
        return usage, generation_cost(begun, processing_ms, **_speed(last))[1]


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


def _speed(last: Token) -> dict[str, Any]:
    tokens, decode_s = last.completion_tokens, last.decode_ms / 1e3
    rate = (tokens - 1) / decode_s if tokens > 1 and decode_s > 0 else None
    return {
        "time_to_first_token_ms": round(last.prefill_ms, 3),
        "decode_tokens_per_s": rate and round(rate, 1),
    }


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
