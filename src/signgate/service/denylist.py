"""The hash deny-list: artifacts that must never be signed, whatever the scanners say.

Global admins only (an entry blocks signing in every project); every change is audited.
"""

from __future__ import annotations

import re

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from signgate.audit.model import Action, Outcome, Record
from signgate.errors import Conflict, ErrorCode, InvalidInput, NotFound
from signgate.policy import decide
from signgate.policy.model import Actor
from signgate.service.context import Caller, Context, Target, require
from signgate.service.views import DenyListView
from signgate.store.models import DenyListEntry

_SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_REASON = 500


def check_sha256(value: str) -> str:
    digest = value.strip().lower()
    if not _SHA256.fullmatch(digest):
        raise InvalidInput("expected a SHA-256 as 64 hex digits", code=ErrorCode.BAD_DIGEST)
    return digest


def _view(row: DenyListEntry) -> DenyListView:
    return DenyListView(row.sha256, row.reason, row.created_by, row.created_at)


def add(ctx: Context, caller: Caller, sha256: str, reason: str) -> DenyListView:
    digest = check_sha256(sha256)
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON or any(ord(c) < 32 for c in reason):
        raise InvalidInput(f"a reason of 1 to {MAX_REASON} printable characters is required")

    def run(session: Session, actor: Actor) -> DenyListView:
        d = decide.may_manage(actor, None)
        require(d.allowed, d.reason)
        if session.execute(select(DenyListEntry.id)
                           .where(DenyListEntry.sha256 == digest)).first():
            raise Conflict(f"{digest} is already on the deny-list")
        row = DenyListEntry(sha256=digest, reason=reason, created_by=actor.name,
                            created_at=ctx.clock.now())
        session.add(row)
        session.flush()
        ctx.record(session, Record(actor.name, Action.DENY_ADD, Outcome.ALLOWED, digest,
                                   details={"reason": reason}))
        return _view(row)

    return ctx.write(caller, Target(Action.DENY_ADD, digest), run)


def remove(ctx: Context, caller: Caller, sha256: str) -> None:
    digest = check_sha256(sha256)

    def run(session: Session, actor: Actor) -> None:
        d = decide.may_manage(actor, None)
        require(d.allowed, d.reason)
        gone = session.execute(delete(DenyListEntry).where(DenyListEntry.sha256 == digest))
        if not gone.rowcount:  # type: ignore[attr-defined]
            raise NotFound(f"{digest} is not on the deny-list")
        ctx.record(session, Record(actor.name, Action.DENY_REMOVE, Outcome.ALLOWED, digest))

    ctx.write(caller, Target(Action.DENY_REMOVE, digest), run)


def list_entries(ctx: Context, caller: Caller) -> list[DenyListView]:
    def run(session: Session, actor: Actor) -> list[DenyListView]:
        d = decide.may_manage(actor, None)
        require(d.allowed, d.reason)
        rows = session.execute(select(DenyListEntry).order_by(DenyListEntry.created_at))
        return [_view(r) for r in rows.scalars()]

    return ctx.read(caller, Target(Action.READ, "deny-list"), run)
