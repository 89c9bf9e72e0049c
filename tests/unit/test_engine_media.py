"""Uploads over the engine transport (altlas.engine): an Engine on its own thread serving the
shipped Silero VAD and EfficientNet-Lite0 on the CPU over ipc, a client on an event loop. The
file travels as it came (a second frame); the answer equals the backend's own in this process;
an upload's errors (an empty file, an image that is not one, top_k out of range) arrive as the
same AltlasError, naming the field."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from altlas.audio.decode import open_audio
from altlas.audio.vad import default_vad_path
from altlas.engine.client import EngineClient
from altlas.engine.core import Engine
from altlas.engine.local import LocalModels
from altlas.errors import InvalidInputError, UnsupportedAudioError, UnsupportedImageError, WrongTaskError
from altlas.orchestrator.backends import ImageBackend, VadBackend, VadRequest
from altlas.orchestrator.serving import LoadedModels
from altlas.scheduling.batcher import BatchPolicy
from altlas.scheduling.waiting import ClientGone

from ..engine_threads import preloaded, serving
from ..media_bytes import efficientnet_weights, png

CPU = torch.device("cpu")
SPEECH = Path(__file__).resolve().parents[1] / "data" / "audio" / "speech_en.wav"
Backends = tuple[VadBackend, ImageBackend]
SETTINGS = {"threshold": 0.4, "min_speech_ms": 200.0, "min_silence_ms": 80.0, "pad_ms": 20.0}


@pytest.fixture(scope="module")
def backends() -> Iterator[Backends]:
    vad = VadBackend("silero-vad", default_vad_path(), CPU, 30.0, BatchPolicy())
    image = ImageBackend(
        "efficientnet-lite0", "efficientnet-lite", efficientnet_weights(), CPU, {}, BatchPolicy()
    )
    yield vad, image
    vad.close()
    image.close()


@pytest.fixture
def models(backends: Backends) -> LoadedModels:
    vad, image = backends
    return preloaded({"vad": ("audio-vad", vad), "image": ("image-classification", image)})


@pytest.fixture
def engine(models: LoadedModels, tmp_path: Path) -> Iterator[Engine]:
    with serving(models, f"ipc://{tmp_path}/engine-0") as served:
        yield served


def test_speech_segments_equal_the_backends_own(engine: Engine, backends: Backends) -> None:
    data = SPEECH.read_bytes()
    settings = SETTINGS
    want_segments, want_duration = (
        backends[0].batcher.submit(VadRequest(open_audio(data), *settings.values())).result(120).value
    )

    async def scenario() -> None:
        async with EngineClient(engine.address) as client:
            got = await client.detect_speech("vad", data, 120, "req-1", **settings)
        assert got.rate == open_audio(data).rate and got.duration == pytest.approx(want_duration)
        assert got.segments == [(s.start, s.end, s.probability) for s in want_segments] and got.segments
        assert got.served.model_device == "cpu" and got.served.batch_size == 1

    asyncio.run(scenario())


def test_labels_equal_the_backends_own(engine: Engine, backends: Backends) -> None:
    data = png(64, 48)
    classifier = backends[1].classifier
    want = backends[1].batcher.submit((classifier.decode(data).pixels, 3)).result(120).value

    async def scenario() -> None:
        async with EngineClient(engine.address) as client:
            got = await client.classify("image", data, 3, 120, "req-2")
        assert (got.width, got.height) == (64, 48)
        assert [label for label, _, _ in got.predictions] == [p.label for p in want]
        np.testing.assert_allclose(
            [score for *_, score in got.predictions], [p.score for p in want], rtol=1e-5
        )

    asyncio.run(scenario())


def test_an_uploads_errors_arrive_as_the_same_altlas_errors(engine: Engine) -> None:
    async def scenario() -> None:
        async with EngineClient(engine.address) as client:
            with pytest.raises(UnsupportedAudioError, match="is empty") as empty:
                await client.detect_speech("vad", b"", 60, **SETTINGS)
            assert empty.value.field == "file"
            with pytest.raises(UnsupportedImageError) as garbage:
                await client.classify("image", b"not an image at all", 3, 60)
            assert garbage.value.field == "file"
            with pytest.raises(InvalidInputError, match="must be 1 to 1000, got 1001") as top_k:
                await client.classify("image", png(8, 8), 1001, 60)
            assert top_k.value.field == "top_k"
            with pytest.raises(WrongTaskError, match="does audio-vad, not image-classification"):
                await client.classify("vad", png(8, 8), 3, 60)
            got = await client.classify("image", png(8, 8), 1, 60)  # the engine goes on
            assert len(got.predictions) == 1

    asyncio.run(scenario())


def test_the_local_service_answers_as_the_engine_does(engine: Engine, models: LoadedModels) -> None:
    """ModelService in this process (LocalModels) and through an engine (EngineClient): the same
    replies but for the request id, the same errors."""
    speech, image = SPEECH.read_bytes(), png(40, 30)

    async def scenario() -> None:
        local = LocalModels(models)
        async with EngineClient(engine.address) as remote:
            answers = [
                (
                    await service.detect_speech("vad", speech, 120, **SETTINGS),
                    await service.classify("image", image, 2, 120),
                )
                for service in (local, remote)
            ]
            for service in (local, remote):
                with pytest.raises(UnsupportedImageError):
                    await service.classify("image", b"GIF89a broken", 2, 60)
        (local_speech, local_labels), (remote_speech, remote_labels) = answers
        assert local_speech.segments == remote_speech.segments and local_speech.rate == remote_speech.rate
        assert local_labels.predictions == remote_labels.predictions
        assert (
            (local_labels.width, local_labels.height)
            == (40, 30)
            == (remote_labels.width, remote_labels.height)
        )

    asyncio.run(scenario())


@pytest.mark.parametrize("where", ["local", "engine"])
def test_a_client_that_leaves_cancels_its_request(engine: Engine, models: LoadedModels, where: str) -> None:
    """`receive` reports the HTTP client gone: ClientGone, and the engine holds nothing for it."""

    async def gone() -> dict[str, str]:
        return {"type": "http.disconnect"}

    async def scenario() -> None:
        async with EngineClient(engine.address) as remote:
            service = LocalModels(models) if where == "local" else remote
            with pytest.raises(ClientGone):
                await service.detect_speech("vad", SPEECH.read_bytes(), 120, receive=gone, **SETTINGS)
        deadline = time.monotonic() + 60
        while engine.in_flight and time.monotonic() < deadline:  # the Cancel is taken
            await asyncio.sleep(0.01)
        assert not engine.in_flight

    asyncio.run(scenario())
