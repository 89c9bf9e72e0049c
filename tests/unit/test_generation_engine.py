"""TextGenerator with the families' own files (issue 17): end-of-turn ids from the config, the
generation config and the tokenizer; the chat template from chat_template.jinja or from
tokenizer_config.json; the context from `max_context` within the model's positions; and a model
no fast decoder takes falls back to transformers with its reason, never an error unless
fast decoding was asked for by name. Its backend answers the orchestrator's whole `Backend`
protocol, with nothing where a question is about batchers or replicas."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from altlas.errors import InputTooLargeError, InvalidInputError
from altlas.generation.engine import TextGenerator
from altlas.generation.sampling import SamplingParams
from altlas.orchestrator.backends import GenerationBackend, add_cpu_replica
from altlas.scheduling.batcher import BatchPolicy
from altlas.scheduling.spillover import SpillPolicy

from ..tiny_llms import FAMILIES, special_id, tiny_llm_folder

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-llms")
    return {name: tiny_llm_folder(root / name, name) for name in ("llama-3", "qwen2.5", "gpt2")}


def test_end_of_turn_ids_include_the_generation_configs(folders: dict[str, Path]) -> None:
    """Llama 3 ends a turn on <|eot_id|>, a tool call on <|eom_id|>, a text on <|end_of_text|>:
    generation_config.json lists the three; the config and the tokenizer name one each."""
    engine = TextGenerator(folders["llama-3"], CPU, torch.float32)
    ids = {special_id("llama-3", token) for token in ("<|end_of_text|>", "<|eom_id|>", "<|eot_id|>")}
    assert engine.eos_ids == ids
    qwen = TextGenerator(folders["qwen2.5"], CPU, torch.float32)
    assert qwen.eos_ids == {special_id("qwen2.5", "<|im_end|>"), special_id("qwen2.5", "<|endoftext|>")}


def test_chat_ids_follow_the_familys_template(folders: dict[str, Path]) -> None:
    engine = TextGenerator(folders["llama-3"], CPU, torch.float32)
    ids = engine.chat_ids([{"role": "user", "content": "Hi"}])
    text = engine.tokenizer.decode(ids, skip_special_tokens=False)
    assert text == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    header = special_id("llama-3", "<|start_header_id|>")
    assert ids[0] == special_id("llama-3", "<|begin_of_text|>") and ids.count(header) == 2  # one id each


def test_a_chat_template_kept_in_tokenizer_config_json_is_read_too(
    folders: dict[str, Path], tmp_path: Path
) -> None:
    """Older folders keep the template in tokenizer_config.json, newer ones in chat_template.jinja."""
    folder = tmp_path / "qwen-old-layout"
    folder.mkdir()
    for part in folders["qwen2.5"].iterdir():
        (folder / part.name).write_bytes(part.read_bytes())
    template = (folder / "chat_template.jinja").read_text()
    (folder / "chat_template.jinja").unlink()
    settings = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**settings, "chat_template": template}))
    old = TextGenerator(folder, CPU, torch.float32)
    new = TextGenerator(folders["qwen2.5"], CPU, torch.float32)
    messages = [{"role": "user", "content": "Merhaba"}]
    assert old.chat_ids(messages) == new.chat_ids(messages)
    assert old.tokenizer.decode(old.chat_ids(messages), skip_special_tokens=False).endswith(
        "<|im_start|>user\nMerhaba<|im_end|>\n<|im_start|>assistant\n"
    )


def test_the_context_is_max_context_within_the_models_positions(folders: dict[str, Path]) -> None:
    """Llama 3.x has 131,072 positions: a 32k context is taken as asked, a prompt filling it is
    refused before any work; GPT-2's 1,024 positions cap whatever is asked."""
    long = TextGenerator(folders["llama-3"], CPU, torch.float32, max_context=32_768)
    assert long.max_context == 32_768
    assert TextGenerator(folders["llama-3"], CPU, torch.float32).max_context == 131_072
    with pytest.raises(InputTooLargeError, match="32,768"):
        long.complete([7] * 32_768, SamplingParams(max_tokens=4))
    assert TextGenerator(folders["gpt2"], CPU, torch.float32, max_context=32_768).max_context == 1024


def test_a_model_no_fast_decoder_takes_falls_back_with_its_reason(
    folders: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="altlas.generation"):
        engine = TextGenerator(folders["gpt2"], CPU, torch.float32, max_sequences=2, kv_cache_tokens=256)
    assert engine.decode_path == "transformers" and engine.continuous is None
    assert engine.decode_fallback is not None and "gpt2" in engine.decode_fallback
    (record,) = [r for r in caplog.records if r.name == "altlas.generation"]  # one line
    assert record.reason == engine.decode_fallback  # type: ignore[attr-defined]
    assert record.folder == str(folders["gpt2"])  # type: ignore[attr-defined]
    answer = engine.complete(
        engine.chat_ids([{"role": "user", "content": "Hi"}]), SamplingParams(max_tokens=3)
    )
    assert answer.finish_reason in ("stop", "length") and answer.completion_tokens <= 3


