from __future__ import annotations

import json
from pathlib import Path

import pytest

from altlas.errors import InvalidInputError, NotFoundError
from altlas.plans import plan_to_dict
from altlas.segmentation import segment_command
from altlas.storage import PlanStore, check_plan_id


def test_save_get_list_delete(tmp_path: Path) -> None:
    store = PlanStore(tmp_path)
    plans = [segment_command(f"Open app number {i}") for i in range(5)]
    store.save_many(plans)
    assert plan_to_dict(store.get(plans[2].id)) == plan_to_dict(plans[2])
    page = store.list(offset=0, limit=3)
    assert page.total == 5 and [s.id for s in page.items] == [p.id for p in reversed(plans)][:3]
    store.delete(plans[0].id)
    with pytest.raises(NotFoundError):
        store.get(plans[0].id)
    with pytest.raises(NotFoundError):
        store.delete(plans[0].id)
    assert len(store) == 4


def test_survives_restart_and_ignores_stray_files(tmp_path: Path) -> None:
    store = PlanStore(tmp_path)
    plan = segment_command("Open Firefox")
    store.save(plan)
    (store.directory / "notes.json").write_text("{}")
    (store.directory / ".tmp-123.json").write_text("{")
    reopened = PlanStore(tmp_path)
    assert len(reopened) == 1 and reopened.get(plan.id).command == "Open Firefox"


def test_writes_are_whole_files(tmp_path: Path) -> None:
    store = PlanStore(tmp_path)
    plan = segment_command("Open Firefox")
    store.save(plan)
    files = list(store.directory.iterdir())
    assert [f.name for f in files] == [f"{plan.id}.json"]  # no temporary file left behind
    assert json.loads(files[0].read_text())["id"] == plan.id


@pytest.mark.parametrize(
    "bad",
    ["../etc/passwd", "..", "a/b", "", "1234", "00000000-0000-0000-0000-000000000000/../x", "x" * 5000],
)
def test_ids_are_never_paths(tmp_path: Path, bad: str) -> None:
    store = PlanStore(tmp_path)
    with pytest.raises(InvalidInputError) as info:
        store.get(bad)
    assert info.value.field == "id"
    with pytest.raises(InvalidInputError):
        check_plan_id(bad)
