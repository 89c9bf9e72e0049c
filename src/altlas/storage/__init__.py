"""Durable storage under the data dir."""

from altlas.storage.plan_store import PlanPage, PlanStore, PlanSummary, check_plan_id

__all__ = ["PlanPage", "PlanStore", "PlanSummary", "check_plan_id"]
