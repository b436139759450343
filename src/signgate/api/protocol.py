"""The HTTP/1.1 protocol 'signgate serve' runs: uvicorn's httptools protocol plus a
deadline for a request's headers.

Why a protocol of our own: uvicorn has no header-read deadline. Its only read timer,
``timeout_keep_alive``, is armed after a response and cancelled by the first byte that
arrives, and nothing is armed when a connection opens; so a client that connects and
sends nothing, or half a request line, holds the connection (and a file descriptor, and
a slot of ``limit_concurrency``) for ever, and a few thousand of them exhaust the server
(the "Slowloris" attack). The ASGI application cannot help: it is called only once the
headers are complete. The body has its own, idle, deadline in ``api/limits.py``, where the
application's reads can be told apart from the server's own back-pressure.

The rule: a request's headers must be complete within ``header_timeout`` seconds of the
connection opening, or of the previous response ending on a kept-alive connection;
otherwise the connection is closed without an answer (like nginx's
``client_header_timeout``). The deadline is not reset by bytes that trickle in.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from signgate.config import DEFAULT_HTTP_HEADER_TIMEOUT


class DeadlineProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that closes connections whose headers are late."""

    # Set in every worker process from config.toml (``configure``, called by the ASGI
    # factory before the server accepts connections).
    header_timeout: float = DEFAULT_HTTP_HEADER_TIMEOUT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        # A pipelined request waiting in the queue has its headers already.
        waiting = bool(self.pipeline)
        super().on_response_complete()
        if not waiting and not self.transport.is_closing():
            self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._header_deadline = self.loop.call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _expired(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def configure(header_timeout: float) -> None:
    DeadlineProtocol.header_timeout = header_timeout
