"""What front processes and the server process say to each other over local sockets.

Lane channel (a stream socket, one per front process): frames of a 4-byte length and a payload:
kind, request number (the front's), status, path, header pairs, body.
- R (front -> server): a lane request: path, headers, body.
- A (server -> front): its answer: status, headers, body.
- D (server -> front): declined: the front hands the connection over with the request.
- C (front -> server): its client left: cancel the request.
- S (front -> server): the front process is serving the public port.

Handover channel (a SOCK_SEQPACKET socket: message boundaries kept, file descriptors passed):
a connection's descriptor with the first message, which also says how many bytes already read
from it follow (in that and further messages), for the server's HTTP stack to read first.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "ANSWER", "CLIENT_LEFT", "DECLINED", "REQUEST", "SERVING", "Frame", "FrameReader", "Handover",
    "HandoverReader", "Outbox", "encode", "send_connection",
]  # fmt: skip

REQUEST, ANSWER, DECLINED, CLIENT_LEFT, SERVING = b"R", b"A", b"D", b"C", b"S"

_HEAD = struct.Struct("<IcQHIII")  # length, kind, number, status, path, headers, body lengths
_LENGTH = struct.Struct("<I")
_CHUNK = 60_000  # bytes a handover message carries: well within a SEQPACKET socket's buffer


@dataclass(frozen=True, slots=True)
class Frame:
    kind: bytes
    number: int
    status: int = 0
    path: bytes = b""
    headers: list[tuple[bytes, bytes]] | None = None
    body: bytes = b""


def encode(
    kind: bytes,
    number: int,
    status: int = 0,
    path: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes = b"",
) -> bytes:
    """One frame. Header names and values never hold NUL (HTTP forbids it; the front checks)."""
    pairs = b"\0".join(part for pair in headers for part in pair) if headers else b""
    size = _HEAD.size - 4 + len(path) + len(pairs) + len(body)
    return b"".join(
        (_HEAD.pack(size, kind, number, status, len(path), len(pairs), len(body)), path, pairs, body)
    )


class Outbox:
    """Frames for a channel, written once per turn of the event loop: requests and answers come
    in bursts (a batch's answers finish together), and one write of a burst costs one system
    call instead of one a frame."""

    def __init__(self, loop: asyncio.AbstractEventLoop, write: Callable[[bytes], None]) -> None:
        self._loop = loop
        self._write = write
        self._frames: list[bytes] = []

    def send(self, frame: bytes) -> None:
        if not self._frames:
            self._loop.call_soon(self._flush)
        self._frames.append(frame)

    def _flush(self) -> None:
        frames, self._frames = self._frames, []
        self._write(b"".join(frames))


class FrameReader:
    """Frames out of a byte stream, however it arrives in pieces."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        buffer = self._buffer
        buffer += data
        frames: list[Frame] = []
        at = 0
        while len(buffer) - at >= _HEAD.size:
            size, kind, number, status, path_n, pairs_n, body_n = _HEAD.unpack_from(buffer, at)
            end = at + 4 + size
            if len(buffer) < end:
                break
            start = at + _HEAD.size
            path = bytes(buffer[start : start + path_n])
            start += path_n
            parts = bytes(buffer[start : start + pairs_n]).split(b"\0") if pairs_n else []
            start += pairs_n
            body = bytes(buffer[start : start + body_n])
            headers = list(zip(parts[::2], parts[1::2], strict=True))
            frames.append(Frame(kind, number, status, path, headers, body))
            at = end
        del buffer[:at]
        return frames


def send_connection(channel: socket.socket, connection: int, already_read: bytes) -> None:
    """Pass the connection whose descriptor is `connection`, and the bytes already read from it
    (its new owner reads them first), over the handover channel (blocking). The caller closes
    its own copy afterwards."""
    view = memoryview(already_read)
    first = _LENGTH.pack(len(already_read)) + bytes(view[:_CHUNK])
    socket.send_fds(channel, [first], [connection])
    for at in range(_CHUNK, len(already_read), _CHUNK):
        channel.sendall(view[at : at + _CHUNK])


@dataclass(frozen=True, slots=True)
class Handover:
    connection: socket.socket
    already_read: bytes


class HandoverReader:
    """Connections out of a handover channel's messages (read with socket.recv_fds)."""

    def __init__(self) -> None:
        self._fd: int | None = None
        self._missing = 0
        self._parts: list[bytes] = []

    def feed(self, data: bytes, fds: list[int]) -> Handover | None:
        if fds:
            for extra in fds[1:]:  # one per message; anything else is not ours to keep
                os.close(extra)
            if self._fd is not None:  # a handover cut short: its connection cannot be served
                os.close(self._fd)
            self._fd, (self._missing,) = fds[0], _LENGTH.unpack_from(data)
            self._parts, data = [], data[_LENGTH.size :]
        elif self._fd is None:
            return None  # stray bytes with no connection: nothing to do with them
        self._parts.append(data)
        self._missing -= len(data)
        if self._missing > 0:
            return None
        fd, self._fd = self._fd, None
        return Handover(socket.socket(fileno=fd), b"".join(self._parts))
