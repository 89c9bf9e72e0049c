"""The exceptions altlas raises on bad input; the CLI and the HTTP API translate them at their door.

AltlasError
├── InvalidInputError        input that breaks a rule; names the offending field
│   ├── InvalidPlanError     an ALT plan that is not valid (unknown dependency, cycle, ...)
│   └── InputTooLargeError   a command or a batch over its size limit
├── NotFoundError            no such stored plan
├── OverloadedError          a queue is full: try again after `retry_after_s` (HTTP 429)
├── TimedOutError            the request's time ran out before its answer (HTTP 504)
└── SlowRequestError         the client did not send its request in time (HTTP 408)
"""

from __future__ import annotations

__all__ = [
    "AltlasError",
    "InputTooLargeError",
    "InvalidInputError",
    "InvalidPlanError",
    "NotFoundError",
    "OverloadedError",
    "SlowRequestError",
    "TimedOutError",
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


class NotFoundError(AltlasError):
    """No stored object with that id."""


class OverloadedError(AltlasError):
    """Work refused because a bounded queue is full; nothing was accepted, so nothing is lost."""

    def __init__(self, message: str, retry_after_s: float, field: str | None = None) -> None:
        super().__init__(message, field)
        self.retry_after_s = retry_after_s


class TimedOutError(AltlasError):
    """The request's time limit passed before its answer was ready."""


class SlowRequestError(AltlasError):
    """The client took longer than the server waits to send its request's body."""
