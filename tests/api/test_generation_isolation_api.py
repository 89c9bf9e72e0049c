"""Issue 16 item 4: one generation's numbers never fail the generations decoded beside it.

`temperature: 1e-300` and `repetition_penalty: 1e-300` are inside the documented ranges; they
once made the sampler divide by a float32 zero, and the continuous batcher then failed every
sequence of that decode step (three unrelated chats answered 500). Real server, real SmolLM2."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from .conftest import Server

LLM = "smollm2-135m-instruct"
FRANCE = [{"role": "user", "content": "What is the capital of France?"}]
STORY = [{"role": "user", "content": "Write a long story about a dragon."}]
DEADLINE_S = 600  # a busy 2-core machine; the first request also loads the model


def _stream(server: Server, body: dict[str, Any], started: threading.Event) -> dict[str, Any]:
    """A streamed chat's status, text, finish reason and whether it ended with [DONE];
    `started` is set at its first piece of text (its sequence is decoding then)."""
    result: dict[str, Any] = {"status": None, "text": "", "finish": None, "done": False, "error": None}
    try:
        with httpx.stream(
            "POST", server.url + "/v1/chat/completions", json={**body, "stream": True}, timeout=DEADLINE_S
        ) as response:
            result["status"] = response.status_code
            for line in response.iter_lines():
                if line == "data: [DONE]":
                    result["done"] = True
                elif line.startswith("data: "):
                    choice = json.loads(line[6:])["choices"][0]
                    result["text"] += choice["delta"].get("content") or ""
                    result["finish"] = choice["finish_reason"] or result["finish"]
                    if result["text"]:
                        started.set()
    except httpx.HTTPError as exc:  # the stream was cut after its 200
        result["error"] = repr(exc)
    finally:
        started.set()
    return result


def _post(server: Server, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=DEADLINE_S)


EXTREMES = [  # inside the documented ranges, at their edges
    ("/v1/chat/completions", {"messages": FRANCE, "temperature": 1e-300}),
    ("/v1/chat/completions", {"messages": FRANCE, "temperature": 1.0, "repetition_penalty": 1e-300}),
    ("/v1/completions", {"prompt": "The capital of France is", "temperature": 5e-324}),
    ("/v1/completions", {"prompt": "The capital of France is", "repetition_penalty": 5e-324, "seed": 3}),
    ("/v1/chat/completions", {"messages": FRANCE, "temperature": 2.0, "top_p": 5e-324, "top_k": 1}),
]


def _text(path: str, answer: dict[str, Any]) -> str:
    choice = answer["choices"][0]
    return str(choice["message"]["content"] if path.endswith("chat/completions") else choice["text"])


def test_extreme_sampling_values_fail_no_concurrent_generation(server: Server) -> None:
    """Two streamed stories are decoding, and a whole-answer chat was sent with them, when the
    extreme requests arrive: all three finish with their whole, sensible answers, and each
    extreme request gets a valid answer (never a 500)."""
    story = {"model": LLM, "messages": STORY, "temperature": 0, "max_tokens": 60}
    with ThreadPoolExecutor(3 + len(EXTREMES)) as pool:
        whole = pool.submit(_post, server, "/v1/chat/completions", {**story, "messages": FRANCE})
        first, second = threading.Event(), threading.Event()
        streams = [pool.submit(_stream, server, story, first), pool.submit(_stream, server, story, second)]
        assert first.wait(DEADLINE_S) and second.wait(DEADLINE_S)
        extremes = [
            pool.submit(_post, server, path, {"model": LLM, "max_tokens": 12, **extreme})
            for path, extreme in EXTREMES
        ]
        results = [stream.result() for stream in streams]
        paris = whole.result()
        answers = [extreme.result() for extreme in extremes]
    for result in results:
        assert result["status"] == 200 and result["error"] is None, result
        assert result["done"] and result["finish"] == "length", result
        assert "dragon" in result["text"].lower(), result
    assert paris.status_code == 200, paris.text
    assert "Paris" in paris.json()["choices"][0]["message"]["content"]
    for (path, extreme), response in zip(EXTREMES, answers, strict=True):
        assert response.status_code == 200, (extreme, response.text)
        answer = response.json()
        assert answer["choices"][0]["finish_reason"] in ("stop", "length"), (extreme, answer)
        assert 1 <= answer["usage"]["completion_tokens"] <= 12, (extreme, answer)
        if extreme.get("temperature", 1.0) < 1e-200 or extreme.get("top_k") == 1:  # as good as greedy
            assert "Paris" in _text(path, answer), (extreme, answer)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", -1e-300),
        ("temperature", 2.5),
        ("top_p", 0),
        ("top_p", 1.5),
        ("top_k", -1),
        ("top_k", 10**7),
        ("repetition_penalty", 0),
        ("repetition_penalty", 11),
        ("max_tokens", 0),
        ("max_tokens", 10**7),
        ("max_completion_tokens", 10**7),
        ("seed", -1),
        ("seed", 2**63),
        ("frequency_penalty", 0.5),
        ("presence_penalty", -3),
        ("logit_bias", {"50256": -100}),
    ],
)
def test_sampling_values_outside_their_ranges_get_422_naming_the_field(
    server: Server, field: str, value: Any
) -> None:
    response = _post(server, "/v1/chat/completions", {"model": LLM, "messages": FRANCE, field: value})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["param"] == field, response.text


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
@pytest.mark.parametrize("field", ["temperature", "top_p", "repetition_penalty"])
def test_non_finite_numbers_in_json_get_422(server: Server, field: str, literal: str) -> None:
    """Python's JSON reader takes NaN and Infinity, and 1e999 reads as infinity."""
    body = f'{{"model": "{LLM}", "messages": {json.dumps(FRANCE)}, "{field}": {literal}}}'
    response = httpx.post(
        server.url + "/v1/chat/completions",
        content=body,
        headers={"content-type": "application/json"},
        timeout=DEADLINE_S,
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["param"] == field, response.text
