"""`altlas segment --now --timezone`: schedule segments get when_iso, single and bulk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .test_cli import altlas


def when_iso(plan: dict[str, object]) -> list[object]:
    segments = plan["segments"]
    assert isinstance(segments, list)
    return [{p["name"]: p["value"] for p in s["parameters"]}.get("when_iso") for s in segments]


def test_one_command_with_a_clock() -> None:
    result = altlas(
        "segment", "Yarın 14.30'da toplantıyı hatırlat", "--now", "2025-03-12T10:00:00",
        "--timezone", "Europe/Istanbul", "--format", "json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert when_iso(json.loads(result.stdout)) == ["2025-03-13T14:30:00+03:00"]


def test_bulk_lines_take_the_runs_clock_or_their_own(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    lines = [
        "Remind me in two hours",
        json.dumps({"command": "Remind me in two hours", "timezone": "Asia/Tokyo"}),
        json.dumps({"command": "Remind me in two hours", "now": "2025-06-01T08:00:00+02:00"}),
        json.dumps({"command": "Remind me in two hours", "timezone": "Atlantis/Capital"}),
    ]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = altlas(
        "segment", "--input", str(source), "--format", "jsonl", "--now", "2025-03-12T10:00:00Z",
        "--timezone", "UTC", "--workers", "1",
    )  # fmt: skip
    assert result.returncode == 1  # the last line's zone is unknown
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert when_iso(records[0]) == ["2025-03-12T12:00:00+00:00"]
    assert when_iso(records[1]) == ["2025-03-12T21:00:00+09:00"]  # the same instant, in Tokyo
    assert when_iso(records[2]) == ["2025-06-01T10:00:00+02:00"]
    assert records[3] == {
        "line": 4,
        "error": {"message": records[3]["error"]["message"], "param": "timezone"},
    }


@pytest.mark.parametrize(
    ("args", "flag"),
    [(("--timezone", "Mars/Olympus_Mons"), "--timezone"), (("--now", "tomorrow"), "--now")],
)
def test_a_bad_clock_exits_2_naming_the_flag(args: tuple[str, ...], flag: str) -> None:
    result = altlas("segment", "Remind me in two hours", *args)
    assert result.returncode == 2
    assert result.stderr.startswith(f"altlas: error: {flag}:"), result.stderr
