"""The model registry over HTTP: list, inspect, register, load, unload, activate a version.

GET /v1/models and GET /v1/models/{name} keep OpenAI's model shape (id, object, created,
owned_by) so OpenAI clients can list and retrieve; the registry's view of each model
(status, device, GPU bytes, versions, last use, requests served) is under "altlas"; the list's
own "altlas" object holds the GPU memory report (per card: budget, what each model accounts
for; counters of evictions, refusals, CPU fallbacks, OOM batch splits and spill-overs).

Registering, loading, unloading and activating administer the server: with API keys set they
need an admin key (ApiKeys, in altlas.api.middleware, the one place keys are checked), and a
registration's files must lie under the model roots (ModelManager.register_from_client).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from altlas.orchestrator.manager import ModelManager

__all__ = ["models_router"]


def model_object(status: dict[str, Any], created: int) -> dict[str, Any]:
    return {
        "id": status["name"],
        "object": "model",
        "created": created,
        "owned_by": "altlas",
        "altlas": status,
    }


def models_router(manager: ModelManager, started: int) -> APIRouter:
    router = APIRouter(prefix="/v1/models", tags=["models"])

    @router.get("", summary="The registered models (OpenAI list shape, status under 'altlas')")
    def list_models() -> dict[str, Any]:
        data = [model_object(manager.status(name), started) for name in manager.names()]
        return {"object": "list", "data": data, "altlas": {"memory": manager.memory_report()}}

    @router.get("/{name}", summary="One model: status, device, GPU bytes, versions, usage")
    def get_model(name: str) -> dict[str, Any]:
        return model_object(manager.status(name), started)

    @router.post("", summary="Register a model (or add versions to one)", status_code=201)
    def register(body: dict[str, Any]) -> dict[str, Any]:
        return model_object(manager.register_from_client(body, where="body"), started)

    @router.post("/{name}/load", summary="Load and warm up the active version")
    async def load(name: str) -> dict[str, Any]:
        return model_object(await run_in_threadpool(manager.load, name), started)

    @router.post("/{name}/unload", summary="Unload; shows the GPU memory before and after")
    async def unload(name: str) -> dict[str, Any]:
        return model_object(await run_in_threadpool(manager.unload, name), started)

    @router.post(
        "/{name}/versions/{version}/activate",
        summary="Serve another version (swapped without dropping requests)",
    )
    async def activate(name: str, version: str) -> JSONResponse:
        status = await run_in_threadpool(manager.activate, name, version)
        return JSONResponse(model_object(status, started))

    return router
