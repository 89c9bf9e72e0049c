"""Property-based fuzzing of the HTTP API: whatever the body, a 2xx with a valid plan or a 4xx
with the error shape, never a 500."""

from __future__ import annotations

import contextlib
import json
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from altlas.plans import plan_from_dict

json_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=30)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
words = st.sampled_from(
    "open aç search ara and ve then sonra at the same time aynı anda Firefox'u report.docx to Ali'ye , . ; "
    "çevir Türkçeye PDF olarak kaydet delete sil take a screenshot ekran görüntüsü al please lütfen 9'da "
    "tomorrow yarın 'quoted text' \"x\" 🙂 İ ı ß \u0000 \u202e".split(" ")
)
commands = st.lists(words, min_size=0, max_size=25).map(" ".join) | st.text(max_size=200)

FIELDS = {
    "command": commands | json_values,
    "language": st.sampled_from(["en", "tr", "de", None]) | json_values,
    "mode": st.sampled_from(["Normal", "Dream", "Explore", "Chaos", "chaos"]) | json_values,
    "persona": st.sampled_from(["technical_expert", "researcher", "x"]) | json_values,
    "chaos_level": st.integers(-2, 12) | json_values,
    "seed": st.integers(-(2**64), 2**64) | json_values,
    "urgency": st.integers(-1, 12) | json_values,
    "deadline": st.sampled_from(["2030-01-01T00:00:00Z", "2000-01-01", "soon", "2030-01-01T00:00:00+05:00"])
    | json_values,
    "user_preferences": st.dictionaries(st.sampled_from(["open", "search", "fly"]), st.integers(-1, 12))
    | json_values,
    "metadata": json_values,
    "store": st.booleans() | json_values,
}
bodies = st.fixed_dictionaries({}, optional=FIELDS) | json_values


def check(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code < 500, response.text
    body = response.json()
    if response.status_code >= 400:
        assert body["error"]["message"] and "Traceback" not in body["error"]["message"]
    return body


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
def test_segment_never_500(client: httpx.Client, body: Any) -> None:
    # json.dumps writes NaN and Infinity as bare words, as some clients do: they must get a 4xx
    response = client.post(
        "/v1/segment", content=json.dumps(body), headers={"content-type": "application/json"}
    )
    result = check(response)
    if response.status_code == 201:
        plan_from_dict(result)
        assert result["command"] == body["command"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    commands=st.lists(commands, min_size=0, max_size=5) | json_values,
    extra=st.fixed_dictionaries({}, optional=FIELDS),
)
def test_batch_never_500(client: httpx.Client, commands: Any, extra: dict[str, Any]) -> None:
    extra.pop("command", None)
    content = json.dumps({"commands": commands, **extra})
    check(client.post("/v1/segment/batch", content=content, headers={"content-type": "application/json"}))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.lists(
        st.sampled_from(
            ["segments", 0, 1, "dependencies", "parameters", "metadata", "value", "type", "id", "mode"]
        ),
        min_size=1,
        max_size=4,
    ),
    value=json_values,
)
def test_prioritize_with_mutated_plans_never_500(client: httpx.Client, path: list[Any], value: Any) -> None:
    plan = client.post(
        "/v1/segment", json={"command": "Open Chrome and search for news", "store": False}
    ).json()
    target: Any = plan
    for key in path[:-1]:
        try:
            target = target[key]
        except (KeyError, IndexError, TypeError):
            break
    else:
        with contextlib.suppress(IndexError, TypeError):
            target[path[-1]] = value
    content = json.dumps({"plan": plan})
    check(client.post("/v1/prioritize", content=content, headers={"content-type": "application/json"}))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan_id=st.text(max_size=60), fmt=st.text(max_size=6))
def test_alt_file_ids_never_500(client: httpx.Client, plan_id: str, fmt: str) -> None:
    for method in ("GET", "DELETE"):
        path = "/v1/alt-files/" + quote(plan_id, safe="")
        response = client.request(method, path, params={"format": fmt})
        assert response.status_code < 500, (plan_id, response.text)
