"""The one place altlas extends uvicorn (api/http_protocol.py, the request-head time limit): the
callbacks it overrides are there on the installed uvicorn's httptools protocol, public ones
(asyncio's and httptools'), and the extended class is what `altlas serve` runs."""

from __future__ import annotations

import inspect

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from altlas.api.http_protocol import head_timeout_protocol

CALLBACKS = ("connection_made", "on_message_begin", "on_headers_complete", "connection_lost")


def test_the_overridden_callbacks_are_uvicorns_public_ones() -> None:
    protocol = head_timeout_protocol(1.0)
    assert protocol is not None and issubclass(protocol, HttpToolsProtocol)
    for name in CALLBACKS:
        assert callable(getattr(HttpToolsProtocol, name)), name
        assert name in vars(protocol), name  # overridden here, each calling uvicorn's own
        assert not name.startswith("_")
    overridden = {name for name, value in vars(protocol).items() if inspect.isfunction(value)}
    assert overridden - {"__init__", "_head_late", "_stop_head_timer"} == set(CALLBACKS)
