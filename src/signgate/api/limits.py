"""Limits on request bodies: their size (refused before they are read into memory) and
how long one may pause (a client that stops sending is disconnected).

The deadline for a request's *headers* cannot be kept here: the application is called
only once they are complete. ``api/protocol.py`` keeps it, in the HTTP protocol.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from signgate.errors import PayloadTooLarge, RequestTimeout, SigngateError


class BodyLimit:
    """ASGI middleware: a declared or streamed body over ``max_bytes`` gets a 413.

    A streamed (chunked) body is counted as it arrives; the error raised from ``receive``
    is a :class:`PayloadTooLarge`, which the app's error handler renders as problem+json.
    """

    def __init__(self, app: ASGIApp, max_bytes: int,
                 streamed: Callable[[str], bool] = lambda path: False) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # Routes that stream their body to disk and enforce their own limit (uploads of
        # artifacts to scan): they are not held to the JSON body limit.
        self.streamed = streamed

    def _error(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"request body is larger than the limit of {self.max_bytes} bytes")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.streamed(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit():
                if int(value) > self.max_bytes:
                    await self._refuse(send)
                    return
                # The server reads exactly the declared length (RFC 9112 §6.3): the body
                # cannot grow past it, so there is nothing left to count.
                await self.app(scope, receive, send)
                return
        seen = 0
        started = False
        exceeded = False

        async def limited() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    exceeded = True
                    raise self._error()
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if exceeded:
                # The framework may catch the error while parsing the body and answer
                # 400 itself: replace that answer with the 413.
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await self._refuse(send)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited, tracked)
        except PayloadTooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        await send_problem(send, 413, self._error())


class BodyIdleTimeout:
    """ASGI middleware: a request body that does not move for ``idle_seconds`` ends the
    request with 408 and closes the connection.

    The clock runs only while the application waits in ``receive`` for more of the body,
    so it measures the client alone: while the application is busy (writing to the spool,
    waiting for clamd) the server stops reading and the client is not to blame. Each
    chunk that arrives restarts it: an idle limit, not a total one, so a slow upload that
    keeps moving is never cut off however long it takes. The ``receive`` that times out
    raises :class:`RequestTimeout` into the application (an upload removes its spool file
    and records the refusal); whatever the application answers then is replaced by a 408
    with ``Connection: close`` (RFC 9110 §15.5.9), on which the server closes the
    connection, so the rest of the body is never waited for.
    """

    def __init__(self, app: ASGIApp, idle_seconds: float) -> None:
        self.app = app
        self.idle_seconds = idle_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        timed_out = False
        body_done = False
        started = False
        replaced = False
        error = RequestTimeout(f"the request body stopped arriving: nothing for "
                               f"{self.idle_seconds:g} s (http_body_idle_timeout_seconds)")

        async def guarded() -> Message:
            nonlocal timed_out, body_done
            if body_done:
                # Once the body is complete, a receive waits for the client to disconnect
                # (streamed responses listen for it): no deadline on that.
                return await receive()
            if timed_out:
                raise error
            try:
                async with asyncio.timeout(self.idle_seconds):  # no task per chunk
                    message = await receive()
            except TimeoutError:
                timed_out = True
                raise error from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def closing(message: Message) -> None:
            nonlocal started, replaced
            if replaced:
                return
            if message["type"] == "http.response.start":
                started = True
                if timed_out:
                    replaced = True
                    await send_problem(send, 408, error, close=True)
                    return
            await send(message)

        try:
            await self.app(scope, guarded, closing)
        except RequestTimeout:
            if not started:
                await send_problem(send, 408, error, close=True)


async def send_problem(send: Send, status: int, err: SigngateError, *,
                       close: bool = False) -> None:
    """A problem+json response from outside the application (same shape as
    ``api/problems.py`` gives)."""
    body = json.dumps({
        "type": f"urn:signgate:problem:{err.code}", "title": type(err).__name__,
        "status": status, "code": err.code, "detail": str(err),
    }).encode()
    headers = [(b"content-type", b"application/problem+json"),
               (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
