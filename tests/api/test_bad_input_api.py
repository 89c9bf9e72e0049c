"""Bad input as a new user sends it: always a 4xx with the field named, never a 500."""

from __future__ import annotations

import httpx
import pytest


def error_of(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"error"}
    assert {"message", "type", "param", "code"} <= set(body["error"])
    return body["error"]


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({}, 422, "command"),
        ({"command": ""}, 422, "command"),
        ({"command": "   \n"}, 422, "command"),
        ({"command": None}, 422, "command"),
        ({"command": 123}, 422, "command"),
        ({"command": ["Open it"]}, 422, "command"),
        ({"command": "x" * 1_000_000}, 413, "command"),
        ({"command": "x" * 10_001}, 413, "command"),
        ({"command": "Open it", "mode": "Turbo"}, 422, "mode"),
        ({"command": "Open it", "mode": "Chaos"}, 422, "chaos_level"),
        ({"command": "Open it", "mode": "Chaos", "chaos_level": 0}, 422, "chaos_level"),
        ({"command": "Open it", "mode": "Chaos", "chaos_level": 11}, 422, "chaos_level"),
        ({"command": "Open it", "mode": "Chaos", "chaos_level": "5"}, 422, "chaos_level"),
        ({"command": "Open it", "mode": "Chaos", "chaos_level": 2.5}, 422, "chaos_level"),
        ({"command": "Open it", "chaos_level": 5}, 422, "chaos_level"),
        ({"command": "Open it", "language": "fr"}, 422, "language"),
        ({"command": "Open it", "persona": "pirate"}, 422, "persona"),
        ({"command": "Open it", "urgency": 99}, 422, "urgency"),
        ({"command": "Open it", "deadline": "next tuesday"}, 422, "deadline"),
        ({"command": "Open it", "user_preferences": {"fly": 3}}, 422, "user_preferences.fly.[key]"),
        ({"command": "Open it", "user_preferences": {"open": 30}}, 422, "user_preferences.open"),
        ({"command": "Open it", "seed": "abc"}, 422, "seed"),
        ({"command": "Open it", "seed": 2**80}, 422, "seed"),
        ({"command": "Open it", "metadata": "x"}, 422, "metadata"),
        ({"comand": "Open it"}, 422, "command"),
        ({"command": "!!! ???"}, 422, "command"),
    ],
)
def test_bad_segment_requests(client: httpx.Client, body: object, status: int, param: str) -> None:
    response = client.post("/v1/segment", json=body)
    assert response.status_code == status, response.text
    error = error_of(response)
    assert error["param"] == param
    assert param.split(".")[0].split("[")[0] in str(error["message"])


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"command": ', "application/json"),
        (b"{'command': 'x'}", "application/json"),
        (b"\xff\xfe\x00", "application/json"),
        (b"command=Open+it", "application/x-www-form-urlencoded"),
        (b"Open it", "text/plain"),
        (b"", "application/json"),
        (b"[]", "application/json"),
        (b"null", "application/json"),
        (b'"Open it"', "application/json"),
    ],
)
def test_malformed_bodies(client: httpx.Client, content: bytes, content_type: str) -> None:
    response = client.post("/v1/segment", content=content, headers={"content-type": content_type})
    assert 400 <= response.status_code < 500, response.text
    assert error_of(response)["message"]


def test_oversized_body_is_413(client: httpx.Client) -> None:
    huge = b'{"command": "' + b"a" * (33 * 1024 * 1024) + b'"}'
    response = client.post("/v1/segment", content=huge, headers={"content-type": "application/json"})
    assert response.status_code == 413 and error_of(response)["param"] == "body"


@pytest.mark.parametrize(
    "plan_id",
    [
        "..",
        "..%2F..%2Fetc%2Fpasswd",
        "%2e%2e",
        "not-a-uuid",
        "12345678-1234-1234-1234-1234567890ab%00",
        "a" * 300,
    ],
)
def test_bad_ids(client: httpx.Client, plan_id: str) -> None:
    for method in ("GET", "DELETE"):
        response = client.request(method, f"/v1/alt-files/{plan_id}")
        assert response.status_code in (400, 404, 422), (plan_id, response.status_code)
        error_of(response)


def test_unknown_id_is_404(client: httpx.Client) -> None:
    response = client.get("/v1/alt-files/1b4e28ba-2fa1-41d2-883f-0016d3cca427")
    assert response.status_code == 404 and error_of(response)["param"] == "id"


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 5000}, "limit"),
        ({"offset": -1}, "offset"),
        ({"limit": "x"}, "limit"),
    ],
)
def test_bad_paging(client: httpx.Client, params: dict[str, object], param: str) -> None:
    response = client.get("/v1/alt-files", params=params)
    assert response.status_code == 422 and error_of(response)["param"] == param


def test_bad_format_query(client: httpx.Client) -> None:
    plan_id = client.post("/v1/segment", json={"command": "Open it"}).json()["id"]
    response = client.get(f"/v1/alt-files/{plan_id}", params={"format": "xml"})
    assert response.status_code == 422 and error_of(response)["param"] == "format"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "plan"),
        ({"plan": "x"}, "plan"),
        ({"plan": {}}, "id"),
        ({"plan": {"id": "x"}}, "id"),
        ({"plan": None}, "plan"),
    ],
)
def test_bad_prioritize_requests(client: httpx.Client, body: object, param: str) -> None:
    response = client.post("/v1/prioritize", json=body)
    assert response.status_code == 422 and error_of(response)["param"] == param


def test_bad_weights(client: httpx.Client) -> None:
    plan = client.post("/v1/segment", json={"command": "Open it"}).json()
    response = client.post("/v1/prioritize", json={"plan": plan, "weights": {"urgency": -1}})
    assert response.status_code == 422 and error_of(response)["param"] == "weights.urgency"


def test_wrong_method_and_route(client: httpx.Client) -> None:
    assert client.get("/v1/segment").status_code == 405
    assert client.get("/v1/nothing").status_code == 404
    error_of(client.get("/v1/nothing"))
