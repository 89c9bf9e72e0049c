"""Issue 16 items 8, 9, 13 in the stores themselves: batches whole or not at all, damaged entries
skipped and counted, damaged stores refused at opening and left as they are, names matched whole."""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
import uuid
from pathlib import Path

import numpy as np
import pytest

from altlas.errors import InvalidInputError, NotFoundError
from altlas.jobs.store import JobStatus, JobStore
from altlas.search.collections import Collections, Document
from altlas.segmentation import segment_command
from altlas.segmentation.segmenter import SegmentationOptions
from altlas.segmentation.service import SegmentationService
from altlas.storage import PlanStore, plan_store
from altlas.storage.damage import DamagedEntryError, DamagedStoreError, damaged_entries_metrics
from altlas.storage.plan_store import UnstorablePlanError

# --- plans: a batch is stored whole or not at all -------------------------------------------------


def test_a_plan_that_cannot_be_json_stops_the_batch_before_any_write(tmp_path: Path) -> None:
    store = PlanStore(tmp_path)
    good = segment_command("open chrome")
    bad_text = dataclasses.replace(segment_command("open mail"), command="open \ud800 mail")
    bad_number = dataclasses.replace(segment_command("open mail"), metadata={"x": math.nan})
    for bad, field in ((bad_text, "command"), (bad_number, "metadata")):
        with pytest.raises(UnstorablePlanError) as info:
            store.save_many([good, bad])
        assert (info.value.index, info.value.field) == (1, field)
        assert list(store.directory.iterdir()) == [] and len(store) == 0


def test_a_write_that_fails_midway_removes_what_the_batch_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = PlanStore(tmp_path)
    kept = segment_command("open the old one")
    store.save(kept)
    writes = 0
    real_write = plan_store.write_atomically

    def disk_full_on_the_third(path: Path, data: bytes | str) -> None:
        nonlocal writes
        writes += 1
        if writes == 3:
            raise OSError(28, "No space left on device")
        real_write(path, data)

    monkeypatch.setattr(plan_store, "write_atomically", disk_full_on_the_third)
    with pytest.raises(OSError):
        store.save_many([segment_command(f"open app {i}") for i in range(3)])
    assert [p.name for p in store.directory.iterdir()] == [f"{kept.id}.json"]
    assert [s.id for s in store.list().items] == [kept.id]


def test_the_service_names_the_command_whose_plan_cannot_be_stored(tmp_path: Path) -> None:
    service = SegmentationService(PlanStore(tmp_path))
    with pytest.raises(InvalidInputError) as info:
        service.segment_batch(["open chrome", "open \ud800 chrome"], SegmentationOptions(seed=1))
    assert info.value.field == "commands[1]" and "not valid Unicode" in info.value.message
    assert len(service.store) == 0


# --- plans: damaged files ---------------------------------------------------------------------------


def test_damaged_plan_files_are_skipped_counted_and_refused_alone(tmp_path: Path) -> None:
    store = PlanStore(tmp_path)
    good = segment_command("open chrome")
    store.save(good)
    invalid, not_json = str(uuid.uuid4()), str(uuid.uuid4())
    (store.directory / f"{invalid}.json").write_text(json.dumps({"id": invalid}))
    (store.directory / f"{not_json}.json").write_bytes(b"\xff{")
    store = PlanStore(tmp_path)  # as after a restart
    for _ in range(2):
        page = store.list()
        assert [s.id for s in page.items] == [good.id] and page.damaged == 2 and page.total == 3
    for plan_id in (invalid, not_json):
        with pytest.raises(DamagedEntryError) as info:
            store.get(plan_id)
        assert isinstance(info.value, NotFoundError) and info.value.field == "id"
    assert store.commands() == [(good.id, "open chrome")]
    assert store.damaged.count == 2  # each counted once, however often it is seen


# --- jobs: damaged rows -----------------------------------------------------------------------------


