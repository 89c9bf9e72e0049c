"""Waiting for a batcher's answer from async code, bounded by a timeout and by the client staying.

A caller that stops waiting (its time ran out, or the client closed the connection) cancels
its future: if its batch has not been gathered yet, the item is never run, so an abandoned
request costs the device nothing.

This runs once per request on the event loop, which is what limits a server of small requests,
so it is kept cheap: a timer handle rather than asyncio.wait (sets, callbacks on each awaitable,
a waiter future, and a second await of the watcher), and answers that a worker thread finishes
together reach the loop with one wake-up per burst, not one per future.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import Future
from functools import partial
from typing import Any, TypeVar

from altlas.errors import TimedOutError

__all__ = ["ClientGone", "Receive", "client_left", "on_loop", "wait_for"]

T = TypeVar("T")
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


class ClientGone(Exception):
    """The client closed the connection before its answer was ready."""


async def wait_for(
    future: Future[T],
    timeout_s: float,
    receive: Receive | None = None,
    what: str = "the request",
) -> T:
    """The future's result; TimedOutError after `timeout_s`; ClientGone when `receive` (the
    ASGI receive of a request whose body was read) reports a disconnect. Either way the
    future is cancelled first (so too when the awaiting task is cancelled)."""
    loop = asyncio.get_running_loop()
    waiting = on_loop(future, loop)
    timer = loop.call_later(timeout_s, _time_out, waiting, timeout_s, what) if timeout_s > 0 else None
    watcher = loop.create_task(_watch(receive, waiting)) if receive is not None else None
    try:
        return await waiting
    finally:
        if timer is not None:
            timer.cancel()
        if watcher is not None:
            watcher.cancel()  # not awaited: nothing reads its end, and a cancelled task logs nothing
        if not future.done():
            future.cancel()


def on_loop(future: Future[T], loop: asyncio.AbstractEventLoop) -> asyncio.Future[T]:
    """An asyncio future of `loop` that takes `future`'s outcome (from whatever thread finishes
    it; answers finished together reach the loop in one wake-up). Cancelling the asyncio future
    does not cancel `future`."""
    waiting: asyncio.Future[T] = loop.create_future()
    future.add_done_callback(partial(_inbox(loop).put, waiting))
    return waiting


def _time_out(waiting: asyncio.Future[Any], timeout_s: float, what: str) -> None:
    if not waiting.done():
        message = f"{what} took longer than the {timeout_s:g} s limit"
        waiting.set_exception(TimedOutError(message, field="timeout"))


async def client_left(receive: Receive) -> None:
    """Returns once the client behind `receive` (an ASGI receive, the body read) has left."""
    try:
        while (await receive()).get("type") != "http.disconnect":
            pass
    except Exception:  # a receive that fails has no client behind it either
        pass


async def _watch(receive: Receive, waiting: asyncio.Future[Any]) -> None:
    await client_left(receive)
    if not waiting.done():
        waiting.set_exception(ClientGone())


class _Inbox:
    """Futures finished on worker threads, handed to one event loop in bulk.

    asyncio.wrap_future schedules a callback per future with call_soon_threadsafe: a handle and
    a wake-up each, made while the worker holds the GIL. A batch of n answers costs one here."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = weakref.ref(loop)  # the inbox must not keep a closed loop alive
        self._ready: deque[tuple[asyncio.Future[Any], Future[Any]]] = deque()
        self._lock = threading.Lock()
        self._scheduled = False

    def put(self, waiting: asyncio.Future[Any], future: Future[Any]) -> None:
        """Any thread: `future` is done; hand its outcome to `waiting` on the loop."""
        self._ready.append((waiting, future))  # before the flag is read, so no drain can miss it
        with self._lock:
            if self._scheduled:
                return
            self._scheduled = True
        loop = self._loop()
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            self._scheduled = False  # before popping: whatever is put after this schedules a drain
        ready = self._ready
        while ready:
            waiting, future = ready.popleft()
            if waiting.done():  # its time ran out or its client left first
                continue
            if future.cancelled():
                waiting.cancel()
            elif (exc := future.exception()) is not None:
                waiting.set_exception(exc)
            else:
                waiting.set_result(future.result())


_inboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Inbox] = weakref.WeakKeyDictionary()


def _inbox(loop: asyncio.AbstractEventLoop) -> _Inbox:
    inbox = _inboxes.get(loop)
    if inbox is None:
        inbox = _inboxes[loop] = _Inbox(loop)
    return inbox
