"""Reading the audit log and verifying its chain."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import false, or_, select
from sqlalchemy.orm import Session

from signgate.audit.model import Action, Outcome
from signgate.audit.verify import Progress, verify_chain
from signgate.errors import InvalidInput
from signgate.policy import decide
from signgate.policy.model import Actor
from signgate.service.context import Caller, Context, Target, require
from signgate.service.records.audit_scope import entry_in_scope
from signgate.service.views import AuditEntryView, AuditPage, AuditVerifyView
from signgate.store.models import AuditEntry

MAX_PAGE = 5000


@dataclass(frozen=True)
class AuditQuery:
    identity: str | None = None
    key: str | None = None
    action: str | None = None
    project: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after: int = 0
    limit: int = 1000
    outcome: str | None = None  # allowed or refused


def _view(e: AuditEntry) -> AuditEntryView:
    return AuditEntryView(e.seq, e.time, e.actor, e.action, e.outcome, e.subject, e.project,
                          e.key_ref, json.loads(e.details), e.prev_hash, e.entry_hash)


def query(ctx: Context, caller: Caller, q: AuditQuery) -> AuditPage:
    if not 1 <= q.limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be 1 to {MAX_PAGE}")
    if q.action is not None and q.action not in {a.value for a in Action}:
        known = ", ".join(sorted(a.value for a in Action))
        raise InvalidInput(f"unknown action {q.action!r}; known actions: {known}")
    if q.outcome is not None and q.outcome not in {o.value for o in Outcome}:
        raise InvalidInput(f"unknown outcome {q.outcome!r}; expected allowed or refused")

    def run(session: Session, actor: Actor) -> AuditPage:
        d = decide.may_read_audit_of(actor, q.project, q.key)
        require(d.allowed, d.reason)
        stmt = select(AuditEntry).where(AuditEntry.seq > q.after)
        scopes = decide.audit_scopes(actor)
        if scopes is not None:
            # Exactly the entries of the scopes held, whatever the filters: a key-scoped
            # auditor or admin does not read the other keys of the project, nor what is
            # about the project alone (its creation, its grants).
            stmt = stmt.where(or_(false(), *(entry_in_scope(s) for s in scopes)))
        if q.identity:
            stmt = stmt.where(AuditEntry.actor == q.identity)
        if q.key:
            stmt = stmt.where(AuditEntry.key_ref == q.key)
        if q.project:
            stmt = stmt.where(AuditEntry.project == q.project)
        if q.action:
            stmt = stmt.where(AuditEntry.action == q.action)
        if q.outcome:
            stmt = stmt.where(AuditEntry.outcome == q.outcome)
        if q.since:
            stmt = stmt.where(AuditEntry.time >= q.since)
        if q.until:
            stmt = stmt.where(AuditEntry.time < q.until)
        rows = session.execute(stmt.order_by(AuditEntry.seq).limit(q.limit + 1)).scalars().all()
        more = len(rows) > q.limit
        rows = rows[: q.limit]
        return AuditPage([_view(e) for e in rows], rows[-1].seq if more else None)

    return ctx.read(caller, Target(Action.AUDIT_READ, "audit log", q.project), run)


def verify(ctx: Context, caller: Caller, progress: Progress | None = None) -> AuditVerifyView:
    """Recompute the chain and the log's tree; ``progress`` (entries checked, entries to
    check) is told as it goes, first once the caller is allowed (0 checked)."""
    def run(session: Session, actor: Actor) -> AuditVerifyView:
        d = decide.may_read_audit(actor, None)
        require(d.allowed, d.reason)
        r = verify_chain(session, progress=progress)
        return AuditVerifyView(r.ok, r.entries, r.head_seq, r.head_hash, r.first_bad_seq,
                               r.problem)

    # The head and every entry from one snapshot: a batch committed between reading the
    # entries and the head would otherwise look like entries appended behind signgate's
    # back, a false alarm that would make a real one worthless.
    return ctx.read(caller, Target(Action.AUDIT_READ, "audit chain"), run, snapshot=True)
