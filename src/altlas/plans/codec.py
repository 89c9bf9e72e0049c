"""ALT plans to and from plain dicts, JSON and YAML, losslessly.

`plan_from_dict` checks every field (types, enums, ranges, unique ids, known
dependencies, no cycles) and raises `InvalidPlanError` naming the first bad
field, e.g. ``segments[1].dependencies[0]``.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from datetime import datetime
from typing import Any, Literal

import yaml

from altlas.errors import InvalidPlanError
from altlas.plans.graph import find_cycle
from altlas.plans.model import (
    FORMAT_VERSION,
    AltFile,
    Language,
    Mode,
    Parameter,
    ParameterType,
    Persona,
    Segment,
    TaskType,
)

__all__ = [
    "PlanFormat",
    "dumps",
    "loads",
    "non_finite_path",
    "parameter_to_dict",
    "plan_from_dict",
    "plan_to_dict",
]

PlanFormat = Literal["json", "yaml"]

try:  # the C loader and dumper are several times faster where libyaml is present
    _YamlLoader: Any = yaml.CSafeLoader
    _YamlDumper: Any = yaml.CSafeDumper
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _YamlLoader = yaml.SafeLoader
    _YamlDumper = yaml.SafeDumper

_SEGMENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def plan_to_dict(plan: AltFile) -> dict[str, Any]:
    """The plan as JSON-ready builtins, in the format's field order."""
    data: dict[str, Any] = {
        "id": plan.id,
        "version": plan.version,
        "timestamp": plan.timestamp,
        "command": plan.command,
        "language": str(plan.language),
        "mode": str(plan.mode),
        "persona": str(plan.persona),
    }
    if plan.chaos_level is not None:
        data["chaos_level"] = plan.chaos_level
    data["segments"] = [_segment_to_dict(s) for s in plan.segments]
    data["metadata"] = plan.metadata
    return data


def parameter_to_dict(parameter: Parameter) -> dict[str, Any]:
    return {
        "name": parameter.name,
        "value": parameter.value,
        "type": str(parameter.type),
        "required": parameter.required,
        "description": parameter.description,
    }


def _segment_to_dict(segment: Segment) -> dict[str, Any]:
    return {
        "id": segment.id,
        "task_type": str(segment.task_type),
        "content": segment.content,
        "parameters": [parameter_to_dict(p) for p in segment.parameters],
        "dependencies": list(segment.dependencies),
        "metadata": segment.metadata,
    }


def dumps(plan: AltFile, fmt: PlanFormat = "json", *, indent: int | None = 2) -> str:
    data = plan_to_dict(plan)
    if fmt == "yaml":
        return yaml.dump(data, Dumper=_YamlDumper, sort_keys=False, allow_unicode=True, width=100)
    return json.dumps(data, ensure_ascii=False, indent=indent, separators=None if indent else (",", ":"))


