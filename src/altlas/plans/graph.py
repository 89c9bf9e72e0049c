"""Dependency graphs of segments: cycles and topological orders."""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Mapping, Sequence

__all__ = ["find_cycle", "topological_order"]


def find_cycle(dependencies: Mapping[str, Sequence[str]]) -> list[str] | None:
    """One cycle as a list of ids (each depends on the next... back to the first), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for root in dependencies:
        if state.get(root):
            continue
        path: list[str] = []
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            node, next_child = stack.pop()
            if next_child == 0:
                state[node] = 1
                path.append(node)
            children = dependencies.get(node, ())
            if next_child < len(children):
                stack.append((node, next_child + 1))
                child = children[next_child]
                if state.get(child) == 1:
                    return path[path.index(child) :]
                if not state.get(child):
                    stack.append((child, 0))
            else:
                state[node] = 2
                path.pop()
    return None


def topological_order(
    ids: Sequence[str],
    dependencies: Mapping[str, Sequence[str]],
    score: Callable[[str], float],
    *,
    rng: random.Random | None = None,
    shuffle_probability: float = 0.0,
) -> list[str]:
    """Every prerequisite before its dependents; among ready ids, higher score first.

    Ties keep the original order. With `rng`, each pick is instead a random ready id
    with probability `shuffle_probability` (Chaos mode): still a valid order.
    """
    position = {sid: i for i, sid in enumerate(ids)}
    waiting = {sid: len(set(dependencies.get(sid, ()))) for sid in ids}
    dependents: dict[str, list[str]] = {sid: [] for sid in ids}
    for sid in ids:
        for dep in set(dependencies.get(sid, ())):
            dependents[dep].append(sid)
    ready = [(-score(sid), position[sid], sid) for sid in ids if waiting[sid] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        if rng is not None and len(ready) > 1 and rng.random() < shuffle_probability:
            picked = ready.pop(rng.randrange(len(ready)))
            heapq.heapify(ready)
        else:
            picked = heapq.heappop(ready)
        sid = picked[2]
        order.append(sid)
        for child in dependents[sid]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, (-score(child), position[child], child))
    if len(order) != len(ids):
        raise ValueError("dependencies form a cycle")
    return order
