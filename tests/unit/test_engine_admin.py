"""The model registry's operations over the engine transport (Admin -> Result) and in this
process (LocalModels) alike: list, status, load, unload, activate, register; the manager's
errors arrive as the same AltlasError; an engine without a manager says so."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest

from altlas.engine.client import EngineClient
from altlas.engine.local import LocalModels
from altlas.engine.messages import REPLIES, REQUESTS, Admin, Result, encode
from altlas.engine.service import ModelService
from altlas.engine.thread_work import Keeps
from altlas.errors import InvalidInputError, ModelUnavailableError, NotFoundError
from altlas.observability.models import model_side_metrics
from altlas.orchestrator.manager import ModelManager

from ..engine_threads import serving
from .test_serving import manager

__all__ = ["manager"]


@asynccontextmanager
async def service_of(where: str, manager: ModelManager, tmp_path: Path) -> AsyncIterator[ModelService]:
    if where == "local":
        yield LocalModels(manager.loaded, Keeps(manager=manager, metrics=model_side_metrics(manager)))
        return
    keeps = Keeps(manager=manager, metrics=model_side_metrics(manager))
    with serving(manager.loaded, f"ipc://{tmp_path}/engine-0", keeps) as engine:
        async with EngineClient(engine.address) as client:
            yield client


def test_admin_messages_round_trip_as_tagged_arrays() -> None:
    request = Admin(
        4, "req-1", "register", spec='{"name": "x", "versions": {"1": "a"}, "big": -18446744073709551616}'
    )
    assert REQUESTS.decode(encode(request)) == request
    reply = Result(4, {"name": "x", "status": "loaded", "gpu_bytes": 0, "versions": ["1"], "last": None})
    assert REPLIES.decode(encode(reply)) == reply
    assert isinstance(msgspec.msgpack.decode(encode(request)), list)


@pytest.mark.parametrize("where", ["engine", "local"])
def test_the_registry_is_administered_alike_in_an_engine_and_in_process(
    manager: ModelManager,
    tmp_path: Path,
    where: str,
) -> None:
    async def scenario() -> None:
        async with service_of(where, manager, tmp_path) as service:
            listed = await service.admin("list")
            assert [status["name"] for status in listed["models"]] == manager.names()
            assert listed["memory"] == _plain(manager.memory_report())
            assert (await service.admin("status", "vad"))["status"] == manager.status("vad")["status"]
            loaded = await service.admin("load", "vad")
            assert loaded["status"] == "loaded" and manager.status("vad")["status"] == "loaded"
            assert (await service.admin("activate", "vad", "2"))["active_version"] == "2"
            stats = (await service.stats()).decode()  # the models' metrics, as the API's /metrics shows them
            assert (
                'altlas_models_loaded{device="cpu"} 1.0' in stats
                and 'altlas_model_requests_total{model="vad"}' in stats
            )
            assert (await service.admin("unload", "vad"))["status"] != "loaded"
            assert 'altlas_models_loaded{device="cpu"}' not in (await service.stats()).decode()
            with pytest.raises(NotFoundError) as unknown:
                await service.admin("status", "nope")
            assert unknown.value.field == "model"
            for spec in ({"name": 5}, {"name": "x", "big": -(2**64), "deep": [[{"": 1e300}]]}):
                with pytest.raises(InvalidInputError) as bad:  # any JSON reaches the registry's checks
                    await service.admin("register", spec=spec)
                assert bad.value.field is not None and bad.value.field.startswith("body")
            with pytest.raises(InvalidInputError, match="unknown operation 'reboot'"):
                await service.admin("reboot")

    asyncio.run(scenario())


def test_an_engine_without_a_manager_says_it_manages_no_models(manager: ModelManager, tmp_path: Path) -> None:
    async def scenario() -> None:
        with serving(manager.loaded, f"ipc://{tmp_path}/engine-1") as engine:
            async with EngineClient(engine.address) as client:
                with pytest.raises(ModelUnavailableError, match="manages no models"):
                    await client.admin("list")
                assert await client.stats() == b""  # and keeps no metrics

    asyncio.run(scenario())


def _plain(data: Any) -> Any:
    """`data` as it comes out of MessagePack (tuples as lists)."""
    return msgspec.msgpack.decode(msgspec.msgpack.encode(data))
