"""Scanning: the hash deny-list (global admins), and artifact scans."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import Field

from signgate.api.deps import Ctx, Who
from signgate.api.schemas import Strict
from signgate.service import denylist
from signgate.service.views import DenyListView

router = APIRouter(prefix="/api/v1")


class DenyListAdd(Strict):
    sha256: str = Field(max_length=64, description="SHA-256 of the artifact, hex")
    reason: str = Field(max_length=500)


@router.get("/deny-list", tags=["scanning"])
def list_denied(ctx: Ctx, caller: Who) -> list[DenyListView]:
    return denylist.list_entries(ctx, caller)


@router.post("/deny-list", tags=["scanning"], status_code=201)
def add_denied(body: DenyListAdd, ctx: Ctx, caller: Who) -> DenyListView:
    return denylist.add(ctx, caller, body.sha256, body.reason)


@router.delete("/deny-list/{sha256}", tags=["scanning"], status_code=204,
               response_class=Response)
def remove_denied(sha256: str, ctx: Ctx, caller: Who) -> Response:
    denylist.remove(ctx, caller, sha256)
    return Response(status_code=204)
