"""The segmentation service's core, free of HTTP: segment, store, prioritize."""

from __future__ import annotations

from collections.abc import Sequence

from altlas.errors import AltlasError, InputTooLargeError, InvalidInputError
from altlas.plans.model import AltFile
from altlas.plans.priorities import PriorityRequest, prioritize
from altlas.segmentation.segmenter import SegmentationOptions, check_command, segment_command
from altlas.segmentation.when import TimeReference, add_when_iso
from altlas.storage.plan_store import PlanStore, UnstorablePlanError

__all__ = ["SegmentationService"]


class SegmentationService:
    def __init__(self, store: PlanStore, max_batch: int = 1000) -> None:
        self.store = store
        self.max_batch = max_batch

    def segment(
        self,
        command: str,
        options: SegmentationOptions,
        *,
        store: bool = True,
        reference: TimeReference | None = None,
    ) -> AltFile:
        """`reference`: the clock schedule times are resolved against (default: the server's)."""
        plan = add_when_iso(segment_command(command, options), reference)
        if store:
            try:
                self.store.save(plan)
            except UnstorablePlanError as exc:
                raise InvalidInputError(exc.message, field=exc.field) from None
        return plan

    def segment_batch(
        self,
        commands: Sequence[str],
        options: SegmentationOptions,
        *,
        store: bool = True,
        reference: TimeReference | None = None,
    ) -> list[AltFile]:
        """All commands or none: every command is segmented, and every plan encoded, before the
        first plan is stored (PlanStore.save_many); an error names the command, `commands[i]`."""
        if len(commands) > self.max_batch:
            raise InputTooLargeError(
                f"has {len(commands):,} commands; the limit is {self.max_batch:,} per request",
                field="commands",
            )
        for i, command in enumerate(commands):
            try:
                check_command(command)
            except AltlasError as exc:
                raise type(exc)(exc.message, field=f"commands[{i}]") from None
        reference = reference or TimeReference.of()  # one clock for the whole batch
        plans = [add_when_iso(segment_command(c, options), reference) for c in commands]
        if store:
            try:
                self.store.save_many(plans)
            except UnstorablePlanError as exc:
                field = f"commands[{exc.index}]" if exc.field == "command" else exc.field
                raise InvalidInputError(exc.message, field=field) from None
        return plans

    def prioritize(self, plan: AltFile, request: PriorityRequest) -> list[str]:
        return prioritize(plan, request)
