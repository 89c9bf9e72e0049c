"""Parameter values on a command set written around issue 19's weaknesses, scored by its rule.

tests/data/segmentation_eval_parameters.jsonl holds one command a line with its expected
types and, per segment, the expected values (null: the parameter must be absent); schedule
lines carry the request's `now` and `timezone` and expect `when_iso`. The set runs through
`altlas segment --input FILE --format jsonl`, as the issue's hidden sets do. A value is right
when it names the thing: equal to the expected value, or differing from it by a Turkish case
ending after it ("Ayşe" for "Ayşe'ye"); a leading article, verb, question particle or
politeness word makes it wrong. A plan is fully correct when its language, types and every
expected value are right.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

SET = Path(__file__).parent.parent / "data" / "segmentation_eval_parameters.jsonl"
VALUES_FLOOR = 0.97  # the issue asks 0.90
PLANS_FLOOR = 0.95  # the issue asks 0.95
_CASE_ENDING = re.compile(
    r"'?(?:[yns])?(?:ı|i|u|ü|a|e|da|de|ta|te|dan|den|tan|ten|ın|in|un|ün|la|le|yla|yle)"
)


def value_is_right(found: object, expected: object) -> bool:
    if expected is None or found is None:
        return found is expected
    if found == expected:
        return True
    if not isinstance(found, str) or not isinstance(expected, str):
        return False
    longer, shorter = (found, expected) if len(found) > len(expected) else (expected, found)
    return longer.startswith(shorter) and _CASE_ENDING.fullmatch(longer[len(shorter) :]) is not None


def test_the_scoring_rule() -> None:
    assert value_is_right("Ayşe", "Ayşe'ye") and value_is_right("genel kanala", "genel kanal")
    assert not value_is_right("the report", "report")
    assert not value_is_right("makaleyi özetler misin", "makaleyi")
    assert not value_is_right("Bey", "Mehmet Bey")
    assert value_is_right(None, None) and not value_is_right("mısın", None)


def segment_through_the_cli(rows: list[dict[str, Any]], tmp_path: Path) -> list[dict[str, Any]]:
    """The plans of the rows' commands (with their `now` / `timezone`) from `altlas segment
    --input FILE --format jsonl`, as the issue's hidden sets run."""
    source, target = tmp_path / "commands.jsonl", tmp_path / "plans.jsonl"
    lines = [{"command": r["command"], **{k: r[k] for k in ("now", "timezone") if k in r}} for r in rows]
    source.write_text(
        "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8"
    )
    result = subprocess.run(
        [sys.executable, "-m", "altlas", "segment", "--input", str(source), "--format", "jsonl",
         "--output", str(target), "--workers", "1"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]


def test_parameter_values_on_the_issue_19_set(tmp_path: Path) -> None:
    rows = [json.loads(line) for line in SET.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(rows) >= 100
    plans = segment_through_the_cli(rows, tmp_path)
    values = right_values = right_plans = 0
    misses: list[str] = []
    for row, plan in zip(rows, plans, strict=True):
        segments = plan["segments"]
        ok = plan["language"] == row["language"] and [s["task_type"] for s in segments] == row["types"]
        for i, expected in enumerate(row["parameters"]):
            found = {p["name"]: p["value"] for p in segments[i]["parameters"]} if i < len(segments) else {}
            for name, value in expected.items():
                values += 1
                if value_is_right(found.get(name), value):
                    right_values += 1
                else:
                    ok = False
                    misses.append(f"{row['command']!r} {name}: {found.get(name)!r} != {value!r}")
        right_plans += ok
    value_share, plan_share = right_values / values, right_plans / len(rows)
    assert value_share >= VALUES_FLOOR, f"values {value_share:.3f}; {misses[:10]}"
    assert plan_share >= PLANS_FLOOR, f"plans {plan_share:.3f}; {misses[:10]}"
