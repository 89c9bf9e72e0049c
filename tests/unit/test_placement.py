"""The weights estimate read off a model's files before loading (the budget's arithmetic: test_memory)."""

from __future__ import annotations

from pathlib import Path

from altlas.orchestrator.placement import estimate_bytes


def test_estimates_count_weight_files_and_widen_gguf(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"\0" * 1000)
    (folder / "tokenizer.json").write_text("{}" * 500)  # not weights
    assert estimate_bytes(folder) == 1200
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"\0" * 1000)
    assert estimate_bytes(gguf) == 4800
