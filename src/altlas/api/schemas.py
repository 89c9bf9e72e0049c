"""Request bodies of the segmentation API, and the one error shape of every route as OpenAPI
declares it (pydantic lives here, at the boundary, only)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, field_validator

from altlas.errors import InvalidInputError
from altlas.plans.model import Language, Mode, Persona, TaskType
from altlas.segmentation.when import zone_named

__all__ = [
    "ERROR_RESPONSES",
    "BatchSegmentRequest",
    "ErrorDetail",
    "ErrorResponse",
    "PrioritizeRequest",
    "SegmentOptionsBody",
    "SegmentRequest",
    "WeightsBody",
]

_SEED = Field(default=None, ge=-(2**63), le=2**63 - 1, description="Same seed, same plan (modes, personas)")


class SegmentOptionsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    language: Language | None = Field(default=None, description="en or tr; detected when left out")
    mode: Mode = Mode.NORMAL
    persona: Persona = Persona.TECHNICAL_EXPERT
    chaos_level: StrictInt | None = Field(
        default=None, ge=1, le=10, description="1-10, required iff mode is Chaos"
    )
    seed: StrictInt | None = _SEED
    urgency: StrictInt = Field(default=5, ge=1, le=10)
    deadline: datetime | None = Field(default=None, description="ISO 8601; a near deadline raises urgency")
    now: datetime | None = Field(
        default=None,
        description="ISO 8601 date-time that schedule times (when_iso) are resolved against; "
        "default the server's clock. Without an offset it is a wall-clock time in `timezone`",
    )
    timezone: StrictStr | None = Field(
        default=None,
        max_length=64,
        description="IANA time zone of the user (Europe/Istanbul); default now's offset, else the "
        "server's zone",
    )
    user_preferences: dict[TaskType, StrictInt] = Field(
        default_factory=dict, description="task type -> preference 1-10 (default 5)"
    )
    metadata: dict[str, Any] | None = Field(
        default=None, description="Stored with the plan under metadata.user"
    )
    store: StrictBool = Field(default=True, description="Keep the plan under the data dir")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str | None) -> str | None:
        if name is not None:
            try:
                zone_named(name)
            except InvalidInputError as exc:
                raise ValueError(exc.message) from None
        return name


class SegmentRequest(SegmentOptionsBody):
    command: StrictStr = Field(description="The command, English or Turkish; at most 10,000 characters")


class BatchSegmentRequest(SegmentOptionsBody):
    commands: list[StrictStr] = Field(min_length=1, description="Up to 1000 commands, segmented alike")


class WeightsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dependency: float = Field(default=0.4, ge=0, allow_inf_nan=False)
    urgency: float = Field(default=0.3, ge=0, allow_inf_nan=False)
    preference: float = Field(default=0.2, ge=0, allow_inf_nan=False)
    confidence: float = Field(default=0.1, ge=0, allow_inf_nan=False)


class PrioritizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan: dict[str, Any] = Field(description="An ALT plan (JSON object)")
    urgency: StrictInt = Field(default=5, ge=1, le=10)
    deadline: datetime | None = None
    user_preferences: dict[TaskType, StrictInt] = Field(default_factory=dict)
    weights: WeightsBody = Field(default_factory=WeightsBody)


class ErrorDetail(BaseModel):
    message: str = Field(description="What went wrong, for a person to read")
    type: str = Field(
        description="invalid_request_error, authentication_error, permission_error, not_found_error, "
        "rate_limit_error or server_error"
    )
    param: str | None = Field(
        description="The input at fault: a body field (messages[0].content), a query or path parameter, "
        "body, authorization; null when no one input is"
    )
    code: str = Field(
        description="What kind of failure, for programs: invalid_value, missing, too_large, ..."
    )


class ErrorResponse(BaseModel):
    """The one error shape of every altlas answer from 400 to 599 (OpenAI's): see
    altlas.api.admission.error_body, which writes it."""

    error: ErrorDetail


def _error(description: str, **extra: Any) -> dict[str, Any]:
    return {"description": description, "model": ErrorResponse, **extra}


# The error answers a route may give, declared once for every route (create_app's `responses`);
# each says where it applies. 422 replaces FastAPI's own HTTPValidationError: the validation
# errors of every route are answered in the error shape too (altlas.api.errors).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error(
        "The body is not valid JSON, a form upload cannot be read, or the model named serves another task"
    ),
    401: _error(
        "A /v1 route without a valid API key, when the server has keys: send Authorization: Bearer <key>",
        headers={"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
    ),
    403: _error(
        "Model administration (anything but a read under /v1/models) with a key that is no admin key"
    ),
    404: _error("No such route, or no such plan, job, model, version or index"),
    408: _error("The request body did not all arrive within ALTLAS_BODY_TIMEOUT_S; the connection is closed"),
    409: _error("The job is not in a state that allows this (the result of a job that has not succeeded)"),
    413: _error(
        "The body is over ALTLAS_MAX_BODY_BYTES (the connection is closed), or an input is over its "
        "limit (texts, commands, tokens, queries, an image's pixels, audio)"
    ),
    415: _error("An upload that is not audio or an image this server decodes"),
    422: _error(
        "A value is invalid: error.param names it (body fields as a.b[0].c, parameters by name); "
        "also a JSON body nested too deep or with a lone surrogate, whatever the route"
    ),
    429: _error(
        "Too much work in flight (ALTLAS_MAX_CONCURRENT_REQUESTS, or a model's queue): retry after "
        "Retry-After seconds",
        headers={
            "Retry-After": {"description": "Seconds to wait, at least 1", "schema": {"type": "integer"}}
        },
    ),
    500: _error(
        "An unexpected error: the message names the request id (also in X-Request-ID); the log has the rest"
    ),
    503: _error("The model cannot serve now: not enough GPU memory, or it failed to load"),
    504: _error("Not answered within ALTLAS_REQUEST_TIMEOUT_S"),
}
