"""Request-scoped dependencies: the service context and the caller.

Both are ``async`` so that FastAPI runs them inline instead of in its thread pool.
"""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from signgate.api.observe import note_of
from signgate.service.context import Caller, Context


async def get_context(request: Request) -> Context:
    return cast(Context, request.app.state.context)


async def get_caller(request: Request) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        token = ""
    address = request.client.host if request.client else None
    return Caller(token.strip() or None, address, note_of(request.scope))


Ctx = Annotated[Context, Depends(get_context)]
Who = Annotated[Caller, Depends(get_caller)]
