"""Release windows and quotas over HTTP: a key's release policy (offline, daily quota per
identity), and the release windows in which an offline key signs (open, close, list)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import Field

from signgate.api.deps import Ctx, Who
from signgate.api.schemas import Strict
from signgate.clock import parse_time
from signgate.policy.windows import (
    MAX_DAILY_QUOTA,
    MAX_SIGNERS,
    MAX_WINDOW_APPROVALS,
    MAX_WINDOW_SIGNATURES,
)
from signgate.service import keys, windows
from signgate.service.views import KeyView, ReleaseWindowView

router = APIRouter(prefix="/api/v1")
KEY = "/projects/{project}/keys/{key}"


class ReleasePolicyBody(Strict):
    offline: bool | None = Field(
        None, description="true: the key signs only inside an open release window")
    max_per_identity_per_day: int | None = Field(
        None, ge=0, le=MAX_DAILY_QUOTA,
        description="signatures per identity per UTC day with this key; 0: no quota")
    window_approvals: int | None = Field(
        None, ge=0, le=MAX_WINDOW_APPROVALS,
        description="approvals a release window needs before it opens; 0: none")


class WindowApproveBody(Strict):
    comment: str | None = Field(None, max_length=1000)


class WindowOpenBody(Strict):
    until: datetime = Field(description="when the window ends (ISO 8601; UTC without a zone)")
    max_signatures: int | None = Field(None, ge=1, le=MAX_WINDOW_SIGNATURES)
    signers: list[Annotated[str, Field(max_length=255)]] = Field(
        default_factory=list, max_length=MAX_SIGNERS,
        description="only these identities sign in it (default: any signer of the key)")
    label: str | None = Field(None, max_length=127)


@router.post(KEY + "/release-policy", tags=["keys", "release windows"])
def set_release_policy(project: str, key: str, body: ReleasePolicyBody, ctx: Ctx,
                       caller: Who) -> KeyView:
    """Offline (signs only inside an open release window) and the daily quota per
    identity (admins of the key; recorded)."""
    return keys.set_release_policy(ctx, caller, f"{project}/{key}", body.offline,
                                   body.max_per_identity_per_day, body.window_approvals)


@router.post(KEY + "/release-windows", status_code=201, tags=["release windows"])
def open_window(project: str, key: str, body: WindowOpenBody, ctx: Ctx,
                caller: Who) -> ReleaseWindowView:
    """Open a release window (admins of the key; recorded)."""
    return windows.open_window(ctx, caller, f"{project}/{key}",
                               parse_time(body.until.isoformat()), body.max_signatures,
                               body.signers, body.label)


@router.get(KEY + "/release-windows", tags=["release windows"])
def key_windows(project: str, key: str, ctx: Ctx, caller: Who,
                open_only: Annotated[bool, Query(alias="open")] = False,
                ) -> list[ReleaseWindowView]:
    return windows.list_windows(ctx, caller, f"{project}/{key}", open_only)


@router.get("/release-windows", tags=["release windows"])
def all_windows(ctx: Ctx, caller: Who,
                open_only: Annotated[bool, Query(alias="open")] = False,
                ) -> list[ReleaseWindowView]:
    """The release windows of every key the caller may see, newest first."""
    return windows.list_windows(ctx, caller, None, open_only)


@router.post("/release-windows/{window_id}/close", tags=["release windows"])
def close_window(window_id: str, ctx: Ctx, caller: Who) -> ReleaseWindowView:
    """Close an open window now (admins of its key; recorded)."""
    return windows.close_window(ctx, caller, window_id)


@router.post("/release-windows/{window_id}/approve", tags=["release windows"])
def approve_window(window_id: str, body: WindowApproveBody, ctx: Ctx,
                   caller: Who) -> ReleaseWindowView:
    """Approve a window that waits for approvals (approvers of its key, never its opener);
    the M-th approval opens it."""
    return windows.approve_window(ctx, caller, window_id, body.comment)
