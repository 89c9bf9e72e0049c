"""The request path (altlas.orchestrator.serving): leases of loaded models, with no loading code
on the way; a model that is not loaded goes through the loader once; what the manager publishes
on load, version swap and unload is what requests find next."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from altlas.errors import ModelUnavailableError, NotFoundError, WrongTaskError
from altlas.orchestrator import manager as manager_module
from altlas.orchestrator.manager import ModelManager
from altlas.orchestrator.registry import ModelSpec, Registry
from altlas.orchestrator.serving import Loaded, LoadedModels
from altlas.settings import Settings

from .test_memory import FakeBackend


def refuse_to_load(name: str) -> None:
    raise AssertionError(f"the request path tried to load {name!r}")


def test_a_loaded_model_is_leased_without_loading_and_counted() -> None:
    models = LoadedModels(refuse_to_load)
    models.add("vad", "audio-vad")
    backend = FakeBackend()
    models.publish("vad", Loaded(backend, "1", "cpu", 0))  # type: ignore[arg-type]
    first = models.lease_if_loaded("vad", "audio-vad")
    second = models.lease("vad", "audio-vad")
    assert first is not None and first.backend is backend and first.device == "cpu" and first.name == "vad"
    assert second.backend is backend
    usage = models.usage("vad")
    assert usage.requests == 2 and usage.last_used is not None


def test_unknown_names_and_wrong_tasks_are_refused_as_before() -> None:
    models = LoadedModels(refuse_to_load)
    models.add("vad", "audio-vad")
    for lease in (models.lease_if_loaded, models.lease):
        with pytest.raises(NotFoundError, match="no model named 'nope'; GET /v1/models lists them"):
            lease("nope", "audio-vad")
    assert models.lease_if_loaded("vad", "embedding") is None  # not loaded: the worker thread tells
    with pytest.raises(WrongTaskError, match="model 'vad' does audio-vad, not embedding"):
        models.lease("vad", "embedding")  # before anything loads
    models.publish("vad", Loaded(FakeBackend(), "1", "cpu", 0))  # type: ignore[arg-type]
    with pytest.raises(WrongTaskError) as wrong:
        models.lease_if_loaded("vad", "embedding")
    assert wrong.value.field == "model" and models.usage("vad").requests == 0


def test_a_model_not_loaded_goes_through_the_loader_once() -> None:
    asked: list[str] = []
    backend = FakeBackend()

    def load(name: str) -> None:
        asked.append(name)
        models.publish(name, Loaded(backend, "1", "cpu", 0))  # type: ignore[arg-type]

    models = LoadedModels(load)
    models.add("vad", "audio-vad")
    assert models.lease_if_loaded("vad", "audio-vad") is None
    assert models.lease("vad", "audio-vad").backend is backend
    assert models.lease("vad", "audio-vad").backend is backend
    assert asked == ["vad"]


def test_a_model_unloaded_while_its_load_ran_is_unavailable() -> None:
    models = LoadedModels(lambda name: None)  # "loaded", then unloaded before the lease
    models.add("vad", "audio-vad")
    with pytest.raises(ModelUnavailableError, match="was unloaded; load it again"):
        models.lease("vad", "audio-vad")


def test_publish_and_withdraw_hand_back_what_was_served() -> None:
    models = LoadedModels(refuse_to_load)
    models.add("vad", "audio-vad")
    old, new = Loaded(FakeBackend(), "1", "cpu", 0), Loaded(FakeBackend(), "2", "cpu", 0)  # type: ignore[arg-type]
    assert models.publish("vad", old) is None
    assert models.publish("vad", new) is old
    models.add("vad", "audio-vad")  # registered again (more versions): what is served stays
    assert models.get("vad") is new
    assert models.withdraw("vad") is new and models.get("vad") is None
    assert models.withdraw("vad") is None


# the manager publishes; requests find what it published


@pytest.fixture
def manager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModelManager:
    """A manager whose loads build fake backends on the CPU (no file is read)."""
    manager = ModelManager(Registry(tmp_path / "models.yaml"), Settings(data_dir=tmp_path, device="cpu"))
    manager.register(ModelSpec("vad", "audio-vad", "silero", {"1": "a.jit", "2": "b.jit"}, "1"))

    def build(spec: ModelSpec) -> Any:
        return manager_module._Built(FakeBackend(), "cpu", 0, 0, 1.0, 1.0)

    monkeypatch.setattr(manager, "_build", build)
    return manager


def test_the_manager_publishes_loads_swaps_and_unloads(manager: ModelManager) -> None:
    models = manager.loaded
    assert models.lease_if_loaded("vad", "audio-vad") is None
    lease = models.lease("vad", "audio-vad")  # loaded for the request
    first = lease.backend
    assert manager.status("vad")["loaded_version"] == "1" and manager.status("vad")["requests"] == 1
    manager.activate("vad", "2")  # a swap: the new version is served, the old one closed
    swapped = models.lease_if_loaded("vad", "audio-vad")
    assert swapped is not None and swapped.backend is not first and first.closed  # type: ignore[attr-defined]
    assert manager.status("vad")["loaded_version"] == "2" and manager.status("vad")["requests"] == 2
    manager.unload("vad")
    assert models.get("vad") is None and swapped.backend.closed  # type: ignore[attr-defined]
    assert manager.status("vad")["status"] == "unloaded" and manager.status("vad")["requests"] == 2


def test_a_request_for_a_loaded_model_runs_no_placement_or_loading_code(
    manager: ModelManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager.load("vad")
    for step in ("load", "_build", "_place", "_evict", "_residents"):
        monkeypatch.setattr(manager, step, lambda *args, _step=step: refuse_to_load(_step))
    lease = manager.loaded.lease("vad", "audio-vad")
    assert manager.loaded.lease_if_loaded("vad", "audio-vad") is not None
    assert lease.device == "cpu" and lease.backend.device == torch.device("cpu")


# the command embedding model: leased like any other, from where ALTLAS_EMBEDDING_MODEL says


def test_the_command_embedding_model_loads_from_the_embedding_model_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my-minilm").mkdir()
    monkeypatch.chdir(tmp_path)  # a relative folder is the working directory's, as for `altlas embed`
    settings = Settings(data_dir=tmp_path / "data", device="cpu", embedding_model="my-minilm")
    manager = ModelManager(Registry(tmp_path / "data" / "models.yaml"), settings)  # the default registry
    built: list[Path] = []

    def construct(spec: ModelSpec, path: Path, device: torch.device) -> FakeBackend:
        built.append(path)
        return FakeBackend()

    monkeypatch.setattr(manager, "_construct", construct)
    manager.load(settings.command_embedding_model)
    assert built == [tmp_path / "my-minilm"]
    assert manager.status("all-minilm-l6-v2")["status"] == "loaded"


def test_a_command_embedding_model_that_is_not_registered_is_unavailable(manager: ModelManager) -> None:
    from altlas.orchestrator.command_model import CommandEmbedder

    embedder = CommandEmbedder(manager.loaded, "no-such-model")
    with pytest.raises(ModelUnavailableError, match="'no-such-model' is not registered"):
        embedder.leased()
