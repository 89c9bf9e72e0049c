"""ALT plans stored as one JSON file each under `<data dir>/alt-files/`.

Writes are atomic (temporary file, fsync, rename, fsync of the folder), so a
crash leaves either the old file or the new one, never half of one, and plans
survive restarts. Ids are checked to be canonical UUIDs before they touch a
path, which rules out traversal ("../etc/passwd") by construction.

A batch is saved whole or not at all: every plan is encoded before the first is written, and
if a write fails the files the batch created are removed again. A file that cannot be read
back (not JSON, not a valid plan) is damaged: listings skip it and count it (see
altlas.storage.damage); reading it alone raises DamagedEntryError.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from altlas.errors import InvalidInputError, InvalidPlanError, NotFoundError
from altlas.plans.codec import plan_from_dict, plan_to_dict
from altlas.plans.model import AltFile
from altlas.storage.atomic import fsync_path, write_atomically
from altlas.storage.damage import DamagedEntries, DamagedEntryError

__all__ = [
    "PlanPage",
    "PlanStore",
    "PlanSummary",
    "UnstorablePlanError",
    "check_plan_id",
    "encode_plan",
]


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


class UnstorablePlanError(InvalidPlanError):
    """A plan that cannot be written as JSON; `index` is its place in the list given to save_many,
    `field` the plan's field at fault ("command" or "metadata")."""

    def __init__(self, message: str, field: str, index: int) -> None:
        super().__init__(message, field)
        self.index = index


def encode_plan(plan: AltFile) -> bytes:
    """The plan as the store writes it and the API answers it: compact UTF-8 JSON, no NaN.

    Raises ValueError (UnicodeEncodeError for text that is not valid Unicode, NaN), TypeError or
    RecursionError when the plan cannot be JSON."""
    text = json.dumps(plan_to_dict(plan), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.encode("utf-8")


def _unstorable(plan: AltFile, index: int, exc: Exception) -> UnstorablePlanError:
    if isinstance(exc, UnicodeError):
        why = "it holds text that is not valid Unicode (a lone surrogate)"
    elif isinstance(exc, RecursionError):
        why = "it is nested too deeply"
    else:
        why = f"it holds a value JSON cannot represent ({str(exc)[:100]})"
    try:  # the metadata is the client's free-form part: blame it when it fails alone
        json.dumps(plan.metadata, ensure_ascii=False, allow_nan=False).encode("utf-8")
        field = "command"
    except (ValueError, TypeError, RecursionError):
        field = "metadata"
    return UnstorablePlanError(f"cannot be stored: {why}", field, index)


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
    damaged: int = 0  # files of this page that could not be read, left out of items


class PlanStore:
    """Thread-safe store of plans; listing is newest first."""

    def __init__(self, data_dir: Path) -> None:
        self.directory = Path(data_dir) / "alt-files"
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._order: dict[str, float] = self.scan()
        self.damaged = DamagedEntries("alt-files")

    def scan(self) -> dict[str, float]:
        """id -> modification time of every plan file on disk now (whoever wrote it: another
        process too), oldest first."""
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
        """All or none: UnstorablePlanError before anything is written if a plan cannot be JSON;
        if a write fails, the files this call created are removed and the error raised."""
        encoded = []
        for index, plan in enumerate(plans):
            try:
                encoded.append((plan.id, self._path(plan.id), encode_plan(plan)))
            except (ValueError, TypeError, RecursionError) as exc:
                raise _unstorable(plan, index, exc) from None
        created: list[Path] = []
        written: dict[str, float] = {}
        try:
            for plan_id, path, data in encoded:
                existed = path.exists()
                write_atomically(path, data)
                if not existed:
                    created.append(path)
                written[plan_id] = path.stat().st_mtime
            fsync_path(self.directory)
        except BaseException:
            for path in created:
                path.unlink(missing_ok=True)
            raise
        with self._lock:
            for plan_id, mtime in written.items():
                self._order.pop(plan_id, None)
                self._order[plan_id] = mtime

    def get(self, plan_id: str) -> AltFile:
        """The plan; NotFoundError if there is none, DamagedEntryError if its file cannot be read."""
        path = self._path(plan_id)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"no ALT file with id {plan_id}", field="id") from None
        try:
            return plan_from_dict(json.loads(data))
        except (ValueError, RecursionError, InvalidInputError) as exc:  # not JSON, not a plan
            self.damaged.found(path.name, str(exc)[:200])
        raise DamagedEntryError(
            f"ALT file {plan_id} is damaged and cannot be read; delete it, or restore its file from a backup",
            field="id",
        )

    def delete(self, plan_id: str) -> None:
        path = self._path(plan_id)
        with self._lock:
            try:
                path.unlink()
            except FileNotFoundError:
                raise NotFoundError(f"no ALT file with id {plan_id}", field="id") from None
            self._order.pop(check_plan_id(plan_id), None)
        fsync_path(self.directory)

    def commands(self, ids: Iterable[str] | None = None) -> list[tuple[str, str]]:
        """(id, command) of every stored plan, oldest first; of `ids` only, if given (those
        deleted meanwhile left out)."""
        if ids is None:
            with self._lock:
                ids = list(self._order)
        found = []
        for plan_id in ids:
            path = self._path(plan_id)
            try:
                data = json.loads(path.read_bytes())
                command = data["command"]
            except FileNotFoundError:
                continue  # deleted meanwhile
            except (ValueError, RecursionError, TypeError, KeyError) as exc:
                self.damaged.found(path.name, str(exc)[:200])
                continue
            found.append((plan_id, str(command)))
        return found

    def __len__(self) -> int:
        return len(self._order)

    def list(self, offset: int = 0, limit: int = 50) -> PlanPage:
        with self._lock:
            newest_first = list(reversed(self._order))
        items: list[PlanSummary] = []
        damaged = 0
        for plan_id in newest_first[offset : offset + limit]:
            try:
                plan = self.get(plan_id)
            except DamagedEntryError:  # logged and counted by get
                damaged += 1
                continue
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
        return PlanPage(items, len(newest_first), offset, limit, damaged)
