"""The single-digest signing route without the framework's per-request machinery.

``POST /api/v1/projects/{project}/keys/{key}/sign`` is the request a build farm sends by
the thousand, and profiles of ``signgate serve`` put most of its cost outside signing:
FastAPI's dependency solving, route matching over every route, the middleware stack,
response-model validation. :class:`FastSign` is a small ASGI application in front of the
FastAPI one. For that one route it reads the body, validates it with the same pydantic
model in one JSON decode (pydantic-core's parser), builds the same
:class:`~signgate.service.sign_request.SignRequest` and awaits the same service function
(:func:`signgate.service.signing.sign_async`, group commit and all), then answers with the
same bytes the FastAPI route would.

Everything else goes to the FastAPI application untouched, and so does a signing request
this class does not take on itself: a body that does not validate (so that the 422 says
exactly what FastAPI's says), a body without a length or over the limit (``BodyLimit``
answers), any other method. The FastAPI route stays registered: it documents the
operation in the OpenAPI schema and answers what is handed to it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, Final

from pydantic import TypeAdapter, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from signgate.api.deps import caller_from
from signgate.api.limits import send_problem
from signgate.api.problems import error_response
from signgate.api.requests import pending
from signgate.api.schemas import SignRequest
from signgate.errors import RequestTimeout, SigngateError
from signgate.service import signing
from signgate.service.context import Context
from signgate.service.views import RequestView, SignResult

PREFIX: Final = "/api/v1/projects/"
_RESULT: Final = TypeAdapter(SignResult)
_JSON: Final = [(b"content-type", b"application/json")]


def signing_route(path: str) -> tuple[str, str] | None:
    """``(project, key)`` when ``path`` is ``/api/v1/projects/P/keys/K/sign``."""
    if not path.startswith(PREFIX) or not path.endswith("/sign"):
        return None
    parts = path[len(PREFIX):-len("/sign")].split("/")
    if len(parts) != 3 or parts[1] != "keys" or not parts[0] or not parts[2]:
        return None
    return parts[0], parts[2]


def _json_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    """The declared length of a JSON body; None when there is none or it is not JSON as
    FastAPI's route would parse it (``Content-Type: application/json``)."""
    length: int | None = None
    json = False
    for name, value in headers:
        if name == b"content-length":
            length = int(value) if value.isdigit() else None
        elif name == b"content-type":
            json = value.partition(b";")[0].strip().lower() == b"application/json"
    return length if json else None


class FastSign:
    """ASGI: the signing route itself, everything else to ``app``."""

    def __init__(self, app: ASGIApp, ctx: Context) -> None:
        self.app = app
        self.ctx = ctx
        self.max_bytes = ctx.settings.max_body_bytes
        self.idle_seconds = ctx.settings.http_body_idle_timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = (signing_route(scope["path"])
                 if scope["type"] == "http" and scope["method"] == "POST" else None)
        length = _json_length(scope["headers"]) if route is not None else None
        if route is None or length is None or length > self.max_bytes:
            await self.app(scope, receive, send)
            return
        try:
            body = await self._body(receive)
        except RequestTimeout as exc:
            await send_problem(send, 408, exc, close=True)
            return
        try:
            parsed = SignRequest.model_validate_json(body)
        except ValidationError:
            # FastAPI says what is wrong, in its words: hand it the body as it came.
            await self.app(scope, _replay(body, receive), send)
            return
        project, key = route
        request = parsed.to_service(caller_from(scope), project, key)
        try:
            outcome = await signing.sign_async(self.ctx, request)
        except SigngateError as exc:
            await error_response(exc)(scope, receive, send)
            return
        if isinstance(outcome, RequestView):  # 202: the request waits for approvals
            await pending(outcome)(scope, receive, send)
        else:
            await _send_json(send, 200, _RESULT.dump_json(outcome))

    async def _body(self, receive: Receive) -> bytes:
        """The whole body; a pause of ``idle_seconds`` between chunks is a 408, as
        ``BodyIdleTimeout`` has it for every other route."""
        chunks: list[bytes] = []
        while True:
            try:
                async with asyncio.timeout(self.idle_seconds):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeout(
                    f"the request body stopped arriving: nothing for {self.idle_seconds:g} s "
                    "(http_body_idle_timeout_seconds)") from None
            if message["type"] != "http.request":  # the client went away
                raise RequestTimeout("the client disconnected before its request body ended")
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands out ``body`` once, then waits on the real one."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _send_json(send: Send, status: int, body: bytes) -> None:
    headers: list[Any] = [*_JSON, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
