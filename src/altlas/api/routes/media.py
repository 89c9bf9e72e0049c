"""Native endpoints for media uploads: POST /v1/audio/vad (speech segments in an audio file) and
POST /v1/images/classify (top-k labels of an image)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from altlas.api.cost import request_cost
from altlas.audio.decode import decode_audio
from altlas.orchestrator.backends import ImageBackend, VadBackend
from altlas.orchestrator.manager import ModelManager
from altlas.vision.classifier import decode_image

__all__ = ["media_router"]


def media_router(manager: ModelManager) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["media"])

    def detect(data: bytes, model: str, threshold: float, min_speech_ms: float, min_silence_ms: float,
               pad_ms: float) -> JSONResponse:  # fmt: skip
        samples, rate = decode_audio(data)
        with manager.use(model, "audio-vad") as lease:
            backend = lease.backend
            assert isinstance(backend, VadBackend)
            started = time.perf_counter()
            segments, duration = backend.detector.segments(
                samples, rate, threshold=threshold, min_speech_ms=min_speech_ms,
                min_silence_ms=min_silence_ms, pad_ms=pad_ms,
            )  # fmt: skip
            processing_ms = (time.perf_counter() - started) * 1e3
        headers, cost = request_cost(lease, processing_ms, audio_seconds=round(duration, 3))
        body: dict[str, Any] = {
            "model": model,
            "duration": round(duration, 3),
            "sample_rate": rate,
            "speech_seconds": round(sum(s.end - s.start for s in segments), 3),
            "segments": [{"start": s.start, "end": s.end, "probability": s.probability} for s in segments],
            "altlas": cost,
        }
        return JSONResponse(body, headers=headers)

    @router.post(
        "/audio/vad", summary="Speech segments (start, end, probability) in a WAV, FLAC or OGG upload"
    )
    async def audio_vad(
        file: Annotated[UploadFile, File(description="the audio file")],
        model: Annotated[str, Form()] = "silero-vad",
        threshold: Annotated[float, Form(gt=0, lt=1)] = 0.5,
        min_speech_ms: Annotated[float, Form(ge=0, le=60_000)] = 250,
        min_silence_ms: Annotated[float, Form(ge=0, le=60_000)] = 100,
        pad_ms: Annotated[float, Form(ge=0, le=10_000)] = 30,
    ) -> JSONResponse:
        data = await file.read()
        return await run_in_threadpool(detect, data, model, threshold, min_speech_ms, min_silence_ms, pad_ms)

    def classify(data: bytes, model: str, top_k: int) -> JSONResponse:
        image = decode_image(data)
        with manager.use(model, "image-classification") as lease:
            backend = lease.backend
            assert isinstance(backend, ImageBackend)
            started = time.perf_counter()
            predictions = backend.classifier.classify(image, top_k)
            processing_ms = (time.perf_counter() - started) * 1e3
        headers, cost = request_cost(lease, processing_ms)
        body = {
            "model": model,
            "width": int(image.shape[1]),
            "height": int(image.shape[0]),
            "predictions": [{"label": p.label, "index": p.index, "score": p.score} for p in predictions],
            "altlas": cost,
        }
        return JSONResponse(body, headers=headers)

    @router.post("/images/classify", summary="Top-k labels with scores for an uploaded image")
    async def images_classify(
        file: Annotated[UploadFile, File(description="the image (JPEG, PNG, WebP, ...)")],
        model: Annotated[str, Form()] = "efficientnet-lite0",
        top_k: Annotated[int, Form(ge=1, le=1000)] = 5,
    ) -> JSONResponse:
        data = await file.read()
        return await run_in_threadpool(classify, data, model, top_k)

    return router
