"""The GPU memory budget: what fits, which idle models are unloaded to make room, refusals; first
as arithmetic, then through the manager with a pretend GPU (a fixed budget, fake backends)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from altlas.errors import InvalidInputError
from altlas.orchestrator import manager as manager_module
from altlas.orchestrator.backends import BatchedBackend
from altlas.orchestrator.manager import InsufficientMemoryError, ModelManager
from altlas.orchestrator.memory import Resident, activation_reserve, plan_room
from altlas.orchestrator.registry import ModelSpec, Registry
from altlas.orchestrator.serving import Loaded
from altlas.scheduling.batcher import DynamicBatcher
from altlas.settings import Settings

GPU = torch.device("cuda:0")  # only a name here: nothing runs on it


def resident(name: str, size: int, last_used: float, pinned: bool = False, idle: bool = True) -> Resident:
    return Resident(name, size, pinned, idle, last_used)


def test_a_load_that_fits_unloads_nothing() -> None:
    room = plan_room(need=3_000, budget=10_000, residents=[resident("a", 5_000, 1.0)])
    assert room.fits and room.evict == () and room.reason.endswith(": fits")


def test_idle_unpinned_models_go_least_recently_used_first_and_only_as_many_as_needed() -> None:
    residents = [
        resident("newer", 3_000, 20.0),
        resident("oldest", 3_000, 10.0),
        resident("mid", 3_000, 15.0),
    ]
    room = plan_room(need=4_500, budget=10_000, residents=residents)  # 1,000 free: two must go
    assert room.fits and room.evict == ("oldest", "mid")
    assert "fits after unloading oldest, mid" in room.reason


def test_pinned_and_busy_models_stay_and_a_refusal_unloads_nothing_and_names_the_holders() -> None:
    residents = [
        resident("pinned", 4_000, 1.0, pinned=True),
        resident("busy", 3_000, 2.0, idle=False),
        resident("spare", 2_000, 3.0),
    ]
    room = plan_room(need=3_000 * 10**6, budget=10 * 10**9, residents=residents)
    assert room.fits and room.evict == ()  # the numbers above are bytes: plenty of room
    room = plan_room(need=4_000, budget=10_000, residents=residents)
    assert not room.fits and room.evict == ()  # "spare" alone frees 3,000 of the 4,000: keep it
    assert "GPU budget" in room.reason and "does not fit" in room.reason
    assert "pinned 0.00 GB (pinned)" in room.reason and "busy 0.00 GB (in use)" in room.reason
    assert plan_room(need=11_000, budget=10_000, residents=[]).fits is False


def test_the_activation_reserve_follows_the_batch_and_the_hidden_size(tmp_path: Path) -> None:
    folder = tmp_path / "encoder"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"hidden_size": 384}))
    budget = 10**12
    assert activation_reserve("embedding", folder, 1_000, budget) == 1_000 * 384 * 16 * 4
    assert activation_reserve("embedding", tmp_path, 1_000, budget) == 0  # no config.json: measured later
    images = activation_reserve("image-classification", tmp_path / "m.pth", 10_000, budget)
    assert images == activation_reserve("image-classification", tmp_path / "m.pth", 64, budget) > 0
    assert activation_reserve("generation", tmp_path, 32_768, budget) == 0  # its KV cache is measured
    # a batch past a quarter of the budget is split when it runs out of memory: no bigger reserve
    assert activation_reserve("embedding", folder, 4_000_000, 8 * 10**9) == 2 * 10**9


def test_pinned_is_a_checked_registry_field() -> None:
    base = {"name": "m", "task": "audio-vad", "versions": "m.jit"}
    assert ModelSpec.from_dict({**base, "pinned": True}).pinned is True
    assert ModelSpec.from_dict(base).pinned is False
    with pytest.raises(InvalidInputError) as bad:
        ModelSpec.from_dict({**base, "pinned": "yes"})
    assert bad.value.field == "model.pinned"


# the manager, with a pretend GPU


class FakeBackend(BatchedBackend[int, int]):
    """A batched model whose queue holds `in_flight` requests, and runs nothing."""

    task = "audio-vad"

    def __init__(self, in_flight: int = 0) -> None:
        self.device = torch.device("cpu")  # unloading it touches no real GPU
        self.batcher = SimpleNamespace(in_flight=lambda: in_flight)  # type: ignore[assignment]
        self.replica = None
        self.closed = False

    def warmup(self, inputs: list[str]) -> None:
        pass

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def manager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModelManager:
    manager = ModelManager(Registry(tmp_path / "models.yaml"), Settings(data_dir=tmp_path))
    monkeypatch.setattr(manager, "_budget", lambda device: 10_000)
    weights = tmp_path / "new.jit"
    weights.write_bytes(b"\0" * 2_900)  # 3,480 bytes with the estimate's fifth
    for name, pinned in (("old", False), ("recent", False), ("pinned", True), ("busy", False)):
        manager.register(ModelSpec(name, "audio-vad", "silero", {"1": str(weights)}, "1", pinned=pinned))
    manager.register(ModelSpec("new", "audio-vad", "silero", {"1": str(weights)}, "1", device="cuda"))
    return manager


def put_on_gpu(
    manager: ModelManager, name: str, size: int, last_used: float, in_flight: int = 0
) -> FakeBackend:
    backend = FakeBackend(in_flight)
    manager.loaded.publish(name, Loaded(backend, "1", "cuda:0 Pretend GPU", size))
    manager._entries[name].status = "loaded"
    manager.loaded.usage(name).last_used = last_used
    return backend


def test_a_gpu_load_unloads_the_least_recently_used_idle_model_and_counts_it(manager: ModelManager) -> None:
    now = time.time()
    old = put_on_gpu(manager, "old", 2_500, now - 100)
    recent = put_on_gpu(manager, "recent", 2_500, now - 50)
    put_on_gpu(manager, "pinned", 2_500, now - 1_000)
    put_on_gpu(manager, "busy", 1_500, now - 2_000, in_flight=1)  # 1,000 free; "old" frees 2,500
    spec = manager.registry.get("new")
    device, why, reserve = manager._place(spec, Path(spec.source), GPU, insist=True)
    assert device == GPU and reserve == 0 and "fits after unloading old" in why
    assert old.closed and not recent.closed
    assert (
        manager.status("old")["status"] == "unloaded"
        and "make room for 'new'" in manager.status("old")["placement"]
    )
    report = manager.memory_report()
    assert report["counters"] == {
        "loads": 0,  # the residents were put in place by hand, not loaded
        "unloads": 1,
        "evictions": 1,
        "refusals": 0,
        "cpu_fallbacks": 0,
        "oom_splits": 0,
        "spillovers": 0,
    }
    (card,) = report["devices"]
    assert card["device"] == "cuda:0" and card["budget_bytes"] == 10_000 and card["accounted_bytes"] == 6_500
    assert {m["name"] for m in card["models"]} == {"recent", "pinned", "busy"}


def test_no_room_refuses_an_explicit_gpu_load_and_sends_auto_to_the_cpu(
    manager: ModelManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_on_gpu(manager, "pinned", 5_000, 0.0)
    busy = put_on_gpu(manager, "busy", 3_000, 0.0, in_flight=2)
    monkeypatch.setattr(manager_module, "resolve_device", lambda policy: GPU)  # as if a card were here
    with pytest.raises(InsufficientMemoryError) as refused:
        manager.load("new")
    message = refused.value.message
    assert "not enough GPU memory on cuda:0" in message and "does not fit" in message
    assert "pinned" in message and "busy" in message and not busy.closed
    assert manager.status("new")["status"] == "failed"
    spec = manager.registry.get("new")
    device, why, _ = manager._place(spec, Path(spec.source), GPU, insist=False)
    assert device == torch.device("cpu") and why.startswith("on the CPU: ")
    assert manager.memory_report()["counters"]["refusals"] == 1
    assert manager.memory_report()["counters"]["cpu_fallbacks"] == 1


def test_oom_splits_are_summed_over_batchers_and_kept_after_an_unload(manager: ModelManager) -> None:
    backend = put_on_gpu(manager, "old", 100, 0.0)
    batcher: DynamicBatcher[int, list[int], int] = DynamicBatcher("oom", list, list)
    backend.batcher = batcher
    batcher.stats.oom_splits = 3  # as if three batches had been split
    assert manager.memory_report()["counters"]["oom_splits"] == 3
    assert manager.status("old")["oom_splits"] == 3
    manager.unload("old")
    batcher.close()
    assert manager.memory_report()["counters"]["oom_splits"] == 3  # counters never go down
