"""Approvals: the signing requests waiting for the identity's decision
(``requests.list_requests``), each with its artifact, digest, requester, builders'
agreement and expiry; approve (with an optional comment) or deny (with a reason). The
M-th approval has the request signed before the page answers, as from the CLI."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from signgate.service import requests
from signgate.web.render import page
from signgate.web.routing import WebRoute
from signgate.web.session import PATH, Console, signed_in

router = APIRouter(route_class=WebRoute, include_in_schema=False)
Signed = Annotated[Console, Depends(signed_in)]
RequestId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")]


@router.get("/approvals")
def approval_queue(request: Request, console: Signed) -> Response:
    pending = requests.list_requests(console.ctx, console.caller, pending=True)
    mine = console.me.identity
    return page(request, "approvals.html", pending=pending, mine=mine)


@router.get("/approvals/{request_id}")
def approval_page(request: Request, console: Signed, request_id: RequestId) -> Response:
    r = requests.show(console.ctx, console.caller, request_id)
    return page(request, "approval.html", r=r)


@router.post("/approvals/{request_id}/approve")
def approve(console: Signed, request_id: RequestId,
            comment: Annotated[str, Form(max_length=1000)] = "") -> Response:
    requests.approve(console.ctx, console.caller, request_id, comment.strip() or None)
    return RedirectResponse(f"{PATH}approvals/{request_id}", 303)


@router.post("/approvals/{request_id}/deny")
def deny(console: Signed, request_id: RequestId,
         reason: Annotated[str, Form(max_length=1000)] = "") -> Response:
    requests.deny(console.ctx, console.caller, request_id, reason)
    return RedirectResponse(f"{PATH}approvals/{request_id}", 303)
