"""The model registry over HTTP: list, inspect, register, load, unload, activate a version.

GET /v1/models and GET /v1/models/{name} keep OpenAI's model shape (id, object, created,
owned_by) so OpenAI clients can list and retrieve; the registry's view of each model
(status, device, GPU bytes, versions, last use, requests served) is under "altlas"; the list's
own "altlas" object holds the GPU memory report (per card: budget, what each model accounts
for; counters of evictions, refusals, CPU fallbacks, OOM batch splits and spill-overs).

Registering, loading, unloading and activating administer the server: with API keys set they
need an admin key (ApiKeys, in altlas.api.admission, the one place keys are checked), and a
registration's files must lie under the model roots (ModelManager.register_from_client).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from altlas.engine.service import ModelService
from altlas.logs import request_id_var

__all__ = ["models_router"]


def model_object(status: dict[str, Any], created: int) -> dict[str, Any]:
    return {
        "id": status["name"],
        "object": "model",
        "created": created,
        "owned_by": "altlas",
        "altlas": status,
    }


def models_router(service: ModelService, started: int) -> APIRouter:
    """The routes, over the models' `service` (whose manager keeps the registry)."""
    router = APIRouter(prefix="/v1/models", tags=["models"])

    async def admin(op: str, name: str = "", version: str = "", spec: Any = None) -> Any:
        return await service.admin(op, name, version, spec, request_id_var.get() or "")

    @router.get("", summary="The registered models (OpenAI list shape, status under 'altlas')")
    async def list_models() -> dict[str, Any]:
        listed = await admin("list")
        data = [model_object(status, started) for status in listed["models"]]
        return {"object": "list", "data": data, "altlas": {"memory": listed["memory"]}}

    @router.get("/{name}", summary="One model: status, device, GPU bytes, versions, usage")
    async def get_model(name: str) -> dict[str, Any]:
        return model_object(await admin("status", name), started)

    @router.post("", summary="Register a model (or add versions to one)", status_code=201)
    async def register(body: dict[str, Any]) -> dict[str, Any]:
        return model_object(await admin("register", spec=body), started)

    @router.post("/{name}/load", summary="Load and warm up the active version")
    async def load(name: str) -> dict[str, Any]:
        return model_object(await admin("load", name), started)

    @router.post("/{name}/unload", summary="Unload; shows the GPU memory before and after")
    async def unload(name: str) -> dict[str, Any]:
        return model_object(await admin("unload", name), started)

    @router.post(
        "/{name}/versions/{version}/activate",
        summary="Serve another version (swapped without dropping requests)",
    )
    async def activate(name: str, version: str) -> dict[str, Any]:
        return model_object(await admin("activate", name, version), started)

    return router
