"""ModelService over the models loaded in this process (`altlas serve --engines 0`, an app made
with create_app(settings) alone, and tests): the same model-side work an engine runs
(altlas.engine.work, generation_work, thread_work), called in place."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

import numpy as np

from altlas.engine import messages as wire
from altlas.engine.generation_work import generation_work
from altlas.engine.service import Asking, ModelService, Replies
from altlas.engine.thread_work import Keeps, thread_work
from altlas.engine.work import TASKS, Batched, Submitted, submit
from altlas.logs import request_id_var
from altlas.orchestrator.serving import LoadedModels
from altlas.scheduling.waiting import Receive, client_left, wait_for

__all__ = ["LocalModels"]


class LocalModels(ModelService):
    """ModelService over the models loaded in this process (and what it `keeps`: the search
    collections, the manager, the index of stored commands). Texts for a loaded model are
    submitted on the event loop (a lease is a dict read, a submit a queue put); a model to load,
    an upload to check and decode, and the requests answered once (collections, registry,
    similarity) go to a worker thread first. A generation runs on one of `threads` for as long as it
    takes (a thread of its own without them)."""

    def __init__(
        self, models: LoadedModels, keeps: Keeps | None = None, threads: Executor | None = None
    ) -> None:
        self.models = models
        self.keeps = keeps or Keeps()  # the collections, the manager, the commands' index (if any)
        self.threads = threads

    async def start(self) -> None:
        """Nothing to start: the models are this process's."""

    async def close(self) -> None:
        """Nothing to close: the app's end shuts down the generation threads."""

    async def _stream(self, request: wire.Generate) -> tuple[Replies, Callable[[bool], None]]:
        loop = asyncio.get_running_loop()
        replies: Replies = asyncio.Queue()
        stop = threading.Event()

        def put(item: tuple[Any, list[Any]] | BaseException) -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody reads
                loop.call_soon_threadsafe(replies.put_nowait, item)

        def run() -> None:
            token = request_id_var.set(request.request_id)  # the generation's log lines name it
            try:
                generation_work(request, self.models, stop, lambda reply: put((reply, [])))
            except BaseException as exc:  # the caller gets it as it is
                put(exc)
            finally:
                request_id_var.reset(token)

        if self.threads is None:
            threading.Thread(target=run, name="altlas-generate", daemon=True).start()
        else:
            self.threads.submit(run)
        return replies, lambda finished: stop.set()

    async def _ask(
        self, request: Asking, timeout_s: float, what: str, upload: bytes | None, receive: Receive | None
    ) -> tuple[wire.Reply, np.ndarray | None]:
        if isinstance(request, wire.OnThread):
            return await self._on_thread(request, receive), None
        return await self._run(request, upload or b"", timeout_s, receive, what)

    async def _on_thread(self, message: wire.OnThread, receive: Receive | None) -> wire.Reply:
        """thread_work on a worker thread, told to stop (ClientGone) once the client leaves."""
        gone = threading.Event()
        watcher = asyncio.create_task(_set_when_gone(receive, gone)) if receive is not None else None
        try:
            return await asyncio.to_thread(thread_work, message, self.models, self.keeps, gone)
        finally:
            if watcher is not None:
                watcher.cancel()

    async def _run(
        self, request: Batched, data: bytes, timeout_s: float, receive: Receive | None, what: str
    ) -> tuple[wire.Reply, Any]:
        lease = None
        if isinstance(request, wire.Embed):
            lease = self.models.lease_if_loaded(request.model, TASKS[wire.Embed])
        if lease is not None:
            submitted = submit(request, data, lease)
        else:
            submitted = await asyncio.to_thread(self._submit, request, data)
        result = await wait_for(submitted.future, timeout_s, receive, what)
        return submitted.answer(request.id, result)

    def _submit(self, request: Batched, data: bytes) -> Submitted:
        return submit(request, data, self.models.lease(request.model, TASKS[type(request)]))


async def _set_when_gone(receive: Receive, gone: threading.Event) -> None:
    await client_left(receive)
    gone.set()
