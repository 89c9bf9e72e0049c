"""ALT plans: lossless JSON/YAML round trips and validation that names the bad field."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest

from altlas.errors import InvalidPlanError
from altlas.plans import dumps, loads, plan_from_dict, plan_to_dict
from altlas.plans.model import Mode, Persona
from altlas.plans.schema import plan_json_schema
from altlas.segmentation import SegmentationOptions, segment_command

COMMANDS = [
    "Chrome'u aç ve hava durumunu ara, sonra ekran görüntüsü al",
    "Copy report.docx to the shared drive and send a link to Ayse",
    "Translate the README into Turkish and at the same time open the editor",
]


def sample(**options: Any) -> dict[str, Any]:
    return plan_to_dict(segment_command(COMMANDS[0], SegmentationOptions(**options)))


@pytest.mark.parametrize("fmt", ["json", "yaml"])
@pytest.mark.parametrize("command", COMMANDS)
def test_round_trip_is_lossless(command: str, fmt: str) -> None:
    plan = segment_command(command, SegmentationOptions(mode=Mode.EXPLORE, persona=Persona.RESEARCHER))
    text = dumps(plan, fmt)  # type: ignore[arg-type]
    again = loads(text, fmt)  # type: ignore[arg-type]
    assert plan_to_dict(again) == plan_to_dict(plan)
    assert dumps(again, fmt) == text  # type: ignore[arg-type]


def test_json_to_yaml_to_json() -> None:
    plan = segment_command(COMMANDS[1])
    via_yaml = loads(dumps(loads(dumps(plan, "json"), "json"), "yaml"), "yaml")
    assert plan_to_dict(via_yaml) == plan_to_dict(plan)


def test_yaml_keeps_strings_that_look_like_other_types() -> None:
    plan = segment_command("Search for yes, then open 1.0")
    plan.segments[0].parameters[0].value = "yes"
    plan.metadata["user"] = {"flag": "no", "when": "2024-01-01", "n": "007", "null": "null"}
    assert plan_to_dict(loads(dumps(plan, "yaml"), "yaml")) == plan_to_dict(plan)


@pytest.mark.parametrize("command", COMMANDS)
def test_plans_satisfy_the_json_schema(command: str) -> None:
    jsonschema.validate(plan_to_dict(segment_command(command)), plan_json_schema())
    chaos = segment_command(command, SegmentationOptions(mode=Mode.CHAOS, chaos_level=5))
    jsonschema.validate(plan_to_dict(chaos), plan_json_schema())


def mutated(change: Any) -> dict[str, Any]:
    data = copy.deepcopy(sample())
    change(data)
    return data


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d["segments"][1].update(dependencies=["seg-9"]), "segments[1].dependencies[0]"),
        (lambda d: d["segments"][0].update(dependencies=["seg-3"]), "segments[0].dependencies"),  # cycle
        (lambda d: d["segments"][0].update(dependencies=["seg-1"]), "segments[0].dependencies[0]"),
        (lambda d: d["segments"][1].update(id="seg-1"), "segments[1].id"),
        (lambda d: d.update(chaos_level=3), "chaos_level"),
        (lambda d: d.update(mode="Chaos"), "chaos_level"),
        (lambda d: d.update(mode="Chaos", chaos_level=11), "chaos_level"),
        (lambda d: d.update(mode="Chaos", chaos_level=True), "chaos_level"),
        (lambda d: d.update(mode="Weird"), "mode"),
        (lambda d: d.update(language="de"), "language"),
        (lambda d: d.update(id="../../etc/passwd"), "id"),
        (lambda d: d.update(version="2.0"), "version"),
        (lambda d: d.update(timestamp="yesterday"), "timestamp"),
        (lambda d: d.pop("command"), "command"),
        (lambda d: d.update(segments="none"), "segments"),
        (lambda d: d["segments"][0].update(task_type="fly"), "segments[0].task_type"),
        (lambda d: d["segments"][0]["parameters"][0].update(type="date"), "segments[0].parameters[0].type"),
        (lambda d: d["segments"][0]["parameters"][0].update(value=5), "segments[0].parameters[0].value"),
        (lambda d: d["segments"][0]["metadata"].update(confidence=1.5), "segments[0].metadata.confidence"),
        (lambda d: d.update(extra=1), "extra"),
    ],
)
def test_invalid_plans_name_the_field(change: Any, field: str) -> None:
    with pytest.raises(InvalidPlanError) as info:
        plan_from_dict(mutated(change))
    assert info.value.field == field
    assert field in str(info.value)


def test_invalid_plans_fail_the_schema_too() -> None:
    for change in (
        lambda d: d.update(chaos_level=3),
        lambda d: d.update(mode="Chaos"),
        lambda d: d.update(language="de"),
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(mutated(change), plan_json_schema())


def test_syntax_errors_are_invalid_plans() -> None:
    with pytest.raises(InvalidPlanError, match="not valid JSON"):
        loads("{", "json")
    with pytest.raises(InvalidPlanError, match="not valid YAML"):
        loads("a: [", "yaml")
    with pytest.raises(InvalidPlanError, match="must be an object"):
        loads("[]", "json")


def test_schema_is_valid_json_schema() -> None:
    schema = plan_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert json.loads(json.dumps(schema)) == schema
