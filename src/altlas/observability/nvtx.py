"""NVTX ranges around the steps that matter in an Nsight Systems timeline: tokenizing, host to
device copies, forward passes, top-k and decode steps.

Ranges are pushed only where CUDA is there (a CPU build of torch has no NVTX); without a
profiler attached a range costs about a microsecond, so they stay on in production.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

import torch

__all__ = ["nvtx_range", "ranged"]

P = ParamSpec("P")
T = TypeVar("T")


@functools.cache
def _enabled() -> bool:
    return bool(torch.cuda.is_available())


@contextmanager
def nvtx_range(name: str) -> Iterator[None]:
    """An NVTX range named `name` around the block (nothing without CUDA)."""
    if not _enabled():
        yield
        return
    torch.cuda.nvtx.range_push(name)  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        torch.cuda.nvtx.range_pop()  # type: ignore[no-untyped-call]


def ranged(name: str) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Decorator: every call of the function inside an NVTX range `name`."""

    def wrap(function: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(function)
        def inner(*args: P.args, **kwargs: P.kwargs) -> T:
            if not _enabled():
                return function(*args, **kwargs)
            torch.cuda.nvtx.range_push(name)  # type: ignore[no-untyped-call]
            try:
                return function(*args, **kwargs)
            finally:
                torch.cuda.nvtx.range_pop()  # type: ignore[no-untyped-call]

        return inner

    return wrap
