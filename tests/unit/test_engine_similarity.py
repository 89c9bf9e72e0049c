"""Command similarity over the engine transport and in this process alike (SimilarCommands,
Dedupe -> Result), with the real all-MiniLM-L6-v2 on the CPU. The index of stored commands
follows the plan files on disk, whoever writes them: plans saved, replaced and deleted through
another PlanStore (another API process) are found, or no longer found, by the next search."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from altlas.engine.client import EngineClient
from altlas.engine.local import LocalModels
from altlas.engine.service import ModelService
from altlas.engine.thread_work import Keeps
from altlas.errors import ModelUnavailableError
from altlas.orchestrator.backends import EmbeddingBackend
from altlas.orchestrator.command_model import CommandEmbedder
from altlas.orchestrator.serving import LoadedModels
from altlas.search.service import CommandSimilarity
from altlas.segmentation.segmenter import segment_command
from altlas.storage.plan_store import PlanStore

from ..engine_threads import preloaded, serving


@pytest.fixture
def models(minilm_backend: EmbeddingBackend) -> LoadedModels:
    return preloaded({"minilm": ("embedding", minilm_backend)})


@asynccontextmanager
async def service_of(
    where: str, models: LoadedModels, keeps: Keeps, tmp_path: Path
) -> AsyncIterator[ModelService]:
    if where == "local":
        yield LocalModels(models, keeps)
        return
    with serving(models, f"ipc://{tmp_path}/engine-0", keeps) as engine:
        async with EngineClient(engine.address) as client:
            yield client


@pytest.mark.parametrize("where", ["engine", "local"])
def test_similar_commands_follow_the_plan_files_whoever_writes_them(
    models: LoadedModels, tmp_path: Path, where: str
) -> None:
    similarity = CommandSimilarity(PlanStore(tmp_path), CommandEmbedder(models, "minilm"))
    writer = PlanStore(tmp_path)  # another process's store of the same plans
    report = segment_command("Download the quarterly sales report")
    writer.save(report)
    writer.save(segment_command("Play some relaxing jazz music"))

    async def scenario() -> None:
        async with service_of(where, models, Keeps(similarity=similarity), tmp_path) as service:
            hits = await service.similar_commands("download the sales report for this quarter", 2)
            assert [hit["plan_id"] for hit in hits][:1] == [report.id]
            assert hits[0]["command"] == report.command and 0 < hits[0]["score"] <= 1
            mail = segment_command("E-postayı Ayşe'ye gönder")
            writer.save(mail)  # seen at once: the folder changed
            assert (await service.similar_commands("Ayşe'ye e-posta gönder", 1))[0]["plan_id"] == mail.id
            writer.delete(report.id)
            _settle(writer)  # the folder's time stamp is old: only a change of it makes a new look
            hits = await service.similar_commands("download the sales report for this quarter", 3)
            assert report.id not in {hit["plan_id"] for hit in hits} and len(hits) == 2
            found = await service.dedupe(["open chrome", "Open Chrome", "play jazz"], 0.9)
            assert found["count"] == 3 and found["groups"] == [[0, 1]]
            assert [(pair["i"], pair["j"]) for pair in found["pairs"]] == [(0, 1)]

    asyncio.run(scenario())


@pytest.mark.parametrize("where", ["engine", "local"])
def test_without_an_index_of_commands_similarity_is_unavailable(
    models: LoadedModels, tmp_path: Path, where: str
) -> None:
    async def scenario() -> None:
        async with service_of(where, models, Keeps(), tmp_path) as service:
            with pytest.raises(ModelUnavailableError, match="no index of stored commands"):
                await service.similar_commands("x", 1)

    asyncio.run(scenario())


def _settle(store: PlanStore) -> None:
    """Date the plan folder's last change 10 s back, as if it had happened then."""
    stamp = store.directory.stat().st_mtime_ns - 10_000_000_000
    os.utime(store.directory, ns=(stamp, stamp))
