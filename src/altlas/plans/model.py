"""The ALT plan (file format v1): an `AltFile` holds a command and its typed segments."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "FORMAT_VERSION",
    "AltFile",
    "Language",
    "Mode",
    "Parameter",
    "ParameterType",
    "Persona",
    "Segment",
    "TaskType",
    "utc_now_iso",
]

FORMAT_VERSION = "1.0"


class TaskType(StrEnum):
    SEARCH = "search"
    OPEN = "open"
    CLOSE = "close"
    CREATE = "create"
    SAVE = "save"
    DELETE = "delete"
    MOVE = "move"
    COPY = "copy"
    COMPRESS = "compress"
    DOWNLOAD = "download"
    SEND = "send"
    TRANSFORM = "transform"
    TRANSLATE = "translate"
    ANALYZE = "analyze"
    SUMMARIZE = "summarize"
    SHOW = "show"
    SORT = "sort"
    EXECUTE = "execute"
    SCHEDULE = "schedule"
    SCREENSHOT = "screenshot"


class Language(StrEnum):
    EN = "en"
    TR = "tr"


class Mode(StrEnum):
    NORMAL = "Normal"
    DREAM = "Dream"
    EXPLORE = "Explore"
    CHAOS = "Chaos"


class Persona(StrEnum):
    TECHNICAL_EXPERT = "technical_expert"
    CREATIVE_WRITER = "creative_writer"
    RESEARCHER = "researcher"
    PROJECT_MANAGER = "project_manager"


class ParameterType(StrEnum):
    STRING = "string"
    NUMBER = "number"
    BOOLEAN = "boolean"
    ARRAY = "array"
    OBJECT = "object"


@dataclass(slots=True)
class Parameter:
    name: str
    value: Any
    type: ParameterType = ParameterType.STRING
    required: bool = False
    description: str = ""


@dataclass(slots=True)
class Segment:
    id: str
    task_type: TaskType
    content: str
    parameters: list[Parameter] = field(default_factory=list)
    dependencies: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def parameter(self, name: str) -> Parameter | None:
        return next((p for p in self.parameters if p.name == name), None)


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class AltFile:
    command: str
    language: Language
    segments: list[Segment] = field(default_factory=list)
    mode: Mode = Mode.NORMAL
    persona: Persona = Persona.TECHNICAL_EXPERT
    chaos_level: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    version: str = FORMAT_VERSION
    timestamp: str = field(default_factory=utc_now_iso)

    def segment(self, segment_id: str) -> Segment | None:
        return next((s for s in self.segments if s.id == segment_id), None)
