"""Histogram counts kept where observations happen (batchers, the job runner), without any
metrics library: metrics read them at scrape time."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "JOB_SECONDS_BOUNDS",
    "REQUESTS_BOUNDS",
    "SECONDS_BOUNDS",
    "TOKENS_BOUNDS",
    "Distribution",
    "PreparedWork",
]


class Distribution:
    """Counts of observations at or under each bound, and their sum: a histogram's raw data,
    kept where the observations happen (metrics read it at scrape time)."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last: over every bound
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, int]]:
        """(upper bound, count at or under it) pairs, ending with ("+Inf", all)."""
        running, out = 0, []
        for bound, count in zip((*map(str, map(float, self.bounds)), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


SECONDS_BOUNDS = (
    0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2,
    0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
)  # fmt: skip
REQUESTS_BOUNDS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
TOKENS_BOUNDS = (16, 64, 256, 1024, 4096, 16_384, 65_536, 262_144, 1_048_576)
JOB_SECONDS_BOUNDS = (0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 10_800)


@dataclass(frozen=True, slots=True)
class PreparedWork:
    """What preparing a batch took and will cost, told by a batcher's `prepare` (as the `work`
    attribute of what it returns): tokenizing time, and the real tokens against the tokens the
    device computes (padding included)."""

    tokenize_s: float
    real_tokens: int
    computed_tokens: int
