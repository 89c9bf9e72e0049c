"""altlas profile: the files, the tables and the verdict; GPU time read from a Chrome trace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from altlas.cli.main import main
from altlas.observability.profiling import _device_time, _verdict


def test_profile_embed_writes_a_trace_a_report_and_a_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "texts.txt"
    source.write_text("Chrome'u aç ve hava durumunu ara\nopen the browser\n\ntake a screenshot\n")
    out = tmp_path / "profile"
    assert main(["profile", "embed", "--input", str(source), "--out", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "# altlas profile: embed, 3 inputs on cpu" in printed and "**CPU-bound**" in printed
    assert "aten::addmm" in printed  # the encoder's matrix products rank among the top operations
    trace = json.loads((out / "trace.json").read_text())
    assert any(e.get("name") == "aten::addmm" for e in trace["traceEvents"])
    assert (out / "report.md").read_text().startswith("# altlas profile") and (out / "cprofile.txt").exists()


def test_profile_refuses_bad_input_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["profile", "segment", "--input", str(empty), "--out", str(tmp_path / "p")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == ["altlas: error: input: holds no text"]


def test_gpu_time_merges_overlapping_kernels_and_sums_copies(tmp_path: Path) -> None:
    events = [
        {"ph": "X", "cat": "kernel", "ts": 0, "dur": 10},
        {"ph": "X", "cat": "kernel", "ts": 5, "dur": 10},  # overlaps the first: 15 us busy in all
        {"ph": "X", "cat": "kernel", "ts": 100, "dur": 5},
        {"ph": "X", "cat": "gpu_memcpy", "ts": 20, "dur": 4, "args": {"bytes": 4096}},
        {"ph": "X", "cat": "gpu_memcpy", "ts": 30, "dur": 6, "args": {"bytes": 1024}},
        {"ph": "X", "cat": "cpu_op", "ts": 0, "dur": 500},
    ]
    trace = tmp_path / "trace.json"
    trace.write_text(json.dumps({"traceEvents": events}))
    busy_s, transfer_s, transfer_bytes = _device_time(trace)
    assert busy_s == pytest.approx(20e-6) and transfer_s == pytest.approx(10e-6) and transfer_bytes == 5120


@pytest.mark.parametrize(
    ("busy", "copies", "word"),
    [(0.8, 0.1, "GPU-bound"), (0.2, 0.5, "Transfer-bound"), (0.1, 0.05, "CPU-bound")],
)
def test_verdicts(busy: float, copies: float, word: str) -> None:
    verdict = _verdict(1.0, busy, copies, True, [("aten::mm", 0.1, 3)], [("f", 0.1, 1)])
    assert verdict.startswith(f"**{word}**")
