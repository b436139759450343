"""Quorum approvals over HTTP: a key's approval policy, and the signing requests that
wait for approvals (list, show, approve, deny).

A signing with such a key answers ``202 Accepted`` with the request (:func:`outcome`);
``GET /api/v1/requests/{id}`` answers its state and, once signed, ``result``: the very
body a direct signing returns.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.encoders import jsonable_encoder
from pydantic import Field
from starlette.responses import JSONResponse

from signgate.api.deps import Ctx, Who
from signgate.api.schemas import Strict
from signgate.errors import InvalidInput
from signgate.service import keys, requests
from signgate.service.sign_request import SignOutcome
from signgate.service.views import KeyView, RequestView, SignResult

router = APIRouter(prefix="/api/v1")
PENDING: dict[int | str, dict[str, Any]] = {202: {"model": RequestView,
                 "description": "The key needs approvals: the request that waits for them"}}


def outcome(result: SignOutcome) -> SignResult | JSONResponse:
    """A signing's answer: the result (200), or the request awaiting approvals (202)."""
    if isinstance(result, RequestView):
        return pending(result)
    return result


def pending(request: RequestView) -> JSONResponse:
    """The 202 of a signing that waits for approvals: the request."""
    return JSONResponse(jsonable_encoder(request), status_code=202)


class ApprovalPolicyBody(Strict):
    approvals: int | None = Field(None, ge=0, le=16,
                                  description="approvers needed; 0: none; absent: unchanged")
    approver_scope: str | None = Field(
        None, max_length=127, description="whose approver grants count: PROJECT, "
        "PROJECT/KEY or '*' (default: the key)")
    require_builders: int | None = Field(
        None, ge=0, le=16, description="independent builders that must submit the same "
        "digest for an artifact and release label; 0: none; absent: unchanged")


class ApproveBody(Strict):
    comment: str | None = Field(None, max_length=1000)


class DenyBody(Strict):
    reason: str = Field(min_length=1, max_length=1000)


@router.post("/projects/{project}/keys/{key}/policy", tags=["keys", "approvals"])
def set_policy(project: str, key: str, body: ApprovalPolicyBody, ctx: Ctx,
               caller: Who) -> KeyView:
    """Quorum approvals for the key: each signing waits for M distinct approvers; and
    independent-build agreement: N distinct builders submit the same digest first."""
    ref = f"{project}/{key}"
    if body.approvals is None and body.require_builders is None:
        raise InvalidInput("a key policy needs approvals or require_builders")
    view = None
    if body.approvals is not None:
        view = keys.set_approval_policy(ctx, caller, ref, body.approvals, body.approver_scope)
    if body.require_builders is not None:
        view = keys.set_builder_policy(ctx, caller, ref, body.require_builders)
    assert view is not None
    return view


@router.get("/requests", tags=["approvals"])
def list_requests(ctx: Ctx, caller: Who, pending: bool = False) -> list[RequestView]:
    """Signing requests the caller may see (asked, may approve, administers or audits)."""
    return requests.list_requests(ctx, caller, pending)


@router.get("/requests/{request_id}", tags=["approvals"])
def show_request(request_id: str, ctx: Ctx, caller: Who) -> RequestView:
    """A request's state; once signed, ``result`` is what a direct signing returns."""
    return requests.show(ctx, caller, request_id)


@router.post("/requests/{request_id}/approve", tags=["approvals"])
def approve(request_id: str, body: ApproveBody, ctx: Ctx, caller: Who) -> RequestView:
    """Approve (approver role on the request's scope; never the requester). The M-th
    approval has it signed before this answers."""
    return requests.approve(ctx, caller, request_id, body.comment)


@router.post("/requests/{request_id}/deny", tags=["approvals"])
def deny(request_id: str, body: DenyBody, ctx: Ctx, caller: Who) -> RequestView:
    """Deny: the request ends, whatever approvals it had."""
    return requests.deny(ctx, caller, request_id, body.reason)

