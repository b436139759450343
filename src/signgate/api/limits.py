"""Refuse request bodies over the configured size before they are read into memory."""

from __future__ import annotations

import json
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from signgate.errors import PayloadTooLarge


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
        err = self._error()
        body = json.dumps({
            "type": f"urn:signgate:problem:{err.code}", "title": "PayloadTooLarge",
            "status": 413, "code": err.code, "detail": str(err),
        }).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/problem+json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