def damage(path: Path, job_id: str, column: str, value: object) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(f"UPDATE jobs SET {column} = ? WHERE id = ?", (value, job_id))
    conn.close()


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("input", "{not json"),
        ("status", "exploded"),
        ("created_at", "yesterday"),
        ("expires_at", math.inf),
        ("result", '{"x": NaN}'),
        ("result", "[1, 2]"),
        ("result_file", "../../etc/passwd"),
    ],
)
def test_a_damaged_job_row_is_skipped_counted_and_refused_alone(
    tmp_path: Path, column: str, value: object
) -> None:
    path = tmp_path / "jobs.sqlite3"
    with JobStore(path) as store:
        jobs = [store.submit("k", {"n": i})[0] for i in range(3)]
        for _ in jobs:
            claimed = store.claim_next()
            assert claimed is not None
            store.succeed(claimed.id, {"ok": True})
    damage(path, jobs[1].id, column, value)
    with JobStore(path) as store:
        page = store.page(limit=2)
        assert [job.id for job in page.jobs] == [jobs[2].id] and page.damaged == 1
        assert page.next is not None
        rest = store.page(limit=2, after=page.next)
        assert [job.id for job in rest.jobs] == [jobs[0].id] and rest.damaged == 0
        with pytest.raises(DamagedEntryError):
            store.get(jobs[1].id)
        assert store.damaged.count == 1


def test_a_damaged_queued_job_is_failed_instead_of_run(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    with JobStore(path) as store:
        first, second = store.submit("k", {"n": 1})[0], store.submit("k", {"n": 2})[0]
    damage(path, first.id, "input", "{not json")
    with JobStore(path) as store:
        claimed = store.claim_next()
        assert claimed is not None and claimed.id == second.id
        assert store.claim_next() is None
    with sqlite3.connect(path) as conn:
        status, error = conn.execute("SELECT status, error FROM jobs WHERE id = ?", (first.id,)).fetchone()
    conn.close()
    assert status == JobStatus.FAILED and json.loads(error)["code"] == "damaged"


# --- stores that cannot be opened -------------------------------------------------------------------


def test_a_file_that_is_not_a_job_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    garbage = uuid.uuid4().bytes * 500
    path.write_bytes(garbage)
    with pytest.raises(DamagedStoreError) as info:
        JobStore(path)
    assert str(path) in info.value.message and "Move it aside" in info.value.message
    assert path.read_bytes() == garbage


def test_a_job_database_of_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(DamagedStoreError) as info:
        JobStore(path)
    assert "schema 99" in info.value.message


def unit(rows: int) -> np.ndarray:
    vectors = np.random.default_rng(0).standard_normal((rows, 8)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.mark.parametrize(("name", "content"), [("collection.json", b"{"), ("vectors.npz", b"PK\x03\x04")])
def test_a_damaged_collection_is_refused_and_left_alone(tmp_path: Path, name: str, content: bytes) -> None:
    Collections(tmp_path).add("docs", [Document("1", "open the door")], "m", lambda texts: unit(len(texts)))
    folder = tmp_path / "docs"
    (folder / name).write_bytes(content)
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    with pytest.raises(DamagedStoreError) as info:
        Collections(tmp_path)
    assert str(folder / name) in info.value.message
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before


def test_a_collection_name_must_match_whole(tmp_path: Path) -> None:
    collections = Collections(tmp_path)
    for name in ("abc\n", "abc\n\n", "\nabc", "a/b"):
        with pytest.raises(InvalidInputError) as info:
            collections.add(name, [Document("1", "x")], "m", lambda texts: unit(len(texts)))
        assert info.value.field == "name"
    assert list(tmp_path.iterdir()) == []


# --- the metric ---------------------------------------------------------------------------------------


def test_damaged_entries_are_a_counter_per_store(tmp_path: Path) -> None:
    plans = PlanStore(tmp_path)
    (plans.directory / f"{uuid.uuid4()}.json").write_text("nope")
    plans = PlanStore(tmp_path)
    plans.list()
    with JobStore(tmp_path / "jobs.sqlite3") as jobs:
        (family,) = damaged_entries_metrics(plans.damaged, jobs.damaged)
    assert family.name == "altlas_damaged_entries" and family.type == "counter"
    assert {(s.labels["store"], s.value) for s in family.samples if s.name.endswith("_total")} == {
        ("alt-files", 1.0),
        ("jobs", 0.0),
    }