def loads(text: str, fmt: PlanFormat = "json") -> AltFile:
    """Parse and validate a plan; raises InvalidPlanError on syntax or content errors."""
    try:
        data = yaml.load(text, Loader=_YamlLoader) if fmt == "yaml" else json.loads(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise InvalidPlanError(f"not valid {fmt.upper()}: {_first_line(exc)}", field="plan") from exc
    return plan_from_dict(data)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


# --- reading, with a named field for every failure -------------------------------------


def _fail(field: str, message: str) -> InvalidPlanError:
    return InvalidPlanError(message, field=field)


def _get(
    data: dict[str, Any], key: str, path: str, kind: type | tuple[type, ...], *, required: bool = True
) -> Any:
    if key not in data:
        if required:
            raise _fail(f"{path}{key}", "is required")
        return None
    value = data[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        names = (
            " or ".join(k.__name__ for k in _as_tuple(kind))
            .replace("str", "string")
            .replace("dict", "object")
        )
        raise _fail(f"{path}{key}", f"must be {names.replace('list', 'array')}, got {_json_type(value)}")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }.get(type(value), type(value).__name__)


def _enum(enum: type[Any], value: Any, field: str) -> Any:
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(e.value for e in enum)
        raise _fail(field, f"must be one of {allowed}; got {value!r}") from None


def non_finite_path(value: Any, path: str = "") -> str | None:
    """Path of the first NaN or infinity inside a JSON-like value (JSON has no such numbers)."""
    try:  # the common case, checked by the C encoder in one pass; the walk below only on failure
        json.dumps(value, allow_nan=False)
        return None
    except (ValueError, TypeError):
        pass
    return _non_finite_walk(value, path)


def _non_finite_walk(value: Any, path: str) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return path or "value"
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = ((f"[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for key, child in items:
        child_path = f"{path}{key}" if str(key).startswith("[") else f"{path}.{key}" if path else str(key)
        found = _non_finite_walk(child, child_path)
        if found:
            return found
    return None


def plan_from_dict(data: Any) -> AltFile:
    """Build a plan from builtins, checking every rule of the format."""
    if not isinstance(data, dict):
        raise _fail("plan", f"must be an object, got {_json_type(data)}")
    bad_number = non_finite_path(data)
    if bad_number:
        raise _fail(bad_number, "must be a finite number (JSON has no NaN or Infinity)")
    known = {
        "id",
        "version",
        "timestamp",
        "command",
        "language",
        "mode",
        "persona",
        "chaos_level",
        "segments",
        "metadata",
    }
    extra = sorted(set(data) - known)
    if extra:
        raise _fail(extra[0], "is not a field of an ALT plan")
    plan_id = _get(data, "id", "", str)
    _check_uuid(plan_id)
    version = _get(data, "version", "", str)
    if version != FORMAT_VERSION:
        raise _fail("version", f"must be {FORMAT_VERSION!r}, got {version!r}")
    timestamp = _get(data, "timestamp", "", str)
    _check_timestamp(timestamp)
    command = _get(data, "command", "", str)
    language = _enum(Language, _get(data, "language", "", str), "language")
    mode = _enum(Mode, _get(data, "mode", "", str), "mode")
    persona = _enum(
        Persona, _get(data, "persona", "", str, required=False) or Persona.TECHNICAL_EXPERT, "persona"
    )
    chaos_level = _get(data, "chaos_level", "", int, required=False)
    check_chaos_level(mode, chaos_level)
    segments = [_segment_from_dict(s, i) for i, s in enumerate(_get(data, "segments", "", list))]
    metadata = _get(data, "metadata", "", dict, required=False)
    plan = AltFile(
        command=command, language=language, segments=segments, mode=mode, persona=persona,
        chaos_level=chaos_level, metadata={} if metadata is None else metadata, id=plan_id,
        version=version, timestamp=timestamp,
    )  # fmt: skip
    check_graph(plan.segments)
    return plan


def check_chaos_level(mode: Mode, chaos_level: int | None, field: str = "chaos_level") -> None:
    """chaos_level is an integer 1-10, required in Chaos mode and only there."""
    if mode is Mode.CHAOS:
        if chaos_level is None:
            raise _fail(field, "is required when mode is Chaos (an integer 1-10)")
        if isinstance(chaos_level, bool) or not isinstance(chaos_level, int) or not 1 <= chaos_level <= 10:
            raise _fail(field, f"must be an integer from 1 to 10, got {chaos_level!r}")
    elif chaos_level is not None:
        raise _fail(field, f"is only allowed when mode is Chaos (mode is {mode.value})")


def _check_uuid(value: str) -> None:
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        raise _fail("id", f"must be a UUID, got {value!r}") from None
    if parsed.version != 4 or str(parsed) != value.lower():
        raise _fail("id", f"must be a canonical UUID version 4, got {value!r}")


def _check_timestamp(value: str) -> None:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _fail("timestamp", f"must be an ISO 8601 date-time, got {value!r}") from None


def _segment_from_dict(data: Any, index: int) -> Segment:
    path = f"segments[{index}]."
    if not isinstance(data, dict):
        raise _fail(f"segments[{index}]", f"must be an object, got {_json_type(data)}")
    extra = sorted(set(data) - {"id", "task_type", "content", "parameters", "dependencies", "metadata"})
    if extra:
        raise _fail(path + extra[0], "is not a field of a segment")
    segment_id = _get(data, "id", path, str)
    if not _SEGMENT_ID.fullmatch(segment_id):
        raise _fail(path + "id", "must be 1-64 letters, digits or _ . : -")
    task_type = _enum(TaskType, _get(data, "task_type", path, str), path + "task_type")
    content = _get(data, "content", path, str)
    raw_parameters = _get(data, "parameters", path, list, required=False) or []
    parameters = [_parameter_from_dict(p, f"{path}parameters[{j}]") for j, p in enumerate(raw_parameters)]
    dependencies = _get(data, "dependencies", path, list, required=False) or []
    for j, dep in enumerate(dependencies):
        if not isinstance(dep, str):
            raise _fail(f"{path}dependencies[{j}]", f"must be a segment id string, got {_json_type(dep)}")
    metadata = _get(data, "metadata", path, dict, required=False) or {}
    _check_segment_metadata(metadata, path)
    return Segment(segment_id, task_type, content, parameters, list(dependencies), metadata)


def _check_segment_metadata(metadata: dict[str, Any], path: str) -> None:
    confidence = metadata.get("confidence")
    if confidence is not None and (
        isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0 <= confidence <= 1
    ):
        raise _fail(path + "metadata.confidence", f"must be a number from 0 to 1, got {confidence!r}")
    order = metadata.get("execution_order")
    if order is not None and (isinstance(order, bool) or not isinstance(order, int) or order < 1):
        raise _fail(path + "metadata.execution_order", f"must be a positive integer, got {order!r}")


def _parameter_from_dict(data: Any, path: str) -> Parameter:
    if not isinstance(data, dict):
        raise _fail(path, f"must be an object, got {_json_type(data)}")
    extra = sorted(set(data) - {"name", "value", "type", "required", "description"})
    if extra:
        raise _fail(f"{path}.{extra[0]}", "is not a field of a parameter")
    name = _get(data, "name", path + ".", str)
    if not name:
        raise _fail(path + ".name", "must not be empty")
    if "value" not in data:
        raise _fail(path + ".value", "is required")
    ptype = _enum(
        ParameterType, _get(data, "type", path + ".", str, required=False) or "string", path + ".type"
    )
    value = data["value"]
    _check_value_type(value, ptype, path + ".value")
    required = _get(data, "required", path + ".", bool, required=False)
    description = _get(data, "description", path + ".", str, required=False)
    return Parameter(name, value, ptype, bool(required), description or "")


_VALUE_TYPES: dict[ParameterType, tuple[type, ...]] = {
    ParameterType.STRING: (str,),
    ParameterType.NUMBER: (int, float),
    ParameterType.BOOLEAN: (bool,),
    ParameterType.ARRAY: (list,),
    ParameterType.OBJECT: (dict,),
}


def _check_value_type(value: Any, ptype: ParameterType, field: str) -> None:
    if value is None:
        return
    ok = isinstance(value, _VALUE_TYPES[ptype])
    if ptype is ParameterType.NUMBER and isinstance(value, bool):
        ok = False
    if not ok:
        raise _fail(field, f"must be a {ptype.value} (the parameter's type), got {_json_type(value)}")


def check_graph(segments: list[Segment]) -> None:
    """Unique ids, dependencies on existing other segments, and no cycles."""
    index: dict[str, int] = {}
    for i, segment in enumerate(segments):
        if segment.id in index:
            raise _fail(
                f"segments[{i}].id", f"duplicates the id of segments[{index[segment.id]}]: {segment.id!r}"
            )
        index[segment.id] = i
    for i, segment in enumerate(segments):
        for j, dep in enumerate(segment.dependencies):
            if dep not in index:
                raise _fail(f"segments[{i}].dependencies[{j}]", f"names no segment of this plan: {dep!r}")
            if dep == segment.id:
                raise _fail(f"segments[{i}].dependencies[{j}]", "a segment cannot depend on itself")
    cycle = find_cycle({s.id: s.dependencies for s in segments})
    if cycle:
        first = index[cycle[0]]
        raise _fail(f"segments[{first}].dependencies", "form a cycle: " + " -> ".join([*cycle, cycle[0]]))
