"""The server process's side of the HTTP front processes (see altlas.api.front).

`FrontedServer` is uvicorn's server without a listener of its own: once the app has started
(models loading), it opens the two local sockets in a private folder, starts the front
processes, and waits until each is serving the public port. Then:
- a lane request from a front process is answered as the server's own HTTP protocol answers
  one (altlas.api.lane_requests), and the answer goes back as a frame;
- a connection handed over is adopted into uvicorn with the bytes already read from it, and
  served from there on by the server's HTTP stack, like a connection it accepted itself.
A front process that dies is started again. On shutdown the front processes stop first (they
stop accepting and finish their lane requests), then uvicorn's own shutdown runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import uvicorn

from altlas.api.fast_lane import Answer
from altlas.api.front.wire import (
    ANSWER,
    CLIENT_LEFT,
    DECLINED,
    REQUEST,
    SERVING,
    Frame,
    FrameReader,
    Handover,
    HandoverReader,
    Outbox,
    encode,
)
from altlas.api.lane_requests import DirectLanes, LaneRequest

__all__ = ["FrontedServer", "free_port"]

log = logging.getLogger("altlas.front")

_READY_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 10.0


def free_port(host: str) -> int:
    """A port no one listens on now (for port 0: every front process needs the same one)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class FrontedServer(uvicorn.Server):
    """uvicorn's server, its public port served by `workers` front processes."""

    def __init__(self, config: uvicorn.Config, app: Any, workers: int) -> None:
        super().__init__(config)
        self.app = app  # altlas's app (its state holds the lanes), under uvicorn's wrappers
        self.workers = workers
        self.hub: _Hub | None = None
        self.failed = False  # the front processes did not start

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])  # the app starts; no listener: the front processes listen
        if self.should_exit:
            return
        config = self.config

        def protocol() -> asyncio.Protocol:  # as uvicorn makes one for a connection it accepts
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=self.server_state, app_state=self.lifespan.state
            )

        # uvicorn sets its default headers (date, server) on its loop's first tick, after startup;
        # connections handed over while the fronts start are served before that
        await self.on_tick(0)
        self.hub = _Hub(self.app, protocol, config.host, config.port, self.workers, config.timeout_keep_alive)
        try:
            await self.hub.start()
        except RuntimeError as exc:
            log.error(str(exc))
            await self.hub.stop()
            self.should_exit = self.failed = True
            self.hub = None
            return
        log.info("serving on http://%s:%d through %d front processes", config.host, config.port, self.workers)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.hub is not None:
            await self.hub.stop()
        await super().shutdown(sockets=sockets)


