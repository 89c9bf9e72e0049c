"""JSON Schema (draft 2020-12) of the ALT plan format v1.

It states what a schema can: field types, enums, ranges, and chaos_level being
required in Chaos mode and absent otherwise. Rules across segments (unique ids,
known dependencies, no cycles) are checked by `codec.plan_from_dict`.
"""

from __future__ import annotations

from typing import Any

from altlas.plans.model import FORMAT_VERSION, Language, Mode, ParameterType, Persona, TaskType

__all__ = ["plan_json_schema"]


def _values(enum: Any) -> list[str]:
    return [e.value for e in enum]


def plan_json_schema() -> dict[str, Any]:
    parameter = {
        "type": "object",
        "required": ["name", "value"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "value": {
                "description": "Typed by `type`; extracted values are substrings of the command, "
                "except `when_iso`: a schedule's `when` resolved to ISO 8601 (a date-time with its "
                "offset, or a date)"
            },
            "type": {"enum": _values(ParameterType), "default": "string"},
            "required": {"type": "boolean", "default": False},
            "description": {"type": "string"},
        },
    }
    segment = {
        "type": "object",
        "required": ["id", "task_type", "content"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,64}$"},
            "task_type": {"enum": _values(TaskType)},
            "content": {"type": "string", "description": "The sub-command text, without markers"},
            "parameters": {"type": "array", "items": {"$ref": "#/$defs/parameter"}},
            "dependencies": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Ids of segments that must finish first; no cycles",
            },
            "metadata": {
                "type": "object",
                "properties": {
                    "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                    "priority_score": {"type": "number"},
                    "execution_order": {"type": "integer", "minimum": 1},
                },
            },
        },
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://altlas.dev/schemas/alt-file-1.0.json",
        "title": "ALT file (ALT_LAS task plan) v1",
        "type": "object",
        "required": ["id", "version", "timestamp", "command", "language", "mode", "segments"],
        "additionalProperties": False,
        "properties": {
            "id": {
                "type": "string",
                "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
            },
            "version": {"const": FORMAT_VERSION},
            "timestamp": {"type": "string", "format": "date-time"},
            "command": {"type": "string"},
            "language": {"enum": _values(Language)},
            "mode": {"enum": _values(Mode)},
            "persona": {"enum": _values(Persona), "default": Persona.TECHNICAL_EXPERT.value},
            "chaos_level": {"type": "integer", "minimum": 1, "maximum": 10},
            "segments": {"type": "array", "items": {"$ref": "#/$defs/segment"}},
            "metadata": {"type": "object"},
        },
        "if": {"properties": {"mode": {"const": Mode.CHAOS.value}}},
        "then": {"required": ["chaos_level"]},
        "else": {"not": {"required": ["chaos_level"]}},
        "$defs": {"parameter": parameter, "segment": segment},
    }
