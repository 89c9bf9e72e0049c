"""Accuracy on command sets written independently of the implementation, from the contract alone.

The sets live in tests/data/*.jsonl: one command per line with the expected types and
which segments are parallel. The bar is exact per-command agreement (all types, all
dependencies); each set has its own floor, set just under what the segmenter reaches
so that a regression fails.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from altlas.segmentation import segment_command

DATA = Path(__file__).parent.parent / "data"
FLOORS = {
    "segmentation_eval.jsonl": 0.98,
    "segmentation_eval_hard.jsonl": 0.98,
    "segmentation_eval_colloquial.jsonl": 0.98,
    "segmentation_eval_plain.jsonl": 0.98,
    # Issue 19: commands built around verb-first Turkish, subordinate and gerund clauses,
    # polite frames and unknown verbs; and ordinary ones that use the same words
    # ("after the meeting", "Yaz fotoğrafları") with nothing to split.
    "segmentation_eval_clauses.jsonl": 0.95,
    "segmentation_eval_clauses_plain.jsonl": 0.98,
}


def _agrees(row: dict[str, object]) -> bool:
    plan = segment_command(str(row["command"]))
    types = [s.task_type.value for s in plan.segments]
    parallel = [
        i > 0 and plan.segments[i].dependencies != [plan.segments[i - 1].id]
        for i in range(len(plan.segments))
    ]
    return types == row["types"] and parallel == row["parallel"] and plan.language.value == row["language"]


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_eval_set_accuracy(name: str) -> None:
    path = DATA / name
    if not path.exists():
        pytest.fail(f"missing data set {path}")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    misses = [row["command"] for row in rows if not _agrees(row)]
    accuracy = 1 - len(misses) / len(rows)
    assert accuracy >= FLOORS[name], f"{accuracy:.3f} < {FLOORS[name]}; misses: {misses[:10]}"
