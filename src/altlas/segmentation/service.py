"""The segmentation service's core, free of HTTP: segment, store, prioritize."""

from __future__ import annotations

from collections.abc import Sequence

from altlas.errors import AltlasError, InputTooLargeError
from altlas.plans.model import AltFile
from altlas.plans.priorities import PriorityRequest, prioritize
from altlas.segmentation.segmenter import SegmentationOptions, check_command, segment_command
from altlas.storage.plan_store import PlanStore

__all__ = ["SegmentationService"]


class SegmentationService:
    def __init__(self, store: PlanStore, max_batch: int = 1000) -> None:
        self.store = store
        self.max_batch = max_batch

    def segment(self, command: str, options: SegmentationOptions, *, store: bool = True) -> AltFile:
        plan = segment_command(command, options)
        if store:
            self.store.save(plan)
        return plan

    def segment_batch(
        self, commands: Sequence[str], options: SegmentationOptions, *, store: bool = True
    ) -> list[AltFile]:
        """All commands or none: every command is checked before any plan is stored."""
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
        plans = [segment_command(c, options) for c in commands]
        if store:
            self.store.save_many(plans)
        return plans

    def prioritize(self, plan: AltFile, request: PriorityRequest) -> list[str]:
        return prioritize(plan, request)
