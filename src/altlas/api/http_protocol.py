"""uvicorn's httptools protocol with a time limit on the request head.

uvicorn limits how long a keep-alive connection may sit idle between requests, but not how
long a new connection may take to send its first request head, nor how long a head may take
to arrive once begun: a client that opens connections and sends nothing (or a byte now and
then) would hold them for ever. This protocol closes a connection whose request head is not
complete within `header_timeout_s` of the connection, or of the head's first byte.

It extends uvicorn's HttpToolsProtocol only through asyncio's and httptools' callbacks
(`connection_made`, `on_message_begin`, `on_headers_complete`, `connection_lost`), calling
each one's own implementation; uvicorn is pinned below its next minor version and a contract
test checks those callbacks are there. Without httptools (uvicorn then speaks h11) it is None
and the server runs uvicorn's own protocol.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["head_timeout_protocol"]


def head_timeout_protocol(header_timeout_s: float) -> type[asyncio.Protocol] | None:
    """uvicorn's httptools protocol closing connections whose request head is late; None
    without httptools."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return None

    class HeadTimeoutProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._head_timer = self.loop.call_later(header_timeout_s, self._head_late, transport)

        def on_message_begin(self) -> None:  # a request's first byte: its head has a time limit
            super().on_message_begin()
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(header_timeout_s, self._head_late, self.transport)

        def on_headers_complete(self) -> None:
            self._stop_head_timer()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_head_timer()
            super().connection_lost(exc)

        def _head_late(self, transport: asyncio.Transport) -> None:
            """No complete request head in time (nothing sent, or a head trickling in): close."""
            self._head_timer = None
            if not transport.is_closing():
                transport.close()

        def _stop_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

    return HeadTimeoutProtocol
