"""Issue 17 acceptance 5 on CUDA: a Llama-3.2-1B-shaped and a Qwen2.5-1.5B-shaped model (the
released configs, random bf16 weights, each family's tokenizer layout and end-of-turn ids from
tests/tiny_llms.py) registered by path on a real server stream `/v1/chat/completions` on the GPU,
through continuous batching over the paged cache (the default) and through the batch-1 CUDA-graph
decoder (`batching: false`); `/v1/models` names each one's decode path, and no fallback."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
import yaml

from ..api.conftest import TIMEOUT, Server, start_server
from ..tiny_llms import tiny_llm_folder

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

MODELS = {  # registry name: (tiny_llms family, scripts/gpu_families.py shape, options)
    "llama-3.2-1b": ("llama-3", "llama-3.2-1b", {}),
    "qwen2.5-1.5b": ("qwen2.5", "qwen2.5-1.5b", {}),
    "llama-3.2-1b-batch1": ("llama-3", "llama-3.2-1b", {"batching": False}),
}
MAX_TOKENS = 24
HELLO = [{"role": "user", "content": "Merhaba! Hava durumunu söyler misin?"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from gpu_families import SHAPES  # scripts/gpu_families.py: the released configs

    root = tmp_path_factory.mktemp("llm-families-gpu")
    data = root / "data"
    (data / "models").mkdir(parents=True)
    (data / "models.yaml").write_text(yaml.safe_dump({"models": []}))
    folders = {}
    for family, shape in {(family, shape) for family, shape, _ in MODELS.values()}:
        settings = {key: value for key, value in SHAPES[shape].items() if key != "model_type"}
        folders[shape] = tiny_llm_folder(
            data / "models" / shape, family, settings=settings, device="cuda", dtype=torch.bfloat16
        )
        torch.cuda.empty_cache()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ALTLAS_DEVICE", "cuda")
        env.setenv("ALTLAS_SERVICES", "orchestrator")
        srv = start_server(data, root / "server.log")
    try:
        with srv.client() as client:
            for name, (_, shape, options) in MODELS.items():
                spec = {"name": name, "task": "generation", "backend": "transformers",
                        "versions": {"1": str(folders[shape])}, "warmup": ["Merhaba"],
                        "options": {"max_context": 4096, **options}}  # fmt: skip
                registered = client.post("/v1/models", json=spec)
                assert registered.status_code == 201, registered.text
                loaded = client.post(f"/v1/models/{name}/load")
                assert loaded.status_code == 200, srv.log_path.read_text()[-3000:]
        yield srv
    finally:
        srv.stop()


def stream_chat(server: Server, model: str) -> tuple[str, dict[str, Any], str]:
    """(the streamed text, the usage, the finish reason) of a greedy chat, stream: true."""
    body = {"model": model, "messages": HELLO, "temperature": 0, "max_tokens": MAX_TOKENS, "stream": True}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=TIMEOUT) as response:
        assert response.status_code == 200, response.read()
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]", lines
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    text = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks)
    return text, chunks[-1]["usage"], chunks[-1]["choices"][0]["finish_reason"]


@pytest.mark.parametrize("model", list(MODELS))
def test_each_model_streams_a_chat_on_the_gpu(server: Server, model: str) -> None:
    text, usage, finish = stream_chat(server, model)
    assert 0 < usage["completion_tokens"] <= MAX_TOKENS and usage["prompt_tokens"] > 10
    assert finish == ("stop" if usage["completion_tokens"] < MAX_TOKENS else "length")
    again, usage_again, _ = stream_chat(server, model)
    assert (again, usage_again) == (text, usage)  # greedy: the same answer


def test_concurrent_chats_all_finish(server: Server) -> None:
    """Eight streams at once share continuous batching's steps; each ends whole. (Their tokens
    may differ from a lone request's: bf16 products over 8 rows round otherwise than over one,
    and random weights have near-equal logits; the CPU tests compare the tokens in fp32.)"""
    results: list[tuple[str, dict[str, Any], str]] = []
    threads = [
        threading.Thread(target=lambda: results.append(stream_chat(server, "qwen2.5-1.5b"))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert len(results) == 8
    for _, usage, finish in results:
        assert 0 < usage["completion_tokens"] <= MAX_TOKENS
        assert finish == ("stop" if usage["completion_tokens"] < MAX_TOKENS else "length")


def test_models_show_the_fast_paths_on_cuda(server: Server) -> None:
    with server.client() as client:
        listed = {model["id"]: model["altlas"] for model in client.get("/v1/models").json()["data"]}
    for name, (_, _, options) in MODELS.items():
        status = listed[name]
        assert status["status"] == "loaded" and status["device"].startswith("cuda"), status
        assert status["decode_fallback"] is None, status
        if options.get("batching") is False:
            assert status["decode_path"] == "static cache + CUDA graph", status
        else:
            assert status["decode_path"].startswith("continuous batching"), status
            assert status["decode_path"].endswith("+ CUDA graphs"), status
