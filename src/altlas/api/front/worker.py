"""A front process: reads HTTP on the public port, answers the lanes' requests, hands the rest over.

    python -m altlas.api.front.worker --host H --port P --lanes /v1/embeddings --max-body N
                                      --keep-alive-s S --header-timeout-s S
                                      --lane-socket PATH --handover-socket PATH

Started by the server process (altlas.api.front.hub), never by hand. It listens with
SO_REUSEPORT beside its siblings, so the kernel spreads connections over them. On each
connection it reads requests one at a time. A request it can pass on as a lane request is an
HTTP/1.1 POST to a lane's path, with a Content-Length within the limit and nothing unusual
(no chunked body, no Expect, no Upgrade, no folded header, no query string): it goes to the
server process as a frame, and the answer frame is written back. Anything else, and a lane
request the server declines, is handed over: the connection and the bytes read since that
request began go to the server process, whose HTTP stack serves the connection from there on.
A head with a CR or LF not part of a CRLF is handed over at once (uvicorn answers it 400 and
closes the connection, as without fronts).

A connection idle past the keep-alive time (uvicorn's setting, 5 s by default) is closed, as
uvicorn closes its own; so is one that sends no complete request head within the header timeout
(ALTLAS_HEADER_TIMEOUT_S) after it opened or got its last answer. A connection is not read while
its lane request runs and it has sent more than 64 KiB beyond it (uvicorn's high-water mark): what
a client pipelines meanwhile stays in its socket.

The process exits when the server process goes (its lane channel closes) or on SIGTERM/SIGINT,
after answering the requests it has in flight (up to a few seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

from altlas.api.front.wire import (
    ANSWER,
    CLIENT_LEFT,
    DECLINED,
    REQUEST,
    SERVING,
    Frame,
    FrameReader,
    Outbox,
    encode,
    send_connection,
)

__all__ = ["main"]

_MAX_HEAD = 16_384  # a request head longer than this is handed over (the stack answers it)
_HIGH_WATER = 65_536  # bytes read ahead of a lane request in flight before reading pauses (uvicorn's)


def _status_line(status: int) -> bytes:
    """As uvicorn writes it (its phrases are http.HTTPStatus's), for every status a lane answers."""
    try:
        phrase = HTTPStatus(status).phrase.encode()
    except ValueError:
        phrase = b""
    return b"HTTP/1.1 %d %s\r\n" % (status, phrase)


_STATUS_LINES = {status: _status_line(status) for status in range(100, 600)}
_REFUSE = (b"transfer-encoding", b"expect", b"upgrade")


def _bare_line_end(data: bytearray, end: int) -> bool:
    """Whether data[:end] holds a CR or LF that is not part of a CRLF (uvicorn answers 400)."""
    crlf = data.count(b"\r\n", 0, end)
    return data.count(b"\r", 0, end) != crlf or data.count(b"\n", 0, end) != crlf


class _Date:
    """The Date header, formatted once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._line = b""

    def line(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._line = b"date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
        return self._line


class Front:
    """This process's end of the channels, and its connections' requests in flight."""

    def __init__(
        self,
        lanes: frozenset[bytes],
        max_body: int,
        handover: socket.socket,
        keep_alive_s: float = 5.0,
        header_timeout_s: float = 10.0,
    ) -> None:
        self.lanes = lanes
        self.max_body = max_body
        self.keep_alive_s = keep_alive_s
        self.header_timeout_s = header_timeout_s
        self.handover = handover
        self.lane_channel: asyncio.Transport | None = None
        self.waiting: dict[int, Connection] = {}  # request number -> its connection
        self.connections: set[Connection] = set()
        self.date = _Date()
        self._numbers = 0
        self.loop = asyncio.get_running_loop()
        self.gone = self.loop.create_future()  # set when the server process goes
        self.outbox = Outbox(self.loop, self._write)

    def send(
        self, connection: Connection, path: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> int:
        self._numbers += 1
        number = self._numbers
        self.waiting[number] = connection
        self.outbox.send(encode(REQUEST, number, 0, path, headers, body))
        return number

    def client_left(self, number: int) -> None:
        if self.waiting.pop(number, None) is not None:
            self.outbox.send(encode(CLIENT_LEFT, number))

    def _write(self, data: bytes) -> None:
        if self.lane_channel is not None:
            self.lane_channel.write(data)

    async def close_idle(self) -> None:
        """Close keep-alive connections idle past `keep_alive_s`, as uvicorn does its own, and
        those with no complete request head `header_timeout_s` after they opened or were answered."""
        while True:
            await asyncio.sleep(min(1.0, self.keep_alive_s / 2, self.header_timeout_s / 2))
            now = self.loop.time()
            idle, head = now - self.keep_alive_s, now - self.header_timeout_s
            for connection in list(self.connections):
                if (
                    0 < connection.idle_since < idle and not connection.in_flight and not connection.buffer
                ) or 0 < connection.head_since < head:
                    connection.closed = True
                    connection.transport.close()

    def received(self, frame: Frame) -> None:
        connection = self.waiting.pop(frame.number, None)
        if connection is None:  # its client left meanwhile
            return
        if frame.kind == ANSWER:
            connection.answer(frame.status, frame.headers or [], frame.body)
        elif frame.kind == DECLINED:
            connection.hand_over()


class LaneChannel(asyncio.Protocol):
    def __init__(self, front: Front) -> None:
        self.front = front
        self.reader = FrameReader()

    def connection_made(self, transport: Any) -> None:
        self.front.lane_channel = transport

    def data_received(self, data: bytes) -> None:
        for frame in self.reader.feed(data):
            self.front.received(frame)

    def connection_lost(self, exc: Exception | None) -> None:
        self.front.lane_channel = None
        if not self.front.gone.done():
            self.front.gone.set_result(None)


class Connection(asyncio.Protocol):
    """One client connection, its requests read and answered one at a time."""

    def __init__(self, front: Front) -> None:
        self.front = front
        self.buffer = bytearray()
        self.transport: Any = None
        self.in_flight = 0  # the number of the lane request awaiting its answer, 0: none
        self.request = b""  # the bytes of that request, for a handover if it is declined
        self.keep_alive = True
        self.closed = False
        self.handed_over = False
        self.idle_since = 0.0  # when its last answer went out (0: a request is being read or run)
        self.head_since = 0.0  # since when its next request's head is awaited (0: it has come)
        self.reading_paused = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.front.connections.add(self)
        self.idle_since = self.head_since = self.front.loop.time()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.front.connections.discard(self)
        if self.in_flight:
            self.front.client_left(self.in_flight)
            self.in_flight = 0

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.idle_since = 0.0
        if not self.in_flight:
            self._next()
        self._flow()

    def _flow(self) -> None:
        """Read only while, with a lane request in flight, the client has sent at most
        `_HIGH_WATER` bytes beyond it (the rest waits in its socket)."""
        if self.closed or self.handed_over:
            return
        pause = self.in_flight != 0 and len(self.buffer) > _HIGH_WATER
        if pause != self.reading_paused:
            self.reading_paused = pause
            if pause:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    def _next(self) -> None:
        """Take the next complete request in the buffer, if there is one."""
        buffer = self.buffer
        end = buffer.find(b"\r\n\r\n")
        # a CR or LF alone, even in a head still coming (a CR at its end may be a CRLF's)
        if _bare_line_end(buffer, end if end >= 0 else len(buffer) - buffer.endswith(b"\r")):
            self.hand_over()  # uvicorn answers it 400 and closes the connection
            return
        if end < 0 and len(buffer) <= _MAX_HEAD:
            return  # the head is still coming
        if end < 0 or end > _MAX_HEAD:
            self.hand_over()
            return
        parsed = self._lane_request(bytes(buffer[:end]))
        if parsed is None:
            self.hand_over()
            return
        path, headers, length, keep_alive = parsed
        self.head_since = 0.0
        total = end + 4 + length
        if len(buffer) < total:
            return  # the body is still coming
        self.request = bytes(buffer[:total])
        del buffer[:total]
        self.keep_alive = keep_alive
        self.in_flight = self.front.send(self, path, headers, self.request[end + 4 :])

    def _lane_request(self, head: bytes) -> tuple[bytes, list[tuple[bytes, bytes]], int, bool] | None:
        """(path, headers, body length, keep-alive) of a request to pass on as a lane request,
        or None for one to hand over."""
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if (
            len(parts) != 3
            or parts[0] != b"POST"
            or parts[2] != b"HTTP/1.1"
            or parts[1] not in self.front.lanes
        ):
            return None
        headers: list[tuple[bytes, bytes]] = []
        length: int | None = None
        keep_alive = True
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip() or b"\0" in line or line[:1] in (b" ", b"\t"):
                return None  # malformed or folded: the stack says so
            name, value = name.lower(), value.strip()
            if name in _REFUSE:
                return None
            if name == b"content-length":
                if length is not None or not value.isdigit():
                    return None
                length = int(value)
            elif name == b"connection" and value.lower() == b"close":
                keep_alive = False
            headers.append((name, value))
        if length is None or length > self.front.max_body:
            return None
        return parts[1], headers, length, keep_alive

    def answer(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.in_flight = 0
        self.request = b""
        if self.closed:
            return
        head = [_STATUS_LINES.get(status) or _status_line(status), self.front.date.line()]
        for name, value in headers:
            head += [name, b": ", value, b"\r\n"]
        if not self.keep_alive:
            head.append(b"connection: close\r\n")
        head += [b"\r\n", body]
        self.transport.write(b"".join(head))
        if not self.keep_alive:
            self.transport.close()
            return
        self.head_since = self.front.loop.time()
        if self.buffer:  # a pipelined request came meanwhile
            self._next()
        else:
            self.idle_since = self.head_since
        self._flow()

    def hand_over(self) -> None:
        """The connection, with the current request and what followed it, to the server process."""
        already_read = self.request + bytes(self.buffer)
        self.in_flight, self.request = 0, b""
        self.buffer.clear()
        if self.closed:
            return
        self.handed_over, self.head_since = True, 0.0  # the server's own timeouts apply from now
        if not self.reading_paused:
            self.transport.pause_reading()  # what comes next stays in the socket, for the server to read
        self._send_over(already_read)

    def _send_over(self, already_read: bytes) -> None:
        if self.closed:
            return
        if self.transport.get_write_buffer_size():  # an answer still going out: hand over after it
            self.front.loop.call_later(0.001, self._send_over, already_read)
            return
        duplicate = os.dup(self.transport.get_extra_info("socket").fileno())
        try:
            send_connection(self.front.handover, duplicate, already_read)
        except OSError:
            pass  # the server process is gone: the connection closes with this process
        finally:
            os.close(duplicate)  # the server process holds its own copy now
        self.closed = True
        self.front.connections.discard(self)
        self.transport.abort()  # closes this process's copy only: the connection stays open


async def _serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    handover = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    handover.connect(args.handover_socket)
    lanes = frozenset(p.encode() for p in args.lanes.split(",") if p)
    front = Front(lanes, args.max_body, handover, args.keep_alive_s, args.header_timeout_s)
    server = await loop.create_server(
        lambda: Connection(front), args.host, args.port, reuse_port=True, backlog=2048, start_serving=False
    )
    await loop.create_unix_connection(lambda: LaneChannel(front), args.lane_socket)
    await server.start_serving()
    sweeper = loop.create_task(front.close_idle())
    assert front.lane_channel is not None
    front.lane_channel.write(encode(SERVING, 0))
    stop: asyncio.Future[None] = loop.create_future()

    def stopping() -> None:
        if not stop.done():
            stop.set_result(None)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping)
    await asyncio.wait([stop, front.gone], return_when=asyncio.FIRST_COMPLETED)
    server.close()
    sweeper.cancel()
    deadline = loop.time() + 5.0
    while front.waiting and not front.gone.done() and loop.time() < deadline:
        await asyncio.sleep(0.01)
    for connection in list(front.connections):
        connection.transport.close()
    handover.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="altlas HTTP front process (started by `altlas serve`)")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--lanes", required=True, help="comma-separated paths of the direct lanes")
    parser.add_argument("--max-body", type=int, required=True)
    parser.add_argument(
        "--keep-alive-s", type=float, default=5.0, help="idle keep-alive connections close after"
    )
    parser.add_argument(
        "--header-timeout-s", type=float, default=10.0, help="a request head not complete by then closes"
    )
    parser.add_argument("--lane-socket", required=True)
    parser.add_argument("--handover-socket", required=True)
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(_serve(args))
    except OSError as exc:
        print(f"altlas front: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
