"""The auto device policy's arithmetic: estimates from files, and the budget check."""

from __future__ import annotations

from pathlib import Path

from altlas.orchestrator.placement import estimate_bytes, fits


def test_estimates_count_weight_files_and_widen_gguf(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"\0" * 1000)
    (folder / "tokenizer.json").write_text("{}" * 500)  # not weights
    assert estimate_bytes(folder) == 1200
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"\0" * 1000)
    assert estimate_bytes(gguf) == 4800


def test_a_model_fits_what_is_left_of_the_budget() -> None:
    ok, why = fits(need=3 * 10**9, used=4 * 10**9, budget=8 * 10**9)
    assert ok and "4.00 GB of the 8.0 GB GPU budget left: fits" in why
    ok, why = fits(need=5 * 10**9, used=4 * 10**9, budget=8 * 10**9)
    assert not ok and "does not fit" in why
    assert fits(need=1, used=9 * 10**9, budget=8 * 10**9)[0] is False
