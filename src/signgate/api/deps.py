"""Request-scoped dependencies: the service context and the caller.

Both are ``async`` so that FastAPI runs them inline instead of in its thread pool.
"""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request
from starlette.types import Scope

from signgate.service.context import Caller, Context


async def get_context(request: Request) -> Context:
    return cast(Context, request.app.state.context)


async def get_caller(request: Request) -> Caller:
    return caller_from(request.scope)


def caller_from(scope: Scope) -> Caller:
    """The bearer token (if any) and the client's address of an ASGI request."""
    header = b""
    for name, value in scope["headers"]:
        if name == b"authorization":
            header = value
            break
    scheme, _, token = header.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        token = ""
    client = scope.get("client")
    return Caller(token.strip() or None, client[0] if client else None)


Ctx = Annotated[Context, Depends(get_context)]
Who = Annotated[Caller, Depends(get_caller)]
