"""Issue 17: tiny random models of every family, registered by path on one CPU server, stream
chat completions; `/v1/models` says how each decodes and, for a model no fast decoder takes
(GPT-2), why it decodes through transformers instead. Such a model loads and serves all the same.

Families (tests/tiny_llms.py): Llama 3 (llama3 rope scaling, three end-of-turn ids in
generation_config.json), Qwen2.5 (q/k/v biases, tied embeddings), Qwen3 (q/k norms, head_dim not
hidden / heads), Mistral; each with its own chat template layout. Batching is on (the server's
default), so the fast path on the CPU is continuous batching over the paged cache.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from ..tiny_llms import FAMILIES, tiny_llm_folder
from .conftest import Server, start_server

FAST = [name for name, family in FAMILIES.items() if family.fast]
MAX_TOKENS = 6
HELLO = [{"role": "user", "content": "Hello, who are you?"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module: on the CPU, the orchestrator alone, no model in its registry
    until the test registers each family's folder (under the data dir, where API registrations
    may read)."""
    root = tmp_path_factory.mktemp("llm-families")
    data = root / "data"
    (data / "models").mkdir(parents=True)
    (data / "models.yaml").write_text(yaml.safe_dump({"models": []}))
    for name in FAMILIES:
        tiny_llm_folder(data / "models" / name, name)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ALTLAS_DEVICE", "cpu")
        env.setenv("ALTLAS_SERVICES", "orchestrator")
        srv = start_server(data, root / "server.log")
    try:
        with srv.client() as client:
            client.timeout = httpx.Timeout(300)
            for name in FAMILIES:
                spec = {"name": name, "task": "generation", "backend": "transformers",
                        "versions": {"1": str(data / "models" / name)}, "warmup": ["Hi"],
                        "options": {"max_context": 1024, "max_sequences": 2,
                                    "kv_cache_tokens": 1024}}  # fmt: skip
                registered = client.post("/v1/models", json=spec)
                assert registered.status_code == 201, registered.text
                loaded = client.post(f"/v1/models/{name}/load")
                assert loaded.status_code == 200, loaded.text
        yield srv
    finally:
        srv.stop()


def _chat_events(server: Server, model: str) -> list[dict[str, Any]]:
    """The chunks of a streamed greedy chat, checked to end with data: [DONE]."""
    body = {"model": model, "messages": HELLO, "temperature": 0, "max_tokens": MAX_TOKENS, "stream": True}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=300) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]", lines
    assert all(line.startswith("data: ") for line in lines)
    return [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]


@pytest.mark.parametrize("model", list(FAMILIES))
def test_each_family_streams_a_chat(server: Server, model: str) -> None:
    chunks = _chat_events(server, model)
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert {chunk["model"] for chunk in chunks} == {model} and len({chunk["id"] for chunk in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    last = chunks[-1]
    assert [chunk["choices"][0]["finish_reason"] for chunk in chunks[:-1]] == [None] * (len(chunks) - 1)
    finish = last["choices"][0]["finish_reason"]
    usage = last["usage"]
    assert usage["completion_tokens"] <= MAX_TOKENS and usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    # random weights may end the turn early, on one of the family's end-of-turn ids
    assert finish == ("stop" if usage["completion_tokens"] < MAX_TOKENS else "length")
    streamed = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks)
    whole = httpx.post(
        server.url + "/v1/chat/completions",
        json={"model": model, "messages": HELLO, "temperature": 0, "max_tokens": MAX_TOKENS},
        timeout=300,
    ).json()
    assert whole["choices"][0]["message"]["content"] == streamed  # greedy: the same answer
    assert whole["usage"] == usage and whole["choices"][0]["finish_reason"] == finish


def test_models_show_each_familys_decode_path_and_why_not_the_fast_one(server: Server) -> None:
    listed = httpx.get(server.url + "/v1/models", timeout=30).json()["data"]
    status = {model["id"]: model["altlas"] for model in listed}
    assert set(status) == set(FAMILIES)
    for name in FAST:
        assert status[name]["status"] == "loaded"
        assert status[name]["decode_path"].startswith("continuous batching of up to 2"), status[name]
        assert status[name]["decode_fallback"] is None and status[name]["decoding"] is not None
    gpt2 = status["gpt2"]
    assert gpt2["status"] == "loaded" and gpt2["error"] is None
    assert gpt2["decode_path"] == "transformers" and gpt2["decoding"] is None
    assert "gpt2" in gpt2["decode_fallback"]  # the reason names what the fast decoders do not take
    lines = [json.loads(line) for line in server.log_lines() if line.startswith("{")]
    fallbacks = [line for line in lines if line["message"].startswith("fast decoding is not available")]
    assert len(fallbacks) == 1 and fallbacks[0]["folder"].endswith("gpt2"), fallbacks  # that model's, once
    assert fallbacks[0]["reason"] == gpt2["decode_fallback"]
