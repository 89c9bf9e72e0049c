"""Native endpoints for media uploads: POST /v1/audio/vad (speech segments in an audio file) and
POST /v1/images/classify (top-k labels of an image)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse

from altlas.api.cost import served_cost
from altlas.engine.service import ModelService
from altlas.logs import request_id_var

__all__ = ["media_router"]


def media_router(service: ModelService, timeout_s: float) -> APIRouter:
    """The routes, over the models' service; `timeout_s`: the request time limit (0: none)."""
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
        speech = await service.detect_speech(
            model, await file.read(), timeout_s, request_id_var.get() or "", receive=request.receive,
            threshold=threshold, min_speech_ms=min_speech_ms, min_silence_ms=min_silence_ms, pad_ms=pad_ms,
        )  # fmt: skip
        headers, cost = served_cost(speech.served, audio_seconds=round(speech.duration, 3))
        body: dict[str, Any] = {
            "model": model,
            "duration": round(speech.duration, 3),
            "sample_rate": speech.rate,
            "speech_seconds": round(sum(end - start for start, end, _ in speech.segments), 3),
            "segments": [{"start": start, "end": end, "probability": p} for start, end, p in speech.segments],
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
        labels = await service.classify(
            model, await file.read(), top_k, timeout_s, request_id_var.get() or "", receive=request.receive
        )
        headers, cost = served_cost(labels.served)
        body = {
            "model": model,
            "width": labels.width,
            "height": labels.height,
            "predictions": [
                {"label": label, "index": i, "score": score} for label, i, score in labels.predictions
            ],
            "altlas": cost,
        }
        return JSONResponse(body, headers=headers)

    return router
