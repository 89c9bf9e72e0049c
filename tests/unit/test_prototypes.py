"""The embedding stage of bulk segmentation: undecided segments get the nearest task-type prototype."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from altlas.embeddings import Embedder
from altlas.plans import plan_from_dict
from altlas.segmentation.prototypes import MIN_SIMILARITY, TypePrototypes

from ..embedding_cases import model_path


@pytest.fixture(scope="module")
def prototypes() -> TypePrototypes:
    return TypePrototypes(Embedder(model_path(), device="cpu").encode)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("capture what is on my display", "screenshot"),
        ("get the attachment from the internet", "download"),
        ("erase everything in the temp folder", "delete"),
        ("crank up the volume", "execute"),
    ],
)
def test_nearest_prototype(prototypes: TypePrototypes, text: str, expected: str) -> None:
    ((task_type, similarity),) = prototypes.nearest([text])
    assert task_type.value == expected and similarity >= MIN_SIMILARITY


def test_bulk_with_embeddings_retypes_only_undecided_segments(tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text(
        "Open Spotify and turn up the volume\nMute the microphone, then open Zoom\nSearch for cats\n",
        encoding="utf-8",
    )
    command = [sys.executable, "-m", "altlas", "segment", "--input", str(source), "--format", "jsonl"]
    result = subprocess.run(
        [*command, "--embeddings"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "ALTLAS_DEVICE": "cpu"},
    )
    assert result.returncode == 0, result.stderr
    plans = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(plans) == 3
    for plan in plans:
        plan_from_dict(plan)  # still valid, priorities recomputed
    volume = plans[0]["segments"][1]
    assert volume["metadata"]["classified_by"] == "embedding"
    assert MIN_SIMILARITY <= volume["metadata"]["confidence"] <= 1
    assert volume["task_type"] == "execute"
    decided = plans[0]["segments"][0]
    assert decided["task_type"] == "open" and "classified_by" not in decided["metadata"]
    assert plans[2]["segments"][0]["metadata"]["confidence"] == 0.95


def test_parallel_pipeline_matches_in_process(prototypes: TypePrototypes) -> None:
    from altlas.segmentation.bulk import segment_lines

    lines = [
        f"Open app{i} and turn up the volume" if i % 3 else f"Sesi kıs ve rapor{i}.pdf indir"
        for i in range(400)
    ]
    serial = list(segment_lines(lines, workers=1, prototypes=lambda: prototypes))
    parallel = list(segment_lines(lines, workers=2, prototypes=lambda: prototypes))

    def strip(line: str) -> dict[str, object]:
        data = json.loads(line)
        data.pop("id"), data.pop("timestamp")
        return data

    assert [strip(line) for line, _ in parallel] == [strip(line) for line, _ in serial]
    assert sum('"classified_by":"embedding"' in line for line, _ in parallel) >= 250
