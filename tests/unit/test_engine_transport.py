"""The engine transport (altlas.engine) in one process: an Engine on its own thread serving the
real all-MiniLM-L6-v2 embedding backend over ipc in a temporary folder, clients on an event
loop. Vectors equal the backend's own; errors arrive as the same AltlasError (kind, message,
field); a request past its time limit is cancelled in the engine; replies go to their peer."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
import torch

from altlas.embeddings import default_model_path
from altlas.engine.client import EngineClient
from altlas.engine.core import Engine
from altlas.engine.messages import REPLIES, REQUESTS, Cancel, Embed, Failed, Vectors, encode
from altlas.errors import (
    EngineUnavailableError,
    NotFoundError,
    OverloadedError,
    TimedOutError,
    WrongTaskError,
)
from altlas.orchestrator.backends import EmbeddingBackend
from altlas.orchestrator.serving import Loaded, LoadedModels
from altlas.scheduling.batcher import BatchPolicy

from ..embedding_cases import model_path
from ..engine_threads import preloaded, serving


@pytest.fixture(scope="module")
def backend() -> Iterator[EmbeddingBackend]:
    path = model_path() or default_model_path()
    # a long batch window: the time-limit test's request waits in the queue, never gathered
    served = EmbeddingBackend("minilm", path, torch.device("cpu"), "fp32", BatchPolicy(max_wait_ms=5.0))
    yield served
    served.close()


@pytest.fixture
def engine(backend: EmbeddingBackend, tmp_path: Path) -> Iterator[Engine]:
    served = {"minilm": backend, "full": _Full(), "broken": _Broken()}
    models = preloaded({name: ("embedding", each) for name, each in served.items()}, vad="audio-vad")
    with serving(models, f"ipc://{tmp_path}/engine-0") as served:
        yield served


class _Full(EmbeddingBackend):
    """An embedding backend whose queue is full."""

    def __init__(self) -> None:
        pass

    def submit(self, texts: list[str], field: str = "input", *, normalize: bool = True) -> tuple[Any, Any]:
        raise OverloadedError("the queue is full", 2.5, field)


class _Broken(_Full):
    """An embedding backend with a bug."""

    def submit(self, texts: list[str], field: str = "input", *, normalize: bool = True) -> tuple[Any, Any]:
        raise KeyError("a bug")


def test_messages_round_trip_as_tagged_arrays() -> None:
    request = Embed(7, "req-1", "minilm", ["merhaba dünya", "İstanbul"])
    assert REQUESTS.decode(encode(request)) == request
    assert REQUESTS.decode(encode(Cancel(7))) == Cancel(7)
    failed = Failed(7, "InputTooLargeError", "too many", "input", None)
    assert REPLIES.decode(encode(failed)) == failed
    assert isinstance(msgspec.msgpack.decode(encode(request)), list)  # no field names on the wire


def test_vectors_equal_the_backends_own(engine: Engine, backend: EmbeddingBackend) -> None:
    texts = ["Chrome'u aç ve hava durumunu ara", "take a screenshot", "ışık ğ ş İ"]
    want = backend.encode(texts).value

    async def scenario() -> None:
        async with EngineClient(engine.address) as client:
            got = await client.embed("minilm", texts, 60, "req-1")
            raw = await client.embed("minilm", texts, 60, "req-2", normalize=False)
        assert got.vectors.shape == (3, 384) and got.vectors.dtype == np.float32
        np.testing.assert_allclose(got.vectors, want, rtol=0, atol=1e-6)
        norms = np.linalg.norm(raw.vectors, axis=1, keepdims=True)  # as pooled: not unit length
        assert not np.allclose(norms, 1.0, atol=1e-3)
        np.testing.assert_allclose(raw.vectors / norms, want, rtol=0, atol=1e-5)
        assert isinstance(got.header, Vectors) and got.header.tokens > 3
        assert got.header.served.model_device == "cpu"

    asyncio.run(scenario())


def test_errors_arrive_as_the_same_altlas_errors(engine: Engine) -> None:
    async def scenario() -> None:
        async with EngineClient(engine.address) as client:
            with pytest.raises(NotFoundError, match="no model named 'nope'") as unknown:
                await client.embed("nope", ["x"], 60)
            assert unknown.value.field == "model"
            with pytest.raises(WrongTaskError, match="does audio-vad, not embedding"):
                await client.embed("vad", ["x"], 60)
            with pytest.raises(OverloadedError) as full:
                await client.embed("full", ["x"], 60)
            assert (full.value.message, full.value.field, full.value.retry_after_s) == (
                "the queue is full",
                "input",
                2.5,
            )
            with pytest.raises(RuntimeError, match="internal error in the engine"):  # logged there
                await client.embed("broken", ["x"], 60)

    asyncio.run(scenario())


def test_a_request_past_its_time_limit_is_cancelled_in_the_engine(engine: Engine) -> None:
    async def scenario() -> None:
        async with EngineClient(engine.address) as client:
            with pytest.raises(TimedOutError, match=r"took longer than the 0\.001 s limit"):
                await client.embed("minilm", ["a slow one"] * 2000, 0.001)
            deadline = time.monotonic() + 60
            while engine.in_flight and time.monotonic() < deadline:  # the Cancel reaches the engine
                await asyncio.sleep(0.01)
            assert not engine.in_flight
            got = await client.embed("minilm", ["still served"], 60)  # the engine goes on
            assert got.vectors.shape == (1, 384)

    asyncio.run(scenario())


def test_concurrent_clients_each_get_their_own_answers(engine: Engine, backend: EmbeddingBackend) -> None:
    texts = [f"komut {i}: dosyayı aç" for i in range(24)]
    want = backend.encode(texts).value

    async def scenario() -> None:
        async with contextlib.AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(EngineClient(engine.address)) for _ in range(3)]
            answers = await asyncio.gather(
                *(clients[i % 3].embed("minilm", [text], 60, f"req-{i}") for i, text in enumerate(texts))
            )
        got = np.concatenate([answer.vectors for answer in answers])
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)

    asyncio.run(scenario())


def test_a_cancel_cancels_the_peers_waiting_work_only(tmp_path: Path) -> None:
    """Cancel(id) from a peer cancels that peer's work of that id (never gathered, never run),
    not another peer's of the same id."""
    from concurrent.futures import Future

    engine = Engine(LoadedModels(lambda name: None), f"ipc://{tmp_path}/engine-1")
    mine, theirs = Future[Any](), Future[Any]()
    engine.in_flight[(b"me", 3)] = mine
    engine.in_flight[(b"them", 3)] = theirs
    engine._take(b"me", encode(Cancel(3)), [])
    assert mine.cancelled() and not theirs.cancelled()
    assert list(engine.in_flight) == [(b"them", 3)]


