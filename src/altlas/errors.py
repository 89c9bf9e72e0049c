"""The exceptions altlas raises on bad input; the CLI and the HTTP API translate them at their door.

AltlasError
├── InvalidInputError        input that breaks a rule; names the offending field
│   ├── InvalidPlanError     an ALT plan that is not valid (unknown dependency, cycle, ...)
│   ├── InputTooLargeError   a command or a batch over its size limit
│   ├── WrongTaskError       a model asked to do another task than its own
│   ├── UnsupportedAudioError   bytes that are not audio that can be decoded
│   └── UnsupportedImageError   bytes that are not an image that can be decoded
├── NotFoundError            no such stored plan
├── ModelUnavailableError    a model could not be loaded (HTTP 503)
│   ├── InsufficientMemoryError  it does not fit the GPU budget
│   └── EngineUnavailableError   the process serving it is gone or not up yet (503, Retry-After)
├── OverloadedError          a queue is full: try again after `retry_after_s` (HTTP 429)
├── TimedOutError            the request's time ran out before its answer (HTTP 504)
└── SlowRequestError         the client did not send its request in time (HTTP 408)

This module imports nothing heavy (no torch): the HTTP layer maps these to answers without
loading the model stack. An error crosses a process boundary as (kind, message, field,
retry_after_s): `error_kind` names it, `error_from_kind` builds the same class again.
"""

from __future__ import annotations

__all__ = [
    "AltlasError",
    "EngineUnavailableError",
    "InputTooLargeError",
    "InsufficientMemoryError",
    "InvalidInputError",
    "InvalidPlanError",
    "ModelUnavailableError",
    "NotFoundError",
    "OverloadedError",
    "SlowRequestError",
    "TimedOutError",
    "UnsupportedAudioError",
    "UnsupportedImageError",
    "WrongTaskError",
    "command_model_missing",
    "error_from_kind",
    "error_kind",
]


class AltlasError(Exception):
    """Base of every error altlas reports to a user."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class InvalidInputError(AltlasError):
    """Input that breaks a rule."""


class InvalidPlanError(InvalidInputError):
    """An ALT plan that breaks the format's rules."""


class InputTooLargeError(InvalidInputError):
    """A command or batch over its size limit."""


class WrongTaskError(InvalidInputError):
    """A model asked to do another task than its own."""


class UnsupportedAudioError(InvalidInputError):
    """The bytes are not audio that can be decoded."""


class UnsupportedImageError(InvalidInputError):
    """The bytes are not an image Pillow can decode."""


class NotFoundError(AltlasError):
    """No stored object with that id."""


class ModelUnavailableError(AltlasError):
    """The model could not be loaded; the message says why."""


def command_model_missing(model: str) -> ModelUnavailableError:
    """The error when the command embedding model `model` is not registered: the server's
    configuration, not the client's request, is at fault."""
    return ModelUnavailableError(
        f"the command embedding model {model!r} is not registered "
        "(ALTLAS_COMMAND_EMBEDDING_MODEL names it; GET /v1/models lists the registered ones)",
        field="model",
    )


class InsufficientMemoryError(ModelUnavailableError):
    """A GPU load refused: the model does not fit the card's budget even after unloading the
    idle, unpinned models; the message names the budget, what is held and by whom."""


class EngineUnavailableError(ModelUnavailableError):
    """The engine process that serves the model died or has not started yet; worth a retry."""

    retry_after_s = 1.0


class OverloadedError(AltlasError):
    """Work refused because a bounded queue is full; nothing was accepted, so nothing is lost."""

    def __init__(self, message: str, retry_after_s: float, field: str | None = None) -> None:
        super().__init__(message, field)
        self.retry_after_s = retry_after_s


class TimedOutError(AltlasError):
    """The request's time limit passed before its answer was ready."""


class SlowRequestError(AltlasError):
    """The client took longer than the server waits to send its request's body."""


_KINDS: dict[str, type[AltlasError]] = {
    kind.__name__: kind
    for kind in (
        AltlasError, InvalidInputError, InvalidPlanError, InputTooLargeError, WrongTaskError,
        UnsupportedAudioError, UnsupportedImageError, NotFoundError, ModelUnavailableError,
        InsufficientMemoryError, EngineUnavailableError, OverloadedError, TimedOutError, SlowRequestError,
    )
}  # fmt: skip


def error_kind(exc: AltlasError) -> str:
    """The name an error travels under: its class's, or its nearest base's in this module."""
    return next(kind.__name__ for kind in type(exc).__mro__ if _KINDS.get(kind.__name__) is kind)


def error_from_kind(
    kind: str, message: str, field: str | None = None, retry_after_s: float | None = None
) -> AltlasError:
    """The error `error_kind` named, built again (an unknown kind: a plain AltlasError)."""
    error = _KINDS.get(kind, AltlasError)
    if issubclass(error, OverloadedError):
        return error(message, retry_after_s or 1.0, field)
    return error(message, field)
