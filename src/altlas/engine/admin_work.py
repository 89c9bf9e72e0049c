"""The model registry's operations, wherever the models live (an engine process, or the API's own
process): an Admin message in, a Result with the manager's own data out. Run on a worker thread:
a load takes seconds."""

from __future__ import annotations

import json
from typing import Any

from altlas.engine import messages as wire
from altlas.errors import InvalidInputError, ModelUnavailableError
from altlas.orchestrator.manager import ModelManager

__all__ = ["ADMIN_OPS", "admin_work"]

ADMIN_OPS = ("list", "status", "register", "load", "unload", "activate")


def admin_work(message: wire.Admin, manager: ModelManager | None) -> wire.Result:
    """`message`'s Result: list gives {"models": [status...], "memory": the memory report}; the
    others one model's status after the operation."""
    if manager is None:
        raise ModelUnavailableError("this engine manages no models", field="model")
    return wire.Result(message.id, _payload(message, manager))


def _payload(message: wire.Admin, manager: ModelManager) -> Any:
    name = message.name
    match message.op:
        case "list":
            return {"models": [manager.status(n) for n in manager.names()], "memory": manager.memory_report()}
        case "status":
            return manager.status(name)
        case "register":
            return manager.register_from_client(json.loads(message.spec or "null"), where="body")
        case "load":
            return manager.load(name)
        case "unload":
            return manager.unload(name)
        case "activate":
            return manager.activate(name, message.version)
    raise InvalidInputError(f"unknown operation {message.op!r}; known: {', '.join(ADMIN_OPS)}", field="op")
