"""Issue 5, acceptance 4: the default registry (embedding + generation + VAD + classifier) loads
and answers on one GPU under `--gpu-memory-gb 8`, through a real server.

The shipped sources are used where their packages are installed; on a GPU machine that lacks
them, ALTLAS_TEST_MODEL (an all-MiniLM-L6-v2 folder) and ALTLAS_TEST_GGUF (the SmolLM2 GGUF file)
point the registry at copies carried there.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from altlas.orchestrator.registry import default_registry_text

from ..api.conftest import start_server

pytestmark = pytest.mark.gpu
DATA = Path(__file__).resolve().parents[1] / "data"


def registry_with_test_sources() -> dict[str, Any]:
    """The default registry, MiniLM and SmolLM2 read from ALTLAS_TEST_MODEL / ALTLAS_TEST_GGUF
    where those are set (a GPU machine without the packages)."""
    registry: dict[str, Any] = yaml.safe_load(default_registry_text())
    overrides = {"all-minilm-l6-v2": os.environ.get("ALTLAS_TEST_MODEL"),
                 "smollm2-135m-instruct": os.environ.get("ALTLAS_TEST_GGUF")}  # fmt: skip
    for model in registry["models"]:
        if overrides.get(model["name"]):
            model["versions"] = {model["active"]: overrides[model["name"]]}
    return registry


def test_the_default_registry_runs_on_one_gpu_within_8_gb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = registry_with_test_sources()
    data = tmp_path / "data"
    data.mkdir()
    (data / "models.yaml").write_text(yaml.safe_dump(registry))
    monkeypatch.setenv("ALTLAS_DEVICE", "cuda")
    monkeypatch.setenv("ALTLAS_GPU_MEMORY_GB", "8")
    monkeypatch.setenv("ALTLAS_SERVICES", "orchestrator")
    server = start_server(data, tmp_path / "server.log")
    try:
        with httpx.Client(base_url=server.url, timeout=600) as client:
            for name in ("all-minilm-l6-v2", "smollm2-135m-instruct", "silero-vad", "efficientnet-lite0"):
                loaded = client.post(f"/v1/models/{name}/load")
                assert loaded.status_code == 200, loaded.text
            chat = client.post("/v1/chat/completions", json={
                "model": "smollm2-135m-instruct", "temperature": 0, "max_tokens": 20,
                "messages": [{"role": "user", "content": "What is the capital of France?"}]})  # fmt: skip
            assert chat.status_code == 200 and "Paris" in chat.json()["choices"][0]["message"]["content"], (
                chat.text
            )
            embedded = client.post("/v1/embeddings", json={"model": "all-minilm-l6-v2", "input": ["hello"]})
            assert embedded.status_code == 200, embedded.text
            import soundfile

            speech, rate = soundfile.read(DATA / "audio" / "speech_en.wav", dtype="float32")
            buffer = io.BytesIO()
            soundfile.write(buffer, np.concatenate([np.zeros(rate, np.float32), speech]), rate, format="WAV")
            vad = client.post("/v1/audio/vad", files={"file": ("a.wav", buffer.getvalue())})
            assert vad.status_code == 200 and vad.json()["segments"], vad.text
            photo = (DATA / "images" / "coffee.jpg").read_bytes()
            label = client.post("/v1/images/classify", files={"file": ("c.jpg", photo)})
            assert label.status_code == 200 and label.json()["predictions"][0]["label"] == "espresso", (
                label.text
            )
            for response in (chat, embedded, vad, label):
                assert response.headers["x-altlas-device"].startswith("cuda:0 ")
            models = {m["id"]: m["altlas"] for m in client.get("/v1/models").json()["data"]}
            total = sum(m["gpu_bytes"] for m in models.values())
            print(
                f"GPU bytes: { {k: m['gpu_bytes'] for k, m in models.items()} }, total {total / 1e9:.2f} GB"
            )
            assert all(m["status"] == "loaded" and m["device"].startswith("cuda:0 ") for m in models.values())
            assert total < 8e9
    finally:
        server.stop()
