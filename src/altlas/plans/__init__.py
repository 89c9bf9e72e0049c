"""The ALT plan format (v1): model, JSON/YAML codec, schema, priorities."""

from altlas.plans.codec import PlanFormat, dumps, loads, plan_from_dict, plan_to_dict
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
from altlas.plans.priorities import PriorityRequest, PriorityWeights, prioritize

__all__ = [
    "FORMAT_VERSION",
    "AltFile",
    "Language",
    "Mode",
    "Parameter",
    "ParameterType",
    "Persona",
    "PlanFormat",
    "PriorityRequest",
    "PriorityWeights",
    "Segment",
    "TaskType",
    "dumps",
    "loads",
    "plan_from_dict",
    "plan_to_dict",
    "prioritize",
]
