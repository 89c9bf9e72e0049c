"""Generations over the engine transport (altlas.engine) in one process: an Engine on its own
thread serving a tiny random Llama-3 model over ipc in a temporary folder, a client on an event
loop. A streamed chat or completion equals the model's own generation (start_generation in
this process); the model's errors arrive before any token as the same AltlasError; closing a
stream early stops the generation in the engine before its next token and frees the model."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest
import torch

from altlas.engine.client import EngineClient
from altlas.engine.core import Engine
from altlas.engine.local import LocalModels
from altlas.engine.messages import REPLIES, REQUESTS, Begun, Generate, Token, encode
from altlas.engine.service import ModelService
from altlas.errors import InputTooLargeError, NotFoundError, WrongTaskError
from altlas.generation.engine import TextGenerator
from altlas.generation.sampling import SamplingParams
from altlas.orchestrator.backends import GenerationBackend
from altlas.orchestrator.generations import GenerationAsk, start_generation
from altlas.orchestrator.serving import LoadedModels
from altlas.scheduling.batcher import BatchPolicy

from ..engine_threads import preloaded, serving
from ..tiny_llms import tiny_llm_folder

CPU = torch.device("cpu")
GREEDY = SamplingParams(max_tokens=12, temperature=0.0)


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GenerationBackend]:
    folder = tiny_llm_folder(tmp_path_factory.mktemp("tiny-llm") / "llama-3", "llama-3")
    generator = TextGenerator(folder, CPU, torch.float32, max_context=256)
    generator.eos_ids = frozenset()  # random weights: every answer runs to its max_tokens
    yield GenerationBackend(generator, CPU, BatchPolicy())


@pytest.fixture
def models(backend: GenerationBackend) -> LoadedModels:
    return preloaded({"tiny": ("generation", backend)}, vad="audio-vad")


@pytest.fixture
def engine(models: LoadedModels, tmp_path: Path) -> Iterator[Engine]:
    with serving(models, f"ipc://{tmp_path}/engine-0") as served:
        yield served


def local_generation(models: LoadedModels, ask: GenerationAsk) -> tuple[int, str, Any]:
    """(prompt tokens, text, last event) of `ask` run in this process."""
    go = start_generation(models, ask, 60)
    with go.turn:
        events = [go.first, *go.events]
    return go.prompt_tokens, "".join(event.text for event in events), events[-1]


def test_generate_messages_round_trip_as_tagged_arrays() -> None:
    request = Generate(3, "req-1", "tiny", GREEDY, 30.0, 5, [("user", "Merhaba")], None)
    assert REQUESTS.decode(encode(request)) == request
    for reply in (Begun(3, 9, 1.5, 2.5, "cpu", 0), Token(3, "ş", "length", 5, (1, 2, 3), 1.0, 2.0, 0.0)):
        assert REPLIES.decode(encode(reply)) == reply
    assert isinstance(msgspec.msgpack.decode(encode(request)), list)


@asynccontextmanager
async def service_of(where: str, engine: Engine, models: LoadedModels) -> AsyncIterator[ModelService]:
    """The models' service: an engine's client, or this process's models (LocalModels)."""
    if where == "local":
        yield LocalModels(models)
        return
    async with EngineClient(engine.address) as client:
        yield client


@pytest.mark.parametrize("where", ["engine", "local"])
@pytest.mark.parametrize("kind", ["chat", "completion"])
def test_a_streamed_generation_equals_the_models_own(
    engine: Engine, models: LoadedModels, kind: str, where: str
) -> None:
    messages = [("user", "Chrome'u aç ve hava durumunu ara")] if kind == "chat" else None
    prompt = None if kind == "chat" else "Bugün hava"
    ask = GenerationAsk("tiny", GREEDY, 12, None if messages is None else tuple(messages), prompt)
    prompt_tokens, text, last = local_generation(models, ask)

    async def scenario() -> None:
        async with service_of(where, engine, models) as service:
            stream = await service.generate(
                "tiny", GREEDY, 60, "req-1", messages=messages, prompt=prompt, max_tokens=12
            )
            events = [event async for event in stream]
        assert (stream.begun.prompt_tokens, stream.begun.model_device) == (prompt_tokens, "cpu")
        assert "".join(event.text for event in events) == text
        assert [event.finish_reason for event in events] == [None] * (len(events) - 1) + ["length"]
        assert (events[-1].completion_tokens, events[-1].token_ids) == (12, last.token_ids)

    asyncio.run(scenario())
    deadline = time.monotonic() + 60
    while engine.in_flight and time.monotonic() < deadline:  # the engine's thread ends after its last Token
        time.sleep(0.01)
    assert not engine.in_flight


@pytest.mark.parametrize("where", ["engine", "local"])
def test_the_models_errors_arrive_before_any_token(engine: Engine, models: LoadedModels, where: str) -> None:
    async def scenario() -> None:
        async with service_of(where, engine, models) as client:
            with pytest.raises(NotFoundError, match="no model named 'nope'") as unknown:
                await client.generate("nope", GREEDY, 60, prompt="x")
            assert unknown.value.field == "model"
            with pytest.raises(WrongTaskError, match="does audio-vad, not generation"):
                await client.generate("vad", GREEDY, 60, prompt="x")
            with pytest.raises(InputTooLargeError, match="context is 256 tokens") as long:
                await client.generate("tiny", GREEDY, 60, messages=[("user", "kelime " * 300)])
            assert long.value.field == "messages"
            stream = await client.generate("tiny", GREEDY, 60, prompt="still served")  # the engine goes on
            assert len([event async for event in stream]) > 1

    asyncio.run(scenario())


@pytest.mark.parametrize("where", ["engine", "local"])
def test_closing_a_stream_stops_the_generation_before_its_next_token(
    engine: Engine, models: LoadedModels, backend: GenerationBackend, monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:  # fmt: skip
    """The generation waits after each token until the test lets it go on: the Cancel (or the
    stop flag) reaches it first, so the one token let through is the last it makes; the model's
    turn is then free."""
    generator = backend.generator
    real_stream = generator.stream
    produced: list[Any] = []
    waits: list[int] = []  # the tokens made when the engine asked for another
    go_on, closed = threading.Semaphore(0), threading.Event()

    def gated(*args: Any, **kwargs: Any) -> Any:
        try:
            for event in real_stream(*args, **kwargs):
                if produced:  # every token after the prefill's waits for the test
                    waits.append(len(produced))
                    go_on.acquire(timeout=60)
                produced.append(event)
                yield event
        finally:
            closed.set()

    monkeypatch.setattr(generator, "stream", gated)

    async def scenario() -> None:
        async with service_of(where, engine, models) as client:
            stream = await client.generate("tiny", GREEDY, 60, prompt="a", max_tokens=200)
            first = await anext(stream)
            assert first.finish_reason is None
            await stream.aclose()
            deadline = time.monotonic() + 60
            while engine.in_flight and time.monotonic() < deadline:  # the Cancel is taken
                await asyncio.sleep(0.01)
            assert not engine.in_flight

    asyncio.run(scenario())
    go_on.release()  # the engine's generation goes on to its next token, sees the Cancel, stops
    assert closed.wait(60), "the engine did not close the generation"
    assert waits == [1] and len(produced) == 2 and produced[-1].finish_reason is None
    with backend.turn(60):  # the model's turn is free again
        pass
