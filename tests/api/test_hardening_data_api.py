"""Issue 16, items 6 (JSON depth), 7, 8, 9 and 13 against real servers: bad text and deep JSON
answered 422 naming the field on every route, batches stored whole or not at all, damaged files
skipped and reported, damaged stores stopping start-up with one line, names matched whole."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from altlas.jobs.store import JobStore
from altlas.segmentation import segment_command
from altlas.storage import PlanStore

from .conftest import Server, start_server

EMBEDDER = "all-minilm-l6-v2"
LLM = "smollm2-135m-instruct"
LONE = "\\ud800"  # as it travels in the JSON text: an escape of a high surrogate, without its low one


def error_of(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


def post_raw(client: httpx.Client, path: str, body: str) -> httpx.Response:
    return client.post(path, content=body.encode(), headers={"content-type": "application/json"})


def deep(levels: int) -> dict[str, Any]:
    """{"a": {"a": ... {}}}: `levels` objects."""
    node: dict[str, Any] = {}
    for _ in range(levels - 1):
        node = {"a": node}
    return node


def stored_commands(client: httpx.Client) -> list[str]:
    commands: list[str] = []
    offset = 0
    while True:
        page = client.get("/v1/alt-files", params={"offset": offset, "limit": 1000}).json()
        commands += [item["command"] for item in page["items"]]
        offset += 1000
        if offset >= page["total"]:
            return commands


# --- item 7: lone surrogates; item 6: nesting depth (the session's server) ----------------------


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/segment", '{"command": "open %s chrome"}', "command"),
        ("/v1/segment/batch", '{"commands": ["open chrome", "open %s chrome"]}', "commands[1]"),
        ("/v1/dedupe", '{"commands": ["open chrome", "open %s chrome"]}', "commands[1]"),
        ("/v1/similar-commands", '{"command": "open %s chrome"}', "command"),
        ("/v1/embed", '{"texts": ["open chrome", "open %s chrome"]}', "texts[1]"),
        ("/v1/embeddings", '{"model": "' + EMBEDDER + '", "input": ["a", "open %s chrome"]}', "input[1]"),
        (
            "/v1/chat/completions",
            '{"model": "' + LLM + '", "max_tokens": 2, "messages": [{"role": "user", "content": "x%s"}]}',
            "messages[0].content",
        ),
        ("/v1/jobs", '{"kind": "segment", "input": {"command": "open %s chrome"}}', "input.command"),
        ("/v1/segment", '{"command": "open chrome", "metadata": {"k%s": 1}}', "metadata.k\\ud800"),
    ],
)
def test_a_lone_surrogate_is_refused_naming_its_field(
    client: httpx.Client, path: str, body: str, field: str
) -> None:
    """Before: 500 on every route but /v1/embeddings."""
    response = post_raw(client, path, body % LONE)
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["param"] == field
    assert error["message"] == f"{field}: is not valid Unicode (it holds a lone surrogate)"


def test_escaped_pairs_and_lookalikes_are_text(client: httpx.Client) -> None:
    body = '{"command": "open chrome \\ud83d\\ude00 \\\\ud800", "store": false}'
    response = post_raw(client, "/v1/segment", body)
    assert response.status_code == 201, response.text
    assert response.json()["command"] == "open chrome \U0001f600 \\ud800"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/segment", {"command": "open chrome", "metadata": deep(900)}, "metadata" + ".a" * 63),
        ("/v1/segment/batch", {"commands": ["open chrome"], "metadata": deep(300)}, "metadata" + ".a" * 63),
        ("/v1/jobs", {"kind": "segment", "input": {"command": "x", "metadata": deep(100)}}, None),
        ("/v1/chat/completions", {"model": LLM, "messages": [{"role": "user", "content": deep(70)}]}, None),
        ("/v1/embed", {"texts": ["x", deep(64)]}, "texts[1]" + ".a" * 62),
        ("/v1/dedupe", {"commands": ["x"], "threshold": deep(800)}, "threshold" + ".a" * 63),
        ("/v1/embeddings", {"model": EMBEDDER, "input": "x", "user": deep(100)}, "user" + ".a" * 63),
    ],
)
def test_json_nested_deeper_than_64_levels_is_refused_naming_the_field(
    client: httpx.Client, path: str, body: dict[str, Any], field: str | None
) -> None:
    """Before: 500 (or a half-made state) for bodies nested a few hundred levels deep."""
    response = client.post(path, json=body)
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert str(error["message"]).endswith("is nested deeper than 64 levels")
    if field is not None:
        assert error["param"] == field
    assert len(str(error["param"]).replace("[", ".[").split(".")) == 64  # 64 steps down: level 65


def test_json_at_64_levels_is_served(client: httpx.Client) -> None:
    # the body's object, metadata's and 62 below it: 64 levels
    response = client.post(
        "/v1/segment", json={"command": "open chrome", "metadata": deep(63), "store": False}
    )
    assert response.status_code == 201, response.text
    assert response.json()["metadata"]["user"] == deep(63)


# --- item 8: a batch is stored whole or not at all ----------------------------------------------


def test_a_batch_with_one_bad_command_stores_nothing(client: httpx.Client) -> None:
    """Before: the first plan was stored and the request answered 500."""
    marker = f"open chrome {uuid.uuid4().hex}"
    body = '{"commands": ["' + marker + '", "open ' + LONE + ' chrome"]}'
    response = post_raw(client, "/v1/segment/batch", body)
    assert response.status_code == 422, response.text
    assert error_of(response)["param"] == "commands[1]"
    assert marker not in stored_commands(client)


@pytest.mark.parametrize("path", ["/v1/segment", "/v1/segment/batch"])
def test_a_plan_with_metadata_too_deep_is_refused_before_it_is_stored(
    client: httpx.Client, path: str
) -> None:
    """Before: the plan was stored and the request answered 500, so its id never reached the client."""
    marker = f"open chrome {uuid.uuid4().hex}"
    command = {"command": marker} if path == "/v1/segment" else {"commands": [marker]}
    response = client.post(path, json={**command, "metadata": deep(300)})
    assert response.status_code == 422, response.text
    assert marker not in stored_commands(client)


def test_every_stored_plan_of_a_batch_is_in_the_answer(client: httpx.Client) -> None:
    markers = [f"open chrome {uuid.uuid4().hex}" for _ in range(3)]
    response = client.post("/v1/segment/batch", json={"commands": markers, "metadata": deep(60)})
    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["count"] == 3 and [plan["command"] for plan in answer["data"]] == markers
    for plan in answer["data"]:
        stored = client.get(f"/v1/alt-files/{plan['id']}")
        assert stored.status_code == 200 and stored.json() == plan


# --- item 13: names matched whole ---------------------------------------------------------------


def test_a_collection_name_with_a_trailing_newline_is_refused(server: Server, client: httpx.Client) -> None:
    """Before: the documents were embedded and a folder named "abc\\n" was created."""
    response = client.post(
        "/v1/search/indexes/abc%0A/documents", json={"documents": [{"id": "1", "text": "open the door"}]}
    )
    assert response.status_code == 422, response.text
    assert error_of(response)["param"] == "name"
    assert not (server.data_dir / "collections" / "abc\n").exists()
    assert "abc\n" not in [c["name"] for c in client.get("/v1/search/indexes").json()["data"]]


# --- item 9: damaged files and rows are skipped and reported (a server of their own) -----------


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    """A server over a data dir holding, besides good entries, a plan file that is not a valid
    plan, one that is not JSON, and a job row whose result is not JSON."""
    root = tmp_path_factory.mktemp("damaged")
    data = root / "data"
    plans = PlanStore(data)
    good_plan = segment_command("open chrome")
    plans.save(good_plan)
    invalid_plan, not_json = str(uuid.uuid4()), str(uuid.uuid4())
    (plans.directory / f"{invalid_plan}.json").write_text(json.dumps({"id": invalid_plan, "version": 3}))
    (plans.directory / f"{not_json}.json").write_text("{this is not json")
    with JobStore(data / "jobs.sqlite3") as jobs:
        good_job = jobs.submit("segment", {"command": "open chrome", "store": False})[0].id
        bad_job = jobs.submit("segment", {"command": "open mail", "store": False})[0].id
        for job_id in (good_job, bad_job):
            claimed = jobs.claim_next()
            assert claimed is not None and claimed.id == job_id
            jobs.succeed(job_id, {"plan": "x"})
    with sqlite3.connect(data / "jobs.sqlite3") as conn:
        conn.execute("UPDATE jobs SET result = '{broken' WHERE id = ?", (bad_job,))
    conn.close()
    # Only segmentation (and the jobs it brings): no model loads, a quicker start.
    server = start_server(data, root / "server.log", env={"ALTLAS_SERVICES": "segmentation"})
    ids = {
        "good_plan": good_plan.id,
        "invalid_plan": invalid_plan,
        "not_json": not_json,
        "good_job": good_job,
        "bad_job": bad_job,
    }
    yield server, ids
    server.stop()


def test_the_plan_listing_skips_damaged_files_and_counts_them(damaged: tuple[Server, dict[str, str]]) -> None:
    """Before: 422 (a file that is not a valid plan) or 500 (one that is not JSON) for everyone."""
    server, ids = damaged
    with server.client() as client:
        response = client.get("/v1/alt-files")
    assert response.status_code == 200, response.text
    page = response.json()
    assert [item["id"] for item in page["items"]] == [ids["good_plan"]]
    assert page["damaged"] == 2 and page["total"] == 3


@pytest.mark.parametrize("which", ["invalid_plan", "not_json"])
def test_a_damaged_plan_read_alone_answers_404_saying_so(
    damaged: tuple[Server, dict[str, str]], which: str
) -> None:
    server, ids = damaged
    with server.client() as client:
        response = client.get(f"/v1/alt-files/{ids[which]}")
    assert response.status_code == 404, response.text
    assert "is damaged" in error_of(response)["message"]


def test_the_job_listing_skips_a_damaged_row_and_counts_it(damaged: tuple[Server, dict[str, str]]) -> None:
    """Before: 500 for everyone."""
    server, ids = damaged
    with server.client() as client:
        response = client.get("/v1/jobs")
        alone = client.get(f"/v1/jobs/{ids['bad_job']}")
        good = client.get(f"/v1/jobs/{ids['good_job']}")
    assert response.status_code == 200, response.text
    assert [job["id"] for job in response.json()["data"]] == [ids["good_job"]]
    assert response.json()["damaged"] == 1
    assert alone.status_code == 404 and "is damaged" in error_of(alone)["message"]
    assert good.status_code == 200 and good.json()["status"] == "succeeded"


def test_damaged_entries_are_logged_once_and_counted_on_metrics(
    damaged: tuple[Server, dict[str, str]],
) -> None:
    server, ids = damaged
    with server.client() as client:
        for _ in range(2):  # seen twice, logged and counted once
            assert client.get("/v1/alt-files").status_code == 200
            assert client.get("/v1/jobs").status_code == 200
        metrics = client.get("/metrics").text
    lines = [json.loads(line) for line in server.log_lines() if '"damaged entry' in line]
    entries = sorted(line["entry"] for line in lines)
    assert entries == sorted([f"{ids['invalid_plan']}.json", f"{ids['not_json']}.json", ids["bad_job"]])
    assert 'altlas_damaged_entries_total{store="alt-files"} 2.0' in metrics
    assert 'altlas_damaged_entries_total{store="jobs"} 1.0' in metrics


# --- item 9: a damaged store stops start-up with one line, and is left as it is -----------------


def serve(data: Path, services: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "altlas", "serve", "--port", "0", "--data-dir", str(data)]
    env = {**os.environ, "ALTLAS_SERVICES": services}
    try:
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    except subprocess.TimeoutExpired as exc:  # it started: the damage went unnoticed
        raise AssertionError(f"the server started over damaged data: {exc.stderr!r}") from None


def test_a_job_database_that_is_not_one_stops_start_up_with_one_line(tmp_path: Path) -> None:
    """Before: a raw traceback."""
    garbage = uuid.uuid4().bytes * 300
    (tmp_path / "jobs.sqlite3").write_bytes(garbage)
    result = serve(tmp_path, "segmentation")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr + result.stdout, result.stderr
    assert str(tmp_path / "jobs.sqlite3") in lines[0] and "Move it aside" in lines[0]
    assert (tmp_path / "jobs.sqlite3").read_bytes() == garbage


@pytest.mark.parametrize(
    ("name", "content"),
    [("collection.json", b'{"model": "x", "te'), ("vectors.npz", b"PK\x03\x04 not a zip")],
)
def test_a_damaged_collection_stops_start_up_with_one_line(tmp_path: Path, name: str, content: bytes) -> None:
    """Before: a raw traceback."""
    folder = tmp_path / "collections" / "docs"
    folder.mkdir(parents=True)
    (folder / "collection.json").write_text(json.dumps({"model": EMBEDDER, "texts": {}}))
    (folder / "vectors.npz").write_bytes(b"")
    (folder / name).write_bytes(content)
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    result = serve(tmp_path, "orchestrator")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr + result.stdout, result.stderr
    assert str(folder / name) in lines[0] and "Move the folder aside" in lines[0]
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before
