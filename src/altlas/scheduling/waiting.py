"""Waiting for a batcher's answer from async code, bounded by a timeout and by the client staying.

A caller that stops waiting (its time ran out, or the client closed the connection) cancels
its future: if its batch has not been gathered yet, the item is never run, so an abandoned
request costs the device nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import Future
from typing import Any, TypeVar

from altlas.errors import TimedOutError

__all__ = ["ClientGone", "wait_for"]

T = TypeVar("T")


class ClientGone(Exception):
    """The client closed the connection before its answer was ready."""


async def wait_for(
    future: Future[T],
    timeout_s: float,
    receive: Callable[[], Awaitable[MutableMapping[str, Any]]] | None = None,
    what: str = "the request",
) -> T:
    """The future's result; TimedOutError after `timeout_s`; ClientGone when `receive` (the
    ASGI receive of a request whose body was read) reports a disconnect. Either way the
    future is cancelled first."""
    waiting: asyncio.Future[Any] = asyncio.wrap_future(future)
    watcher: asyncio.Future[Any] | None = (
        asyncio.ensure_future(_disconnect(receive)) if receive is not None else None
    )
    try:
        done, _ = await asyncio.wait(
            [waiting, *([watcher] if watcher else [])],
            timeout=timeout_s if timeout_s > 0 else None,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if waiting in done:
            result: T = waiting.result()
            return result
        future.cancel()
        if watcher is not None and watcher in done:
            raise ClientGone
        raise TimedOutError(f"{what} took longer than the {timeout_s:g} s limit", field="timeout")
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
        if not waiting.done():
            waiting.cancel()


async def _disconnect(receive: Callable[[], Awaitable[MutableMapping[str, Any]]]) -> None:
    while True:
        message = await receive()
        if message.get("type") == "http.disconnect":
            return
