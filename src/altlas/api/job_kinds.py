"""What each kind of async job takes and does: its input (the same request shapes as the
synchronous endpoints, validated when the job is submitted) and its handler (run later by a
job worker, through the same services and model schedulers as a synchronous request).

Kinds: segment, segment-bulk, embed, generate, search, vad, classify. Bulk kinds (segment-bulk,
embed: up to 100,000 lines) report progress, stop at their next batch when cancelled, and
write their result as a file (JSONL plans, .npy vectors); the others keep theirs inline.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, ValidationError

from altlas.api.schemas import SegmentOptionsBody, SegmentRequest
from altlas.errors import InvalidInputError, OverloadedError
from altlas.jobs.runner import Handler, JobContext, JobOutcome

if TYPE_CHECKING:
    from altlas.engine.service import ModelService

__all__ = ["JobKind", "job_kinds", "validate_input"]

T = TypeVar("T")
MAX_BULK_LINES = 100_000
_BULK_CHUNK = 1_000  # lines between progress reports and cancel checks


class BulkSegmentInput(SegmentOptionsBody):
    commands: list[StrictStr] = Field(min_length=1, max_length=MAX_BULK_LINES)
    embeddings: StrictBool = Field(
        default=False, description="settle unsure segment types with the embedding model (GPU if any)"
    )
    store: StrictBool = False  # bulk plans go to the result file


class EmbedInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: StrictStr = "all-minilm-l6-v2"
    input: list[StrictStr] = Field(min_length=1, max_length=MAX_BULK_LINES)


class VadInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: StrictStr = "silero-vad"
    audio_base64: StrictStr = Field(min_length=1)
    threshold: float = Field(default=0.5, gt=0, lt=1)
    min_speech_ms: float = Field(default=250, ge=0, le=60_000)
    min_silence_ms: float = Field(default=100, ge=0, le=60_000)
    pad_ms: float = Field(default=30, ge=0, le=10_000)


class ClassifyInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: StrictStr = "efficientnet-lite0"
    image_base64: StrictStr = Field(min_length=1)
    top_k: int = Field(default=5, ge=1, le=1000)


@dataclass(frozen=True)
class JobKind:
    parse: Callable[[dict[str, Any]], BaseModel]
    handler: Handler


def validate_input(kind: JobKind, raw: dict[str, Any]) -> dict[str, Any]:
    """The input as it will be stored (defaults filled in); errors name the field under `input`."""
    return kind.parse(raw).model_dump(mode="json", exclude_unset=False)


def _parser(
    *models: type[BaseModel], choose: Callable[[dict[str, Any]], int] = lambda _: 0
) -> Callable[[dict[str, Any]], BaseModel]:
    def parse(raw: dict[str, Any]) -> BaseModel:
        model = models[choose(raw)]
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            raise InvalidInputError(
                first.get("msg", "invalid"), field=f"input.{where}" if where else "input"
            ) from None

    return parse


def _patiently(
    ask: Callable[[], Coroutine[Any, Any, T]], loop: asyncio.AbstractEventLoop, context: JobContext
) -> T:
    """`ask()` (a request to the models' service) run on the app's event loop `loop` from a job
    worker's thread. A job waits for room in a model's queue (synchronous traffic may fill it)
    instead of failing; cancelled while its request waits or runs, the request is cancelled (what
    has not run yet is dropped)."""
    while True:
        future = asyncio.run_coroutine_threadsafe(ask(), loop)
        try:
            while True:
                try:
                    return future.result(timeout=1.0)
                except concurrent.futures.TimeoutError:
                    context.check_cancelled()
        except OverloadedError as exc:
            context.check_cancelled()
            time.sleep(min(exc.retry_after_s, 1.0))
        finally:
            future.cancel()  # nothing once it is done


def job_kinds(app_state: Any) -> dict[str, JobKind]:
    """The kinds this server can run, given the services mounted on it (`app.state`)."""
    kinds: dict[str, JobKind] = {}
    segmentation = getattr(app_state, "segmentation", None)
    models: ModelService | None = getattr(app_state, "service", None)
    if segmentation is not None:
        from altlas.api.routes.segmentation import segmentation_options, time_reference
        from altlas.plans.codec import plan_to_dict

        service: ModelService = app_state.service  # made with segmentation (the command model's)
        command_model: str = app_state.settings.command_embedding_model

        def segment(context: JobContext) -> JobOutcome:
            body = SegmentRequest.model_validate(context.job.input)
            plan = segmentation.segment(
                body.command, segmentation_options(body), store=body.store, reference=time_reference(body)
            )
            return JobOutcome(result={"plan": plan_to_dict(plan)})

        def segment_bulk(context: JobContext) -> JobOutcome:
            from altlas.segmentation.bulk import segment_lines

            body = BulkSegmentInput.model_validate(context.job.input)
            prototypes = None
            if body.embeddings:
                prototypes = _prototypes(
                    partial(_embed_on_loop, service, command_model, app_state.loop, context)
                )
            total, failed, lines = len(body.commands), 0, []
            results = segment_lines(
                body.commands,
                segmentation_options(body),
                workers=1,
                prototypes=prototypes,
                reference=time_reference(body),
            )
            for done, (text, ok) in enumerate(results, start=1):
                lines.append(text)
                failed += not ok
                if done % _BULK_CHUNK == 0:
                    context.progress(done, total)
                    context.check_cancelled()
            context.progress(total, total)
            name = context.write_file(".jsonl", lambda path: Path(path).write_text("\n".join(lines) + "\n"))
            return JobOutcome(result={"count": total, "failed": failed}, result_file=name)

        kinds["segment"] = JobKind(_parser(SegmentRequest), segment)
        kinds["segment-bulk"] = JobKind(_parser(BulkSegmentInput), segment_bulk)
    if models is not None and "orchestrator" in app_state.settings.services:
        kinds.update(_model_kinds(models, app_state))
    return kinds


def _prototypes(encode: Callable[[list[str]], np.ndarray]) -> Callable[[], Any]:
    from altlas.segmentation.prototypes import TypePrototypes

    def build() -> Any:
        return TypePrototypes(encode)

    return build


def _embed_on_loop(
    service: ModelService, model: str, loop: asyncio.AbstractEventLoop, context: JobContext, texts: list[str]
) -> np.ndarray:
    """Unit vectors of `texts` by `model`, asked of the service on the app's loop, a chunk at a time."""
    chunks = [texts[first : first + _BULK_CHUNK] for first in range(0, len(texts), _BULK_CHUNK)]
    got = [_patiently(partial(service.embed, model, chunk, 0), loop, context).vectors for chunk in chunks]
    return np.concatenate(got) if got else np.empty((0, 0), dtype=np.float32)


def _model_kinds(service: ModelService, app_state: Any) -> dict[str, JobKind]:
    from altlas.api.routes.openai_compat import ChatRequest, CompletionRequest, generate_json
    from altlas.api.routes.search import SearchRequest, search_answer

    timeout_s: float = app_state.settings.request_timeout_s  # a generation's turn, a search's embedding

    def on_loop(ask: Callable[[], Coroutine[Any, Any, T]], context: JobContext) -> T:
        return _patiently(ask, app_state.loop, context)  # the loop the app serves on

    def embed(context: JobContext) -> JobOutcome:
        body = EmbedInput.model_validate(context.job.input)
        texts, vectors, device = body.input, None, ""
        for first in range(0, len(texts), _BULK_CHUNK):
            chunk = texts[first : first + _BULK_CHUNK]
            got = on_loop(partial(service.embed, body.model, chunk, 0), context)
            if vectors is None:
                vectors = np.empty((len(texts), got.header.dim), dtype=np.float32)
            vectors[first : first + len(chunk)] = got.vectors
            device = got.header.served.model_device
            context.progress(first + len(chunk), len(texts))
            context.check_cancelled()
        assert vectors is not None  # at least one text
        name = context.write_file(".npy", partial(_save_npy, array=vectors))
        result = {
            "model": body.model,
            "count": len(texts),
            "dimension": int(vectors.shape[1]),
            "device": device,
        }
        return JobOutcome(result=result, result_file=name)

    def generate(context: JobContext) -> JobOutcome:
        body = _generation_parser(context.job.input)
        assert isinstance(body, ChatRequest | CompletionRequest)
        return JobOutcome(result=on_loop(partial(generate_json, service, body, timeout_s), context))

    def search(context: JobContext) -> JobOutcome:
        body = SearchRequest.model_validate(context.job.input)
        queries = [body.query] if isinstance(body.query, str) else body.query
        hits = on_loop(partial(service.search, body.index, queries, body.k, timeout_s), context)
        return JobOutcome(result=search_answer(body, hits)[0])

    def vad(context: JobContext) -> JobOutcome:
        body = VadInput.model_validate(context.job.input)
        field = "input.audio_base64"  # the same decoding, rate limits and resampling as POST /v1/audio/vad
        audio = _base64(body.audio_base64, field)
        settings = body.model_dump(include={"threshold", "min_speech_ms", "min_silence_ms", "pad_ms"})
        speech = on_loop(
            partial(service.detect_speech, body.model, audio, 0, field=field, **settings), context
        )
        return JobOutcome(result={
            "model": body.model, "duration": round(speech.duration, 3),
            "segments": [{"start": start, "end": end, "probability": p} for start, end, p in speech.segments],
        })  # fmt: skip

    def classify(context: JobContext) -> JobOutcome:
        body = ClassifyInput.model_validate(context.job.input)
        field = "input.image_base64"  # decoded as POST /v1/images/classify does: as far as the model needs
        image = _base64(body.image_base64, field)
        labels = on_loop(partial(service.classify, body.model, image, body.top_k, 0, field=field), context)
        return JobOutcome(result={
            "model": body.model,
            "predictions": [{"label": label, "index": index, "score": score}
                            for label, index, score in labels.predictions],
        })  # fmt: skip

    def choose_generation(raw: dict[str, Any]) -> int:
        return 0 if "messages" in raw else 1

    _generation_parser = _parser(ChatRequest, CompletionRequest, choose=choose_generation)
    return {
        "embed": JobKind(_parser(EmbedInput), embed),
        "generate": JobKind(_generation_parser, generate),
        "vad": JobKind(_parser(VadInput), vad),
        "classify": JobKind(_parser(ClassifyInput), classify),
        "search": JobKind(_parser(SearchRequest), search),
    }


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:  # a handle: np.save would add ".npy" to a temporary path's name
        np.save(handle, array, allow_pickle=False)


def _base64(text: str, field: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError("is not valid base64", field=field) from None