class _Hub:
    def __init__(
        self, app: Any, protocol: Any, host: str, port: int, workers: int, keep_alive_s: float = 5.0
    ) -> None:
        self.keep_alive_s = keep_alive_s
        self.header_timeout_s: float = app.state.settings.header_timeout_s
        self.protocol = protocol
        self.host, self.port = host, port
        self.count = workers
        self.lanes = DirectLanes(app)
        self.loop = asyncio.get_running_loop()
        self.folder = Path(tempfile.mkdtemp(prefix="altlas-front-"))  # 0700: only this user connects
        self.lane_path = str(self.folder / "lanes.sock")
        self.handover_path = str(self.folder / "handover.sock")
        self.processes: list[subprocess.Popen[bytes]] = []
        self.serving = 0
        self.stopping = False
        self.servers: list[asyncio.AbstractServer] = []
        self.handover: socket.socket | None = None
        self.channels: set[socket.socket] = set()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.watcher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.servers.append(await self.loop.create_unix_server(lambda: _LaneChannel(self), self.lane_path))
        self.handover = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.handover.bind(self.handover_path)
        self.handover.listen(64)
        self.handover.setblocking(False)
        self.loop.add_reader(self.handover.fileno(), self._accept_channel)
        self.processes = [self._spawn() for _ in range(self.count)]
        deadline = self.loop.time() + _READY_TIMEOUT_S
        while self.serving < self.count:
            failed = [p for p in self.processes if p.poll() is not None]
            if failed:
                raise RuntimeError(
                    f"a front process exited with code {failed[0].returncode} before serving "
                    f"http://{self.host}:{self.port} (is the port taken?)"
                )
            if self.loop.time() > deadline:
                raise RuntimeError(f"the front processes did not start in {_READY_TIMEOUT_S:g} s")
            await asyncio.sleep(0.02)
        self.watcher = self.loop.create_task(self._watch())

    async def stop(self) -> None:
        self.stopping = True
        if self.watcher is not None:
            self.watcher.cancel()
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = self.loop.time() + _STOP_TIMEOUT_S
        while any(p.poll() is None for p in self.processes) and self.loop.time() < deadline:
            await asyncio.sleep(0.02)
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        for server in self.servers:
            server.close()
        if self.handover is not None:
            self.loop.remove_reader(self.handover.fileno())
            self.handover.close()
        for channel in self.channels:
            self.loop.remove_reader(channel.fileno())
            channel.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _spawn(self) -> subprocess.Popen[bytes]:
        command = [
            sys.executable, "-m", "altlas.api.front.worker", "--host", self.host, "--port", str(self.port),
            "--lanes", ",".join(self.lanes.lanes), "--max-body", str(self.lanes.max_body),
            "--keep-alive-s", str(self.keep_alive_s), "--header-timeout-s", str(self.header_timeout_s),
            "--lane-socket", self.lane_path, "--handover-socket", self.handover_path,
        ]  # fmt: skip
        return subprocess.Popen(command, env=os.environ.copy())

    async def _watch(self) -> None:
        """Start again a front process that died (its connections are gone with it)."""
        while not self.stopping:
            await asyncio.sleep(0.5)
            for i, process in enumerate(self.processes):
                if process.poll() is not None and not self.stopping:
                    log.warning("front process %d exited with code %s: starting another", process.pid,
                                process.returncode)  # fmt: skip
                    self.processes[i] = self._spawn()

    # connections handed over

    def _accept_channel(self) -> None:
        assert self.handover is not None
        try:
            channel, _ = self.handover.accept()
        except BlockingIOError:
            return
        channel.setblocking(False)
        self.channels.add(channel)
        self.loop.add_reader(channel.fileno(), self._receive, channel, HandoverReader())

    def _receive(self, channel: socket.socket, reader: HandoverReader) -> None:
        while True:
            try:
                data, fds, _flags, _address = socket.recv_fds(channel, 65_536, 4)
            except BlockingIOError:
                return
            except OSError:
                data, fds = b"", []
            if not data and not fds:  # the front process is gone
                self.loop.remove_reader(channel.fileno())
                self.channels.discard(channel)
                channel.close()
                return
            handover = reader.feed(data, fds)
            if handover is not None:
                task = self.loop.create_task(self._adopt(handover))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

    async def _adopt(self, handover: Handover) -> None:
        """Serve a handed-over connection as if accepted here: the bytes already read first."""

        def protocol() -> asyncio.Protocol:
            made: asyncio.Protocol = self.protocol()
            connection_made = made.connection_made

            def first_the_bytes_read(transport: asyncio.BaseTransport) -> None:
                connection_made(transport)
                if handover.already_read:  # before the transport reads anything itself
                    made.data_received(handover.already_read)

            made.connection_made = first_the_bytes_read  # type: ignore[method-assign]
            return made

        handover.connection.setblocking(False)
        try:
            await self.loop.connect_accepted_socket(protocol, handover.connection)
        except OSError:
            handover.connection.close()


class _LaneChannel(asyncio.Protocol):
    """One front process's lane requests."""

    def __init__(self, hub: _Hub) -> None:
        self.hub = hub
        self.reader = FrameReader()
        self.pending: dict[int, LaneRequest] = {}
        self.transport: Any = None
        self.server = (hub.host, hub.port)
        self.outbox = Outbox(hub.loop, self._write)

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        for frame in self.reader.feed(data):
            if frame.kind == REQUEST:
                self._request(frame)
            elif frame.kind == CLIENT_LEFT:
                request = self.pending.pop(frame.number, None)
                if request is not None:
                    request.client_left()
            elif frame.kind == SERVING:
                self.hub.serving += 1

    def connection_lost(self, exc: Exception | None) -> None:
        for request in self.pending.values():
            request.client_left()
        self.pending.clear()

    def _request(self, frame: Frame) -> None:
        lanes = self.hub.lanes
        headers = frame.headers or []
        path = frame.path.decode("latin-1")
        lane = lanes.take("POST", path, headers)
        if lane is None:
            self.outbox.send(encode(DECLINED, frame.number))
            return
        scope = {
            "type": "http", "http_version": "1.1", "method": "POST", "scheme": "http", "path": path,
            "raw_path": frame.path, "root_path": "", "query_string": b"", "headers": headers,
            "server": self.server, "client": None,
        }  # fmt: skip
        request = lanes.begin(lane, scope, frame.body, partial(self._reply, frame.number), self.hub.loop)
        if request.declined:
            self.outbox.send(encode(DECLINED, frame.number))
        elif not request.done:
            self.pending[frame.number] = request

    def _reply(self, number: int, answer: Answer, request_id: str) -> None:
        self.pending.pop(number, None)
        pairs = answer.header_pairs(request_id)
        self.outbox.send(encode(ANSWER, number, answer.status, b"", pairs, answer.body))

    def _write(self, data: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(data)
