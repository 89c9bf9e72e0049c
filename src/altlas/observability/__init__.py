"""Observability: Prometheus metrics (and, later, traces and profiling)."""