def test_no_fallback_is_reported_where_no_fast_path_was_to_be(
    folders: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """On the CPU without batching the batch-1 fast decoder is not the default: nothing fell back."""
    with caplog.at_level(logging.WARNING, logger="altlas.generation"):
        engine = TextGenerator(folders["gpt2"], CPU, torch.float32)
        plain = TextGenerator(folders["llama-3"], CPU, torch.float32, fast_decode=False)
    assert engine.decode_fallback is None and plain.decode_fallback is None
    assert not [r for r in caplog.records if r.name == "altlas.generation"]


def test_fast_decode_asked_for_by_name_is_an_error_for_such_a_model(folders: dict[str, Path]) -> None:
    with pytest.raises(InvalidInputError, match="fast decoding is not available") as raised:
        TextGenerator(folders["gpt2"], CPU, torch.float32, fast_decode=True)
    assert raised.value.field == "fast_decode"


@pytest.mark.parametrize("family", [name for name, family in FAMILIES.items() if family.fast])
def test_every_fast_family_takes_the_paged_decoder(family: str, tmp_path: Path) -> None:
    """With batching on, each family that the fast decoders take decodes over the paged cache."""
    engine = TextGenerator(
        tiny_llm_folder(tmp_path, family), CPU, torch.float32, max_sequences=2, kv_cache_tokens=256
    )
    try:
        assert engine.decode_fallback is None, engine.decode_fallback
        assert engine.decode_path == "continuous batching of up to 2 over a paged cache"
    finally:
        engine.close()


def test_a_sliding_window_falls_back_only_where_the_context_reaches_past_it(tmp_path: Path) -> None:
    """A window of 512 positions changes nothing over a 512-position context: the fast path takes
    it; over 1,024 positions it would hide keys, and the model falls back."""
    folder = tiny_llm_folder(tmp_path, "mistral")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "sliding_window": 512}))
    within = TextGenerator(folder, CPU, torch.float32, max_context=512, max_sequences=2, kv_cache_tokens=256)
    past = TextGenerator(folder, CPU, torch.float32, max_context=1024, max_sequences=2, kv_cache_tokens=256)
    try:
        assert within.decode_fallback is None and within.continuous is not None
        assert past.decode_path == "transformers" and "sliding-window" in (past.decode_fallback or "")
    finally:
        within.close()


def test_engines_can_share_one_loaded_model(folders: dict[str, Path]) -> None:
    """bench/generation.py runs several decode paths over one model (an 8B model is loaded once)."""
    first = TextGenerator(folders["llama-3"], CPU, torch.float32, max_sequences=2, kv_cache_tokens=256)
    second = TextGenerator(folders["llama-3"], CPU, torch.float32, model=first.model)
    try:
        assert second.model is first.model and second.continuous is None and first.continuous is not None
        prompt = second.text_ids("Merhaba")
        greedy = SamplingParams(max_tokens=4, temperature=0.0)
        assert first.complete(prompt, greedy).token_ids == second.complete(prompt, greedy).token_ids
    finally:
        first.close()


def test_without_triton_the_cpu_still_batches_and_only_the_kernel_paths_fall_back(
    folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CPU install without triton (the service's own dependencies do not bring it): continuous
    batching over the paged cache runs torch alone there; the batch-1 decoder, all Triton
    kernels, falls back with the reason."""
    import sys

    monkeypatch.setitem(sys.modules, "triton", None)  # `import triton` raises ImportError
    cpu = torch.device("cpu")
    batched = TextGenerator(folders["llama-3"], cpu, torch.float32, 256, max_sequences=2, kv_cache_tokens=256)
    try:
        assert batched.decode_path.startswith("continuous batching") and batched.decode_fallback is None
        ids = batched.chat_ids([{"role": "user", "content": "Hi"}])
        assert batched.complete(ids, SamplingParams(max_tokens=3, temperature=0.0)).completion_tokens > 0
    finally:
        batched.close()
    alone = TextGenerator(folders["llama-3"], cpu, torch.float32, 256, fast_decode=None)
    assert alone.decode_path == "transformers" and alone.decode_fallback is None  # not wanted on the CPU
    with pytest.raises(InvalidInputError, match="triton is not installed"):
        TextGenerator(folders["llama-3"], cpu, torch.float32, 256, fast_decode=True)


def test_a_generation_backend_answers_the_whole_backend_protocol(folders: dict[str, Path]) -> None:
    """No batcher, replica, spill-over or OOM split; its decoding reported only when it is
    continuously batched; and it takes no CPU replica."""
    batched = TextGenerator(folders["llama-3"], CPU, torch.float32, max_sequences=2, kv_cache_tokens=256)
    alone = TextGenerator(folders["llama-3"], CPU, torch.float32, model=batched.model)
    backend = GenerationBackend(batched, CPU, BatchPolicy())
    turns = GenerationBackend(alone, CPU, BatchPolicy())
    try:
        for each in (backend, turns):
            assert each.batchers() == [] and each.replica_device() is None and each.in_flight() == 0
            assert each.spillovers() == each.oom_splits() == 0 and each.decode_fallback is None
        assert backend.decode_path == batched.decode_path and turns.decode_path == "transformers"
        decoding = backend.decoding()
        assert decoding is not None and (decoding["active"], decoding["waiting"]) == (0, 0)
        assert turns.decoding() is None
        with pytest.raises(InvalidInputError, match="generation models take no CPU replica") as refused:
            add_cpu_replica(backend, turns, SpillPolicy())
        assert refused.value.field == "options.cpu_replica"
    finally:
        backend.close()
