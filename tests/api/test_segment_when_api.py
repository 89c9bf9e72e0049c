"""`now` and `timezone` on the segmentation routes and job kinds: schedule segments get when_iso."""

from __future__ import annotations

import json

import httpx
import pytest

from .conftest import wait_until

NOW = {"now": "2025-03-12T10:00:00", "timezone": "Europe/Istanbul"}  # a Wednesday


def when_iso(plan: dict[str, object]) -> list[object]:
    segments = plan["segments"]
    assert isinstance(segments, list)
    return [{p["name"]: p["value"] for p in s["parameters"]}.get("when_iso") for s in segments]


def test_segment_resolves_against_the_requests_clock(client: httpx.Client) -> None:
    body = {"command": "Yarın 14.30'da toplantıyı hatırlat", "store": False, **NOW}
    response = client.post("/v1/segment", json=body)
    assert response.status_code == 201, response.text
    assert when_iso(response.json()) == ["2025-03-13T14:30:00+03:00"]


def test_batch_resolves_every_command_against_one_clock(client: httpx.Client) -> None:
    commands = ["Remind me in two hours", "Open Firefox", "Schedule a call next Tuesday at 4 pm"]
    body = {"commands": commands, "store": False, "now": "2025-03-12T10:00:00-04:00",
            "timezone": "America/New_York"}  # fmt: skip
    response = client.post("/v1/segment/batch", json=body)
    assert response.status_code == 201, response.text
    plans = response.json()["data"]
    assert [when_iso(p) for p in plans] == [
        ["2025-03-12T12:00:00-04:00"], [None], ["2025-03-18T16:00:00-04:00"]
    ]  # fmt: skip


def test_without_a_clock_the_servers_is_used(client: httpx.Client) -> None:
    response = client.post("/v1/segment", json={"command": "Remind me in two hours", "store": False})
    assert response.status_code == 201
    assert isinstance(when_iso(response.json())[0], str)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timezone", "Mars/Olympus_Mons"),
        ("timezone", "../../etc/passwd"),
        ("now", "soon"),
        ("now", "2025-02-30"),
    ],
)
def test_a_bad_clock_is_a_422_naming_the_field(client: httpx.Client, field: str, value: str) -> None:
    for path, body in (("/v1/segment", {"command": "Open it"}), ("/v1/segment/batch", {"commands": ["a"]})):
        response = client.post(path, json={**body, "store": False, field: value})
        assert response.status_code == 422, response.text
        assert response.json()["error"]["param"] == field


def test_jobs_take_the_clock_and_refuse_a_bad_one(client: httpx.Client) -> None:
    bad = client.post("/v1/jobs", json={"kind": "segment", "input": {"command": "x", "timezone": "Nowhere"}})
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "input.timezone"
    bulk = client.post(
        "/v1/jobs",
        json={"kind": "segment-bulk", "input": {"commands": ["İki saat sonra ilacımı hatırlat"], **NOW}},
    )
    assert bulk.status_code in (201, 202), bulk.text
    job_id = bulk.json()["id"]
    wait_until(lambda: client.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded", timeout=120)
    lines = client.get(f"/v1/jobs/{job_id}/result").text.splitlines()
    assert when_iso(json.loads(lines[0])) == ["2025-03-12T12:00:00+03:00"]
