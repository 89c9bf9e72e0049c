"""Native endpoints for media uploads: POST /v1/audio/vad (speech segments in an audio file) and
POST /v1/images/classify (top-k labels of an image)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from altlas.api.cost import request_cost
from altlas.audio.decode import open_audio
from altlas.orchestrator.backends import ImageBackend, VadBackend, VadRequest
from altlas.orchestrator.serving import LoadedModels
from altlas.scheduling.waiting import wait_for

__all__ = ["media_router"]


def media_router(models: LoadedModels, timeout_s: float) -> APIRouter:
    """The routes, over the loaded models; `timeout_s`: the request time limit (0: none)."""
    router = APIRouter(prefix="/v1", tags=["media"])

    @router.post(
        "/audio/vad", summary="Speech segments (start, end, probability) in a WAV, FLAC or OGG upload"
    )
    async def audio_vad(
        request: Request,
        file: Annotated[UploadFile, File(description="the audio file")],
        model: Annotated[str, Form()] = "silero-vad",
        threshold: Annotated[float, Form(gt=0, lt=1)] = 0.5,
        min_speech_ms: Annotated[float, Form(ge=0, le=60_000)] = 250,
        min_silence_ms: Annotated[float, Form(ge=0, le=60_000)] = 100,
        pad_ms: Annotated[float, Form(ge=0, le=10_000)] = 30,
    ) -> JSONResponse:
        data = await file.read()
        audio = await run_in_threadpool(open_audio, data)  # the header checked; decoded as it runs
        lease = await run_in_threadpool(models.lease, model, "audio-vad")
        backend = lease.backend
        assert isinstance(backend, VadBackend)
        job = VadRequest(audio, threshold, min_speech_ms, min_silence_ms, pad_ms)
        served = await wait_for(backend.batcher.submit(job), timeout_s, request.receive, "voice detection")
        segments, duration = served.value
        headers, cost = request_cost(
            lease, served.run_ms, served.queue_ms, served_on=served.device, audio_seconds=round(duration, 3)
        )
        body: dict[str, Any] = {
            "model": model,
            "duration": round(duration, 3),
            "sample_rate": audio.rate,
            "speech_seconds": round(sum(s.end - s.start for s in segments), 3),
            "segments": [{"start": s.start, "end": s.end, "probability": s.probability} for s in segments],
            "altlas": cost,
        }
        return JSONResponse(body, headers=headers)

    @router.post("/images/classify", summary="Top-k labels with scores for an uploaded image")
    async def images_classify(
        request: Request,
        file: Annotated[UploadFile, File(description="the image (JPEG, PNG, WebP, ...)")],
        model: Annotated[str, Form()] = "efficientnet-lite0",
        top_k: Annotated[int, Form(ge=1, le=1000)] = 5,
    ) -> JSONResponse:
        data = await file.read()
        lease = await run_in_threadpool(models.lease, model, "image-classification")
        backend = lease.backend
        assert isinstance(backend, ImageBackend)
        backend.classifier.check_top_k(top_k)
        image = await run_in_threadpool(backend.classifier.decode, data)  # only as far as the model needs
        served = await wait_for(
            backend.batcher.submit((image.pixels, top_k)), timeout_s, request.receive, "classification"
        )
        headers, cost = request_cost(
            lease, served.run_ms, served.queue_ms, served.batch_size, served.batch_requests, served.device
        )
        body = {
            "model": model,
            "width": image.width,
            "height": image.height,
            "predictions": [{"label": p.label, "index": p.index, "score": p.score} for p in served.value],
            "altlas": cost,
        }
        return JSONResponse(body, headers=headers)

    return router
