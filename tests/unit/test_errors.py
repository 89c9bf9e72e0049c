"""The error tree: one module without heavy imports, the HTTP answer of each error, and errors
carried across a process boundary as (kind, message, field, retry_after_s)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

import altlas.errors
from altlas.api.errors import install_error_handlers
from altlas.errors import (
    AltlasError,
    EngineUnavailableError,
    InsufficientMemoryError,
    InvalidPlanError,
    ModelUnavailableError,
    OverloadedError,
    UnsupportedAudioError,
    UnsupportedImageError,
    WrongTaskError,
    error_from_kind,
    error_kind,
)

ERRORS = [
    value
    for value in vars(altlas.errors).values()
    if isinstance(value, type) and issubclass(value, AltlasError)
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda error: error.__name__)
def test_every_error_crosses_a_process_boundary_as_itself(error: type[AltlasError]) -> None:
    if error is OverloadedError:
        sent: AltlasError = OverloadedError("went wrong", 2.5, "texts")
    else:
        sent = error("went wrong", "texts")
    kind = error_kind(sent)
    retry = sent.retry_after_s if isinstance(sent, OverloadedError) else None
    received = error_from_kind(kind, sent.message, sent.field, retry)
    assert type(received) is error and str(received) == "texts: went wrong"
    if isinstance(sent, OverloadedError):
        assert isinstance(received, OverloadedError) and received.retry_after_s == 2.5


def test_an_error_of_another_module_travels_as_its_nearest_base_here() -> None:
    from altlas.jobs.store import JobStateError

    class UnstorablePlan(InvalidPlanError):
        pass

    assert error_kind(UnstorablePlan("x")) == "InvalidPlanError"
    assert isinstance(error_from_kind("InvalidPlanError", "x"), InvalidPlanError)
    assert error_kind(JobStateError("x")) == "AltlasError"
    assert type(error_from_kind("NoSuchKind", "x")) is AltlasError


def test_the_moved_errors_are_importable_from_where_they_were() -> None:
    from altlas.audio.decode import UnsupportedAudioError as audio
    from altlas.orchestrator.manager import InsufficientMemoryError as memory
    from altlas.orchestrator.manager import ModelUnavailableError as unavailable
    from altlas.orchestrator.manager import WrongTaskError as wrong_task
    from altlas.vision.classifier import UnsupportedImageError as image

    assert (audio, memory, unavailable, wrong_task, image) == (
        UnsupportedAudioError, InsufficientMemoryError, ModelUnavailableError, WrongTaskError,
        UnsupportedImageError,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("error", "status", "code", "retry_after"),
    [
        (EngineUnavailableError("engine 0 is restarting", "model"), 503, "engine_unavailable", "1"),
        (InsufficientMemoryError("does not fit", "model"), 503, "insufficient_gpu_memory", None),
        (ModelUnavailableError("failed to load", "model"), 503, "model_unavailable", None),
        (WrongTaskError("not an embedding model", "model"), 400, "wrong_task", None),
        (UnsupportedAudioError("not audio", "file"), 415, "unsupported_media", None),
        (UnsupportedImageError("not an image", "file"), 415, "unsupported_media", None),
    ],
)
def test_each_error_has_its_http_answer(
    error: AltlasError, status: int, code: str, retry_after: str | None
) -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/fail")
    def fail() -> None:
        raise error

    response = TestClient(app).get("/fail")
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"] == str(error)
    assert response.headers.get("retry-after") == retry_after
