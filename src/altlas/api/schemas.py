"""Request bodies of the segmentation API (pydantic lives here, at the boundary, only)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from altlas.plans.model import Language, Mode, Persona, TaskType

__all__ = ["BatchSegmentRequest", "PrioritizeRequest", "SegmentOptionsBody", "SegmentRequest", "WeightsBody"]

_SEED = Field(default=None, ge=-(2**63), le=2**63 - 1, description="Same seed, same plan (modes, personas)")


class SegmentOptionsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    language: Language | None = Field(default=None, description="en or tr; detected when left out")
    mode: Mode = Mode.NORMAL
    persona: Persona = Persona.TECHNICAL_EXPERT
    chaos_level: StrictInt | None = Field(
        default=None, ge=1, le=10, description="1-10, required iff mode is Chaos"
    )
    seed: StrictInt | None = _SEED
    urgency: StrictInt = Field(default=5, ge=1, le=10)
    deadline: datetime | None = Field(default=None, description="ISO 8601; a near deadline raises urgency")
    user_preferences: dict[TaskType, StrictInt] = Field(
        default_factory=dict, description="task type -> preference 1-10 (default 5)"
    )
    metadata: dict[str, Any] | None = Field(
        default=None, description="Stored with the plan under metadata.user"
    )
    store: StrictBool = Field(default=True, description="Keep the plan under the data dir")


class SegmentRequest(SegmentOptionsBody):
    command: StrictStr = Field(description="The command, English or Turkish; at most 10,000 characters")


class BatchSegmentRequest(SegmentOptionsBody):
    commands: list[StrictStr] = Field(min_length=1, description="Up to 1000 commands, segmented alike")


class WeightsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dependency: float = Field(default=0.4, ge=0, allow_inf_nan=False)
    urgency: float = Field(default=0.3, ge=0, allow_inf_nan=False)
    preference: float = Field(default=0.2, ge=0, allow_inf_nan=False)
    confidence: float = Field(default=0.1, ge=0, allow_inf_nan=False)


class PrioritizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan: dict[str, Any] = Field(description="An ALT plan (JSON object)")
    urgency: StrictInt = Field(default=5, ge=1, le=10)
    deadline: datetime | None = None
    user_preferences: dict[TaskType, StrictInt] = Field(default_factory=dict)
    weights: WeightsBody = Field(default_factory=WeightsBody)
