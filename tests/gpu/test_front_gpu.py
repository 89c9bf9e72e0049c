"""The HTTP front processes in front of a model on CUDA: one-sentence requests, many at once,
answered through the fronts and batched on the GPU, agree with the CPU; other routes, handed
over to the server process, say the model runs on the GPU."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from altlas.embeddings.engine import Embedder
from altlas.embeddings.model_files import default_model_path

from ..api.conftest import start_server
from ..embedding_cases import model_path

pytestmark = pytest.mark.gpu

WORDS = "Chrome'u aç ve hava durumunu ara sonra ekran görüntüsü al open the browser search weather".split()


def test_fronts_answer_batched_gpu_embeddings_that_agree_with_the_cpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder_path = str(model_path() or default_model_path())
    data = tmp_path / "data"
    data.mkdir()
    registry = {"models": [{"name": "minilm", "task": "embedding", "versions": {"1": embedder_path},
                            "load_at_start": True}]}  # fmt: skip
    (data / "models.yaml").write_text(yaml.safe_dump(registry))
    monkeypatch.setenv("ALTLAS_DEVICE", "cuda")
    monkeypatch.setenv("ALTLAS_SERVICES", "orchestrator")
    monkeypatch.setenv("ALTLAS_HTTP_WORKERS", "2")
    rng = np.random.default_rng()
    texts = [" ".join(rng.choice(WORDS, size=rng.integers(1, 25))) for _ in range(256)]
    server = start_server(data, tmp_path / "server.log")
    try:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # another route: handed over to the server
                status = client.get("/v1/models/minilm").json()["altlas"]
                if status["status"] != "loading":
                    break
                time.sleep(0.2)
            assert status["status"] == "loaded" and status["device"].startswith("cuda:0"), status

        def embed(text: str) -> tuple[np.ndarray, int]:
            with httpx.Client(base_url=server.url, timeout=120) as each:
                answer = each.post("/v1/embeddings", json={"model": "minilm", "input": text})
                assert answer.status_code == 200, answer.text
                assert answer.headers["x-altlas-device"].startswith("cuda:0 ")
                body = answer.json()
                return np.array(body["data"][0]["embedding"]), body["altlas"]["batch_requests"]

        with ThreadPoolExecutor(32) as pool:
            answers = list(pool.map(embed, texts))
        on_gpu = np.stack([vector for vector, _ in answers])
        on_cpu = Embedder(embedder_path, device="cpu").encode(texts)
        cosine = (on_gpu * on_cpu).sum(1) / np.linalg.norm(on_gpu, axis=1) / np.linalg.norm(on_cpu, axis=1)
        assert cosine.min() >= 0.999, cosine.min()
        assert max(shared for _, shared in answers) > 1  # concurrent requests did share batches
    finally:
        server.stop()
    assert server.process.poll() is not None
