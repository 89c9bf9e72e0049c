"""The search collections over the engine transport (altlas.engine): an Engine on its own thread
keeping collections in a temporary folder, embedding with the real all-MiniLM-L6-v2 on the CPU,
a client on an event loop. Adding, searching, listing and removing answer as LocalModels does in
this process; errors arrive as the same AltlasError, naming the field."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from altlas.engine.client import EngineClient
from altlas.engine.core import Engine
from altlas.engine.local import LocalModels
from altlas.engine.thread_work import Keeps
from altlas.errors import InvalidInputError, NotFoundError
from altlas.orchestrator.backends import EmbeddingBackend
from altlas.orchestrator.serving import LoadedModels
from altlas.search.collections import Collections

from ..engine_threads import preloaded, serving

DOCUMENTS = [
    ("chrome", "Chrome'u aç ve hava durumunu ara"),
    ("shot", "ekran görüntüsü al"),
    ("mail", "send the report to Ayşe by email"),
]


@pytest.fixture
def models(minilm_backend: EmbeddingBackend) -> LoadedModels:
    return preloaded({"minilm": ("embedding", minilm_backend)})


def test_collections_through_an_engine_answer_as_here(models: LoadedModels, tmp_path: Path) -> None:
    local = LocalModels(models, Keeps(Collections(tmp_path / "local")))

    async def scenario(engine: Engine) -> None:
        answers = []
        async with EngineClient(engine.address) as remote:
            for service in (local, remote):
                added = await service.add_documents("komutlar", "minilm", DOCUMENTS, 60)
                assert (added.count, added.size) == (3, 3)
                hits = await service.search("komutlar", [DOCUMENTS[1][1], DOCUMENTS[2][1]], 2, 60)
                listed = await service.list_indexes()
                removed = await service.remove_documents("komutlar", ["mail", "nope"])
                after = await service.list_indexes()
                answers.append((hits.results, hits.model, listed.indexes, removed.count, after.indexes))
                assert hits.served.batch_size == 2 and hits.served.model_device == "cpu"
        assert answers[0] == answers[1]  # the same but for the request ids
        results, model, listed_indexes, removed_count, after_indexes = answers[1]
        assert [row[0][0] for row in results] == [
            "shot",
            "mail",
        ] and model == "minilm"  # each query is a document
        assert listed_indexes == [("komutlar", "minilm", 3)] and removed_count == 1
        assert after_indexes == [("komutlar", "minilm", 2)]

    with serving(models, f"ipc://{tmp_path}/engine-0", Keeps(Collections(tmp_path / "remote"))) as engine:
        asyncio.run(scenario(engine))


def test_collection_errors_arrive_as_the_same_altlas_errors(models: LoadedModels, tmp_path: Path) -> None:
    async def scenario(engine: Engine) -> None:
        async with EngineClient(engine.address) as client:
            with pytest.raises(NotFoundError, match="no collection named 'nope'") as unknown:
                await client.search("nope", ["x"], 3, 60)
            assert unknown.value.field == "index"
            await client.add_documents("bir", "minilm", DOCUMENTS[:1], 60)
            with pytest.raises(InvalidInputError, match="must be 1 to 1024, got 2000") as k:
                await client.search("bir", ["x"], 2000, 60)
            assert k.value.field == "k"
            with pytest.raises(InvalidInputError, match="must be 1-64 letters") as name:
                await client.add_documents("no spaces", "minilm", DOCUMENTS[:1], 60)
            assert name.value.field == "name"

    with serving(models, f"ipc://{tmp_path}/engine-1", Keeps(Collections(tmp_path / "c"))) as engine:
        asyncio.run(scenario(engine))

    async def refused(engine: Engine) -> None:
        async with EngineClient(engine.address) as client:
            with pytest.raises(InvalidInputError, match="keeps no search collections"):
                await client.list_indexes()

    with serving(models, f"ipc://{tmp_path}/engine-2") as bare:
        asyncio.run(refused(bare))