def test_a_request_cancelled_while_its_model_loads_never_runs(
    backend: EmbeddingBackend, tmp_path: Path
) -> None:
    """An Embed for a model that is not loaded waits on a loader thread; its Cancel (the client's
    time limit passed) comes while the model loads: once loaded, the request is not submitted,
    and the next request is served."""
    loading, go_on = threading.Event(), threading.Event()
    submitted: list[list[str]] = []

    class Recording(EmbeddingBackend):
        def __init__(self) -> None:
            pass

        def submit(
            self, texts: list[str], field: str = "input", *, normalize: bool = True
        ) -> tuple[Any, Any]:
            submitted.append(texts)
            return backend.submit(texts, field, normalize=normalize)

    def load(name: str) -> None:
        loading.set()
        assert go_on.wait(60)
        models.publish(name, Loaded(Recording(), "1", "cpu", 0))

    models = LoadedModels(load)
    models.add("later", "embedding")

    async def scenario(engine: Engine) -> None:
        async with EngineClient(engine.address) as client:
            asking = asyncio.create_task(client.embed("later", ["first"], 60))
            assert await asyncio.to_thread(loading.wait, 60)
            asking.cancel()  # the client left while the model loads
            with pytest.raises(asyncio.CancelledError):
                await asking
            deadline = time.monotonic() + 60
            while engine.in_flight and time.monotonic() < deadline:  # the Cancel is taken
                await asyncio.sleep(0.01)
            assert not engine.in_flight
            go_on.set()
            got = await client.embed("later", ["second"], 60)
            assert got.vectors.shape == (1, 384)

    with serving(models, f"ipc://{tmp_path}/engine-2") as engine:
        asyncio.run(scenario(engine))
    assert submitted == [["second"]]


def test_a_request_waits_for_an_engine_that_is_starting_then_fails_without_one(
    backend: EmbeddingBackend, tmp_path: Path
) -> None:
    """A request made before the engine listens is served once it does (within the client's
    start_timeout_s); with no engine at all it fails with EngineUnavailableError (503)."""
    address = f"ipc://{tmp_path}/engine-3"
    models = preloaded({"minilm": ("embedding", backend)})

    async def scenario() -> None:
        async with EngineClient(f"ipc://{tmp_path}/nobody", start_timeout_s=0.05) as alone:
            with pytest.raises(EngineUnavailableError, match=r"not running \(waited 0\.05 s\)") as failed:
                await alone.embed("minilm", ["x"], 60)
            assert failed.value.field == "model" and failed.value.retry_after_s == 1.0
        async with EngineClient(address, start_timeout_s=120) as client:
            asking = asyncio.create_task(client.embed("minilm", ["early"], 120))
            await asyncio.sleep(0)  # the request is made, waiting for an engine
            assert not asking.done()
            with serving(models, address):  # the engine starts listening
                got = await asking
            assert got.vectors.shape == (1, 384)

    asyncio.run(scenario())


def test_a_reply_finished_after_the_engine_stopped_is_dropped(tmp_path: Path) -> None:
    """Work still running when the engine stops answers into nothing: no write to the closed
    wake-up pipe (its number may be another file's by then), nothing queued."""
    with serving(LoadedModels(lambda name: None), f"ipc://{tmp_path}/engine-4") as engine:
        pass
    engine._send(b"peer", [b"late"])
    assert engine._outbox.empty()
