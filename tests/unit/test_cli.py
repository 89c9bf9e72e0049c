"""The CLI as a user runs it: real processes, real files, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


def altlas(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "altlas", *args], input=stdin, capture_output=True, text=True, timeout=120
    )


def test_segment_prints_yaml_by_default() -> None:
    result = altlas("segment", "Firefox'u aç ve İzmir'de ucuz otelleri ara")
    assert result.returncode == 0, result.stderr
    plan = yaml.safe_load(result.stdout)
    assert [s["task_type"] for s in plan["segments"]] == ["open", "search"]
    assert plan["language"] == "tr"


def test_segment_json_with_options() -> None:
    result = altlas(
        "segment", "Open Firefox", "--format", "json", "--mode", "Chaos", "--chaos-level", "3", "--seed", "1"
    )
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["mode"] == "Chaos" and plan["chaos_level"] == 3 and plan["metadata"]["seed"] == 1


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("segment", ""), "command"),
        (("segment", "x" * 20_000), "limit"),
        (("segment", "Open it", "--mode", "Weird"), "--mode"),
        (("segment", "Open it", "--mode", "Chaos"), "--chaos-level"),
        (("segment", "Open it", "--chaos-level", "4"), "--chaos-level"),
        (("segment", "Open it", "--mode", "Chaos", "--chaos-level", "11"), "--chaos-level"),
        (("segment", "Open it", "--chaos-level", "abc"), "--chaos-level"),
        (("segment",), "COMMAND"),
        (("segment", "--input", "/nonexistent/file.txt"), "--input"),
        (("segment", "Open it", "--urgency", "12"), "--urgency"),
        (("segment", "Open it", "--deadline", "soon"), "--deadline"),
        (("validate", "/nonexistent.json"), "cannot read"),
        (("frobnicate",), "invalid choice"),
    ],
)
def test_errors_exit_2_with_one_line(args: tuple[str, ...], needle: str) -> None:
    result = altlas(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("altlas: error:"), result.stderr
    assert needle in lines[0]
    assert "Traceback" not in result.stderr


def test_bulk_jsonl_keeps_order_and_reports_bad_lines(tmp_path: Path) -> None:
    commands = [f"Open app{i} and search for item {i}" for i in range(300)]
    commands[10] = "x" * 10_001  # too long: an error record in its place
    source = tmp_path / "in.txt"
    source.write_text("\n".join(commands[:150]) + "\n\n" + "\n".join(commands[150:]) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = altlas("segment", "--input", str(source), "--format", "jsonl", "--output", str(out))
    assert result.returncode == 1 and "1 of" in result.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 300
    assert rows[10]["error"]["param"] == "command" and rows[10]["line"] == 11
    good = [r for i, r in enumerate(rows) if i != 10]
    assert [r["command"] for r in good] == [c for i, c in enumerate(commands) if i != 10]
    assert all("\n" not in line for line in out.read_text(encoding="utf-8").splitlines())


def test_bulk_accepts_json_lines_and_stdin() -> None:
    stdin = '{"command": "Open Firefox", "mode": "Explore", "seed": 4}\nSearch for cats\n'
    result = altlas("segment", "--input", "-", "--format", "jsonl", stdin=stdin)
    assert result.returncode == 0, result.stderr
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert first["mode"] == "Explore" and first["metadata"]["seed"] == 4
    assert second["segments"][0]["task_type"] == "search"


def test_bulk_rejects_non_utf8_input(tmp_path: Path) -> None:
    source = tmp_path / "latin1.txt"
    source.write_bytes("Dosyaları sil\n".encode("latin-1", errors="replace") + b"\xff\xfe\n")
    result = altlas("segment", "--input", str(source), "--format", "jsonl")
    assert result.returncode == 2 and "UTF-8" in result.stderr and "Traceback" not in result.stderr


def test_bulk_refuses_yaml() -> None:
    result = altlas("segment", "--input", "-", "--format", "yaml", stdin="Open it\n")
    assert result.returncode == 2 and "jsonl" in result.stderr


def test_schema_and_validate_round_trip(tmp_path: Path) -> None:
    schema = json.loads(altlas("schema").stdout)
    assert schema["title"].startswith("ALT file")
    plan_json = altlas("segment", "Copy a.txt to b and send it to Ali", "--format", "json").stdout
    path = tmp_path / "plan.json"
    path.write_text(plan_json, encoding="utf-8")
    as_yaml = altlas("validate", str(path), "--to", "yaml")
    assert as_yaml.returncode == 0, as_yaml.stderr
    yaml_path = tmp_path / "plan.yaml"
    yaml_path.write_text(as_yaml.stdout, encoding="utf-8")
    back = altlas("validate", str(yaml_path), "--to", "json")
    assert json.loads(back.stdout) == json.loads(plan_json)


def test_validate_rejects_a_cycle(tmp_path: Path) -> None:
    plan = json.loads(altlas("segment", "Open it and search for cats", "--format", "json").stdout)
    plan["segments"][0]["dependencies"] = ["seg-2"]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(plan), encoding="utf-8")
    result = altlas("validate", str(path))
    assert result.returncode == 2 and "segments[0].dependencies" in result.stderr and "cycle" in result.stderr


def test_doctor_reports_and_never_fails() -> None:
    text = altlas("doctor")
    assert text.returncode == 0, text.stderr
    assert "torch" in text.stdout and "GPU path:" in text.stdout
    report = json.loads(altlas("doctor", "--json").stdout)
    assert {"torch_version", "cuda_available", "driver_version", "gpus", "suitable", "verdict"} <= set(report)
    # suitable: CUDA, a GPU of compute capability 7.0 or more, and the test kernel ran on it
    capable = any(tuple(map(int, g["compute_capability"].split("."))) >= (7, 0) for g in report["gpus"])
    ran = report["kernel_check"] == "ok"
    assert report["suitable"] is (report["cuda_available"] and capable and ran) and report["verdict"]


def test_embed_cli(tmp_path: Path) -> None:
    import numpy as np

    source = tmp_path / "texts.txt"
    source.write_text("Open Firefox\n\nFirefox'u aç\n", encoding="utf-8")
    out = tmp_path / "v.npy"
    result = altlas("embed", "--input", str(source), "--output", str(out), "--device", "cpu")
    assert result.returncode == 0, result.stderr
    vectors = np.load(out)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    bad = altlas("embed", "--input", str(source), "--output", str(tmp_path / "v.txt"))
    assert bad.returncode == 2 and ".npy" in bad.stderr
    gpu = altlas("embed", "--input", str(source), "--device", "cuda:7")
    assert gpu.returncode == 2 and gpu.stderr.startswith("altlas: error: device")
