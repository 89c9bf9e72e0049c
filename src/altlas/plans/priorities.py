"""Priority scores and execution order of a plan's segments.

score = w_dep * dependency + w_urg * urgency + w_pref * preference + w_conf * confidence
  dependency  1.0 with no prerequisites, else 1 - n_deps / (N - 1)
  urgency     the request's urgency (1-10) / 10; a past deadline makes it 10, one under
              7 days away makes it max(urgency, 10 - days left)
  preference  the user's preference for the segment's task type (1-10, default 5) / 10
  confidence  the segment's confidence, clamped to 0-1
The execution order is topological: prerequisites first, then higher scores first.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from altlas.errors import InvalidInputError
from altlas.plans.graph import topological_order
from altlas.plans.model import AltFile, Segment, TaskType

__all__ = ["PriorityRequest", "PriorityWeights", "effective_urgency", "prioritize"]

DEFAULT_URGENCY = 5
DEFAULT_PREFERENCE = 5


@dataclass(frozen=True, slots=True)
class PriorityWeights:
    dependency: float = 0.4
    urgency: float = 0.3
    preference: float = 0.2
    confidence: float = 0.1

    def __post_init__(self) -> None:
        for name in ("dependency", "urgency", "preference", "confidence"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise InvalidInputError(
                    f"must be a finite number >= 0, got {value!r}", field=f"weights.{name}"
                )

    def as_dict(self) -> dict[str, float]:
        return {
            "dependency": self.dependency,
            "urgency": self.urgency,
            "preference": self.preference,
            "confidence": self.confidence,
        }


@dataclass(frozen=True, slots=True)
class PriorityRequest:
    urgency: int = DEFAULT_URGENCY
    deadline: datetime | None = None
    preferences: Mapping[str, int] = field(default_factory=dict)
    weights: PriorityWeights = field(default_factory=PriorityWeights)

    def __post_init__(self) -> None:
        _check_scale(self.urgency, "urgency")
        for task_type, value in self.preferences.items():
            if task_type not in TaskType.__members__.values():
                allowed = ", ".join(t.value for t in TaskType)
                raise InvalidInputError(
                    f"unknown task type; use one of {allowed}", field=f"user_preferences.{task_type}"
                )
            _check_scale(value, f"user_preferences.{task_type}")


def _check_scale(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10:
        raise InvalidInputError(f"must be an integer from 1 to 10, got {value!r}", field=name)


def effective_urgency(urgency: int, deadline: datetime | None, now: datetime) -> float:
    """Urgency on the 1-10 scale after the deadline is taken into account."""
    if deadline is None:
        return float(urgency)
    if deadline.tzinfo is None:
        deadline = deadline.replace(tzinfo=UTC)
    days_left = (deadline - now).total_seconds() / 86400
    if days_left <= 0:
        return 10.0
    if days_left < 7:
        return max(float(urgency), 10.0 - days_left)
    return float(urgency)


def _score(segment: Segment, n_segments: int, urgency: float, request: PriorityRequest) -> float:
    n_deps = len(set(segment.dependencies))
    dependency = 1.0 if n_deps == 0 else 1.0 - n_deps / max(n_segments - 1, 1)
    preference = request.preferences.get(segment.task_type.value, DEFAULT_PREFERENCE) / 10
    raw_confidence = segment.metadata.get("confidence", 1.0)
    confidence = min(max(float(raw_confidence), 0.0), 1.0) if isinstance(raw_confidence, int | float) else 1.0
    w = request.weights
    total = (
        w.dependency * dependency
        + w.urgency * urgency / 10
        + w.preference * preference
        + w.confidence * confidence
    )
    return round(total, 6)


def prioritize(
    plan: AltFile,
    request: PriorityRequest | None = None,
    *,
    now: datetime | None = None,
    rng: random.Random | None = None,
    shuffle_probability: float = 0.0,
) -> list[str]:
    """Score every segment and set `priority_score` and `execution_order` (1-based) in place.

    Returns the segment ids in execution order, also stored in `plan.metadata`.
    """
    request = request or PriorityRequest()
    now = now or datetime.now(UTC)
    urgency = effective_urgency(request.urgency, request.deadline, now)
    scores = {s.id: _score(s, len(plan.segments), urgency, request) for s in plan.segments}
    order = topological_order(
        [s.id for s in plan.segments],
        {s.id: s.dependencies for s in plan.segments},
        scores.__getitem__,
        rng=rng,
        shuffle_probability=shuffle_probability,
    )
    position = {sid: i + 1 for i, sid in enumerate(order)}
    for segment in plan.segments:
        segment.metadata["priority_score"] = scores[segment.id]
        segment.metadata["execution_order"] = position[segment.id]
    plan.metadata["execution_order"] = order
    plan.metadata["priority"] = {
        "urgency": request.urgency,
        "effective_urgency": round(urgency, 3),
        "deadline": request.deadline.isoformat() if request.deadline else None,
        "user_preferences": dict(request.preferences),
        "weights": request.weights.as_dict(),
    }
    return order
