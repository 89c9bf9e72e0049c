"""ALT plans stored as one JSON file each under `<data dir>/alt-files/`.

Writes are atomic (temporary file, fsync, rename, fsync of the folder), so a
crash leaves either the old file or the new one, never half of one, and plans
survive restarts. Ids are checked to be canonical UUIDs before they touch a
path, which rules out traversal ("../etc/passwd") by construction.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from altlas.errors import InvalidInputError, NotFoundError
from altlas.plans.codec import plan_from_dict, plan_to_dict
from altlas.plans.model import AltFile
from altlas.storage.atomic import fsync_path, write_atomically

__all__ = ["PlanPage", "PlanStore", "PlanSummary", "check_plan_id"]

log = logging.getLogger("altlas.storage")


def check_plan_id(plan_id: str) -> str:
    """The id in canonical form, or InvalidInputError: ids are UUIDs, never paths."""
    try:
        parsed = uuid.UUID(plan_id)
    except (ValueError, AttributeError, TypeError):
        raise InvalidInputError(f"must be a plan UUID, got {plan_id[:80]!r}", field="id") from None
    canonical = str(parsed)
    if canonical != plan_id.lower():
        raise InvalidInputError(f"must be a plan UUID in canonical form, got {plan_id[:80]!r}", field="id")
    return canonical


@dataclass(frozen=True, slots=True)
class PlanSummary:
    id: str
    timestamp: str
    command: str
    language: str
    mode: str
    segment_count: int


@dataclass(frozen=True, slots=True)
class PlanPage:
    items: list[PlanSummary]
    total: int
    offset: int
    limit: int


class PlanStore:
    """Thread-safe store of plans; listing is newest first."""

    def __init__(self, data_dir: Path) -> None:
        self.directory = Path(data_dir) / "alt-files"
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._order: dict[str, float] = self._scan()
        # Called after plans are saved or deleted (e.g. to keep a similarity index current).
        self.on_save: list[Callable[[list[AltFile]], None]] = []
        self.on_delete: list[Callable[[str], None]] = []

    def _scan(self) -> dict[str, float]:
        found: list[tuple[float, str]] = []
        for path in self.directory.glob("*.json"):
            try:
                found.append((path.stat().st_mtime, check_plan_id(path.stem)))
            except (OSError, InvalidInputError):
                continue  # a stray file or one removed meanwhile: not a plan
        found.sort()
        return {plan_id: mtime for mtime, plan_id in found}

    def _path(self, plan_id: str) -> Path:
        return self.directory / f"{check_plan_id(plan_id)}.json"

    def save(self, plan: AltFile) -> None:
        self.save_many([plan])

    def save_many(self, plans: list[AltFile]) -> None:
        for plan in plans:
            path = self._path(plan.id)
            data = json.dumps(plan_to_dict(plan), ensure_ascii=False, separators=(",", ":")).encode()
            write_atomically(path, data)
            with self._lock:
                self._order.pop(plan.id, None)
                self._order[plan.id] = path.stat().st_mtime
        fsync_path(self.directory)
        _notify(self.on_save, plans)

    def get(self, plan_id: str) -> AltFile:
        path = self._path(plan_id)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise NotFoundError(f"no ALT file with id {plan_id}", field="id") from None
        return plan_from_dict(json.loads(text))

    def delete(self, plan_id: str) -> None:
        path = self._path(plan_id)
        with self._lock:
            try:
                path.unlink()
            except FileNotFoundError:
                raise NotFoundError(f"no ALT file with id {plan_id}", field="id") from None
            self._order.pop(check_plan_id(plan_id), None)
        fsync_path(self.directory)
        _notify(self.on_delete, check_plan_id(plan_id))

    def commands(self) -> list[tuple[str, str]]:
        """(id, command) of every stored plan, oldest first."""
        with self._lock:
            ids = list(self._order)
        found = []
        for plan_id in ids:
            try:
                data = json.loads(self._path(plan_id).read_text(encoding="utf-8"))
            except (FileNotFoundError, ValueError):
                continue
            found.append((plan_id, str(data.get("command", ""))))
        return found

    def __len__(self) -> int:
        return len(self._order)

    def list(self, offset: int = 0, limit: int = 50) -> PlanPage:
        with self._lock:
            newest_first = list(reversed(self._order))
        items: list[PlanSummary] = []
        for plan_id in newest_first[offset : offset + limit]:
            try:
                plan = self.get(plan_id)
            except NotFoundError:
                continue  # deleted between the snapshot and the read
            items.append(
                PlanSummary(
                    plan.id,
                    plan.timestamp,
                    plan.command,
                    plan.language.value,
                    plan.mode.value,
                    len(plan.segments),
                )
            )
        return PlanPage(items, len(newest_first), offset, limit)


def _notify(listeners: list[Callable[[Any], None]], payload: Any) -> None:
    """Tell listeners; the plans are stored already, so a failing listener is logged, not raised."""
    for listener in listeners:
        try:
            listener(payload)
        except Exception:
            log.exception(
                "plan store listener failed", extra={"listener": getattr(listener, "__qualname__", "?")}
            )
