"""Request-scoped dependencies: the service context and the caller."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from signgate.service.context import Caller, Context


def get_context(request: Request) -> Context:
    return cast(Context, request.app.state.context)


def get_caller(request: Request) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        token = ""
    address = request.client.host if request.client else None
    return Caller(token.strip() or None, address)


Ctx = Annotated[Context, Depends(get_context)]
Who = Annotated[Caller, Depends(get_caller)]
