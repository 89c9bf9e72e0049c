from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from altlas.errors import InvalidInputError
from altlas.plans import AltFile, Language, Segment, TaskType
from altlas.plans.graph import find_cycle, topological_order
from altlas.plans.priorities import PriorityRequest, PriorityWeights, effective_urgency, prioritize

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def plan_of(deps: dict[str, list[str]], confidence: float = 1.0) -> AltFile:
    segments = [
        Segment(
            sid,
            TaskType.SEARCH if i % 2 else TaskType.OPEN,
            sid,
            dependencies=d,
            metadata={"confidence": confidence},
        )
        for i, (sid, d) in enumerate(deps.items())
    ]
    return AltFile(command="x", language=Language.EN, segments=segments)


def test_score_formula() -> None:
    plan = plan_of({"a": [], "b": ["a"], "c": ["a", "b"]}, confidence=0.8)
    prioritize(plan, PriorityRequest(urgency=7, preferences={"search": 9}), now=NOW)
    score = {s.id: s.metadata["priority_score"] for s in plan.segments}
    # a: open, no deps: 0.4*1 + 0.3*0.7 + 0.2*0.5 + 0.1*0.8
    assert score["a"] == pytest.approx(0.4 + 0.21 + 0.1 + 0.08)
    # b: search, 1 dep of N-1=2: 0.4*0.5 + 0.21 + 0.2*0.9 + 0.08
    assert score["b"] == pytest.approx(0.2 + 0.21 + 0.18 + 0.08)
    # c: open, 2 deps: 0.4*0 + ...
    assert score["c"] == pytest.approx(0.0 + 0.21 + 0.1 + 0.08)


def test_confidence_is_clamped() -> None:
    plan = plan_of({"a": []}, confidence=1.0)
    plan.segments[0].metadata["confidence"] = 7.0
    prioritize(plan, now=NOW)
    assert plan.segments[0].metadata["priority_score"] == pytest.approx(0.4 + 0.15 + 0.1 + 0.1)


@pytest.mark.parametrize(
    ("urgency", "deadline", "expected"),
    [
        (5, None, 5.0),
        (3, NOW - timedelta(hours=1), 10.0),
        (3, NOW + timedelta(days=2), 8.0),
        (9, NOW + timedelta(days=2), 9.0),
        (4, NOW + timedelta(days=30), 4.0),
        (4, NOW.replace(tzinfo=None) + timedelta(days=6), 4.0),
    ],
)
def test_effective_urgency(urgency: int, deadline: datetime | None, expected: float) -> None:
    assert effective_urgency(urgency, deadline, NOW) == pytest.approx(expected)


def test_order_is_topological_and_prefers_high_scores() -> None:
    plan = plan_of({"a": [], "b": [], "c": ["a"], "d": ["b", "c"]})
    plan.segments[1].metadata["confidence"] = 0.0  # b scores lower than a
    order = prioritize(plan, now=NOW)
    # a 0.75, then b (0.65) before c (0.617), then d
    assert order == ["a", "b", "c", "d"]
    assert [s.metadata["execution_order"] for s in plan.segments] == [
        order.index(s.id) + 1 for s in plan.segments
    ]


def test_user_preference_lifts_an_independent_task() -> None:
    plan = plan_of({"a": [], "b": []})
    order = prioritize(plan, PriorityRequest(preferences={"search": 10}), now=NOW)
    assert order == ["b", "a"]


def test_random_topological_orders_stay_valid() -> None:
    deps = {"a": [], "b": ["a"], "c": [], "d": ["c", "b"], "e": []}
    for seed in range(50):
        order = topological_order(
            list(deps), deps, lambda _: 0.0, rng=random.Random(seed), shuffle_probability=1.0
        )
        assert sorted(order) == sorted(deps)
        for node, prerequisites in deps.items():
            assert all(order.index(p) < order.index(node) for p in prerequisites)


def test_find_cycle() -> None:
    assert find_cycle({"a": ["b"], "b": ["c"], "c": []}) is None
    cycle = find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]})
    assert cycle is not None and set(cycle) == {"a", "b", "c"}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"urgency": 0}, "urgency"),
        ({"urgency": 11}, "urgency"),
        ({"urgency": True}, "urgency"),
        ({"preferences": {"fly": 5}}, "user_preferences.fly"),
        ({"preferences": {"search": 0}}, "user_preferences.search"),
    ],
)
def test_bad_priority_requests(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        PriorityRequest(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_bad_weights() -> None:
    with pytest.raises(InvalidInputError) as info:
        PriorityWeights(urgency=-1)
    assert info.value.field == "weights.urgency"


def test_weights_are_configurable() -> None:
    plan = plan_of({"a": [], "b": ["a"]})
    prioritize(plan, PriorityRequest(weights=PriorityWeights(1, 0, 0, 0)), now=NOW)
    assert [s.metadata["priority_score"] for s in plan.segments] == [1.0, 0.0]
