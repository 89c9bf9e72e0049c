"""The engine's side of the transport: typed requests in, replies out, over one ROUTER socket.

`Engine.serve` runs the socket on one thread (ZeroMQ sockets are not thread-safe): it reads
requests and writes replies. An Embed for a loaded model is submitted right there (a lease is a
dict read, the submit a queue put: altlas.orchestrator.serving); one for a model that is not
loaded, and an upload (DetectSpeech, Classify: its header checked, an image decoded) go to a
thread first. Replies come from the batchers' threads as futures finish:
they are queued for the socket's thread, which a pipe wakes. A Generate runs on a thread of its
own (altlas.engine.generation_work: lease, turn, prefill; then one Token a piece as the model
produces them). A Cancel cancels the request's future (work not yet gathered
into a batch never runs) or stops its generation before the next token (the model's turn or
decode slot goes at once). Errors travel as their kind
(altlas.errors.error_kind); an unexpected one is logged here under the request's id and travels
as a plain internal error.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
from typing import Any

import zmq

from altlas.engine import messages as wire
from altlas.engine.generation_work import generation_work
from altlas.engine.thread_work import Keeps, thread_work
from altlas.engine.work import TASKS, Batched, Submitted, submit
from altlas.errors import AltlasError, error_kind
from altlas.logs import request_id_var
from altlas.orchestrator.serving import Lease, LoadedModels
from altlas.runtime.process import StopFlag
from altlas.scheduling.waiting import ClientGone

__all__ = ["Engine"]

log = logging.getLogger("altlas.engine")


class Engine:
    """Serves the models in `models` to API processes connected to `address` (a ZeroMQ
    endpoint, e.g. ipc:///run/altlas/engine-0)."""

    def __init__(
        self, models: LoadedModels, address: str, context: zmq.Context[Any] | None = None, *,
        keeps: Keeps | None = None,
    ) -> None:  # fmt: skip
        self.models = models
        self.keeps = keeps or Keeps()  # the collections, the manager, the commands' index: if it has them
        self.address = address
        self.context = context or zmq.Context.instance()
        # (peer, id) -> its work: an embedding's future, a generation's stop flag (cancel())
        self.in_flight: dict[tuple[bytes, int], Future[Any] | _Stop] = {}
        self._outbox: queue.SimpleQueue[tuple[bytes, list[bytes]]] = queue.SimpleQueue()
        self._wake_read = self._wake_write = -1  # a pipe while serving: replies wake the socket's thread
        self._wake_lock = threading.Lock()  # no reply writes to the pipe once it is closed
        self.bound = threading.Event()  # set once the socket listens

    def serve(self, stop: threading.Event | StopFlag) -> None:
        """Answer requests until `stop` is set (checked every 100 ms)."""
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)  # a full pipe already wakes the socket's thread
        socket = self.context.socket(zmq.ROUTER)
        socket.setsockopt(zmq.LINGER, 0)
        socket.bind(self.address)
        poller = zmq.Poller()
        poller.register(socket, zmq.POLLIN)
        poller.register(self._wake_read, zmq.POLLIN)
        self.bound.set()
        try:
            while not stop.is_set():
                ready = dict(poller.poll(100))
                if self._wake_read in ready:
                    os.read(self._wake_read, 65536)
                while True:
                    try:
                        peer, frames = self._outbox.get_nowait()
                    except queue.Empty:
                        break
                    socket.send_multipart([peer, *frames], copy=False)
                if socket in ready:
                    while True:
                        try:
                            peer, payload, *upload = socket.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        self._take(peer, payload, upload)
        finally:
            socket.close()
            with self._wake_lock:  # a reply finished after this is dropped: nobody reads it
                os.close(self._wake_read)
                os.close(self._wake_write)
                self._wake_read = self._wake_write = -1

    def _take(self, peer: bytes, payload: bytes, upload: list[bytes]) -> None:
        try:
            message = wire.REQUESTS.decode(payload)
        except Exception:  # a peer speaking something else: nothing to answer to
            log.warning("an undecodable request was dropped", extra={"bytes": len(payload)})
            return
        if isinstance(message, wire.Cancel):
            work = self.in_flight.pop((peer, message.id), None)
            if work is not None:
                work.cancel()
            return
        if isinstance(message, wire.Generate | wire.OnThread):
            stop = self.in_flight[(peer, message.id)] = _Stop()
            threading.Thread(target=self._on_thread, args=(peer, message, stop), daemon=True).start()
            return
        data = upload[0] if upload else b""
        if isinstance(message, wire.Embed) and self._submit_leased(
            peer, message, data, self.models.lease_if_loaded
        ):
            return  # texts for a loaded model: submitted right here
        # A model to load (seconds), or an upload to check or decode: not on the socket's
        # thread; a Cancel meanwhile sets the stop flag held for the request till then.
        stop = self.in_flight[(peer, message.id)] = _Stop()
        leased = (peer, message, data, self.models.lease, stop)
        threading.Thread(target=self._submit_leased, args=leased, daemon=True).start()

    def _submit_leased(
        self,
        peer: bytes,
        message: Batched,
        data: bytes,
        lease_of: Callable[[str, str], Lease | None],
        stop: _Stop | None = None,
    ) -> bool:
        """Submit `message` (its upload `data`) to its model's batcher under the lease
        `lease_of` gives, in the request's id context, an error answered as Failed, nothing
        done once `stop` is set (cancelled meanwhile); False if it gives none (not loaded)."""
        token = request_id_var.set(message.request_id)
        try:
            lease = lease_of(message.model, TASKS[type(message)])
            if lease is None:
                return False
            if stop is None or not stop.is_set():
                self._answer_when_done(peer, message.id, submit(message, data, lease), stop)
        except Exception as exc:
            self._fail(peer, message.id, exc)
        finally:
            if stop is not None and self.in_flight.get((peer, message.id)) is stop:
                del self.in_flight[(peer, message.id)]  # the load failed, or the Cancel came
            request_id_var.reset(token)
        return True

    def _answer_when_done(self, peer: bytes, ident: int, submitted: Submitted, stop: _Stop | None) -> None:
        """Send the answer when the batch is done (Failed for its error; nothing once cancelled:
        the client has gone, or answered its own time-out)."""
        key = (peer, ident)
        self.in_flight[key] = future = submitted.future
        if stop is not None and stop.is_set():  # cancelled since the model loaded
            future.cancel()

        def done(finished: Future[Any]) -> None:
            self.in_flight.pop(key, None)
            if finished.cancelled():
                return
            exc = finished.exception()
            if exc is not None:
                self._fail(peer, ident, exc)
                return
            reply, rows = submitted.answer(ident, finished.result())
            self._send(peer, [wire.encode(reply)] if rows is None else [wire.encode(reply), rows.tobytes()])

        future.add_done_callback(done)

    def _on_thread(self, peer: bytes, message: wire.Generate | wire.OnThread, stop: _Stop) -> None:
        """Run a generation or a collections' request on this thread, in its request id's
        context: once `stop` is set (its Cancel) it ends at the next check and nothing more is
        answered; an error is answered as Failed."""
        token = request_id_var.set(message.request_id)
        try:
            if isinstance(message, wire.Generate):
                generation_work(message, self.models, stop, partial(self._reply, peer))
            else:
                reply = thread_work(message, self.models, self.keeps, stop)
                if not stop.is_set():
                    self._reply(peer, reply)
        except ClientGone:
            pass
        except Exception as exc:
            if not stop.is_set():
                self._fail(peer, message.id, exc)
        finally:
            self.in_flight.pop((peer, message.id), None)
            request_id_var.reset(token)

    def _fail(self, peer: bytes, ident: int, exc: BaseException) -> None:
        if isinstance(exc, AltlasError):
            reply = wire.Failed(
                ident, error_kind(exc), exc.message, exc.field, getattr(exc, "retry_after_s", None)
            )
        else:
            log.error("request failed", exc_info=exc)
            reply = wire.Failed(ident, "internal", "internal error in the engine")
        self._reply(peer, reply)

    def _reply(self, peer: bytes, reply: wire.Reply) -> None:
        self._send(peer, [wire.encode(reply)])

    def _send(self, peer: bytes, frames: list[bytes]) -> None:
        """Queue a reply for the socket's thread (any thread may call this) and wake it; once the
        engine has stopped serving, nothing (a pipe's number closed may be another file's now)."""
        with self._wake_lock:
            if self._wake_write < 0:
                return
            self._outbox.put((peer, frames))
            with contextlib.suppress(BlockingIOError):
                os.write(self._wake_write, b"\0")


class _Stop(threading.Event):
    """A generation's stop flag, set by its Cancel."""

    def cancel(self) -> None:
        self.set()
