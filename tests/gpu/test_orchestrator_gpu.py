"""The orchestrator's endpoints on CUDA, through a real server: embeddings agree with the CPU,
generation streams from the CUDA-graph decoder, and every answer says it ran on the GPU."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
import yaml

from altlas.embeddings.engine import Embedder
from altlas.embeddings.model_files import default_model_path

from ..api.conftest import start_server
from ..embedding_cases import model_path

pytestmark = pytest.mark.gpu
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

TEXTS = ["Chrome'u aç ve hava durumunu ara", "take a screenshot", "Dosyaları masaüstüne kopyala"]


def test_endpoints_run_on_cuda_and_agree_with_the_cpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from generation import random_model_folder  # bench/generation.py

    embedder_path = str(model_path() or default_model_path())
    llm = random_model_folder(tmp_path / "lm", torch.bfloat16)
    data = tmp_path / "data"
    data.mkdir()
    registry = {"models": [
        {"name": "minilm", "task": "embedding", "versions": {"1": embedder_path}, "load_at_start": True},
        {"name": "lm", "task": "generation", "versions": {"1": str(llm)}, "load_at_start": True,
         "options": {"max_context": 1024}},
    ]}  # fmt: skip
    (data / "models.yaml").write_text(yaml.safe_dump(registry))
    monkeypatch.setenv("ALTLAS_DEVICE", "cuda")
    monkeypatch.setenv("ALTLAS_GPU_MEMORY_GB", "8")
    server = start_server(data, tmp_path / "server.log")
    try:
        with httpx.Client(base_url=server.url, timeout=300) as client:
            response = client.post("/v1/embeddings", json={"model": "minilm", "input": TEXTS})
            assert response.status_code == 200, response.text
            assert response.headers["x-altlas-device"].startswith("cuda:0 ")
            on_gpu = np.array([d["embedding"] for d in response.json()["data"]])
            on_cpu = Embedder(embedder_path, device="cpu").encode(TEXTS)
            cosine = (
                (on_gpu * on_cpu).sum(1) / np.linalg.norm(on_gpu, axis=1) / np.linalg.norm(on_cpu, axis=1)
            )
            assert cosine.min() >= 0.999, cosine

            body = {
                "model": "lm",
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 24,
                "temperature": 0,
            }
            whole = client.post("/v1/chat/completions", json=body)
            assert whole.status_code == 200, whole.text
            assert whole.headers["x-altlas-device"].startswith("cuda:0 ")
            cost = whole.json()["altlas"]
            assert cost["model_gpu_bytes"] > 200e6 and cost["device"].startswith("cuda:0 ")
            with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as stream:
                lines = [line for line in stream.iter_lines() if line]
            assert lines[-1] == "data: [DONE]"
            pieces = [json.loads(line[6:])["choices"][0]["delta"].get("content", "") for line in lines[:-1]]
            assert "".join(pieces) == whole.json()["choices"][0]["message"]["content"]

            ask = {"model": "lm", "prompt": "One, two,", "max_tokens": 8, "temperature": 0}
            plain = client.post("/v1/completions", json=ask)
            assert plain.status_code == 200 and plain.headers["x-altlas-device"].startswith("cuda:0 "), (
                plain.text
            )
            assert plain.json()["usage"]["completion_tokens"] >= 1

            documents = [{"id": str(i), "text": t} for i, t in enumerate(TEXTS)]
            added = client.post(
                "/v1/search/indexes/gpu/documents", json={"model": "minilm", "documents": documents}
            )
            assert added.status_code == 200, added.text
            found = client.post("/v1/search", json={"index": "gpu", "query": "take a screen shot", "k": 2})
            assert found.status_code == 200 and found.headers["x-altlas-device"].startswith("cuda:0 "), (
                found.text
            )
            assert found.json()["results"][0][0]["id"] == "1"

            models = {m["id"]: m["altlas"] for m in client.get("/v1/models").json()["data"]}
            total = sum(m["gpu_bytes"] for m in models.values())
            assert all(m["status"] == "loaded" for m in models.values()) and total < 8e9
            print(
                f"GPU bytes per model: { {k: m['gpu_bytes'] for k, m in models.items()} }; "
                f"decode {whole.json()['altlas']['decode_tokens_per_s']} tokens/s"
            )
    finally:
        server.stop()
