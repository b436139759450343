"""Grants: identity x role x scope. Everything not granted is refused."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from signgate.audit.model import Action, Outcome, Record
from signgate.errors import Conflict, NotFound
from signgate.policy import decide
from signgate.policy.model import Actor, Role, Scope
from signgate.service.context import Caller, Context, Target, require
from signgate.service.records.identities import get_identity
from signgate.service.records.keys import get_key
from signgate.service.records.projects import get_project
from signgate.service.views import GrantView
from signgate.store.models import GrantRow, Identity


def _check_scope_exists(session: Session, scope: Scope) -> None:
    if scope.project is None:
        return
    if scope.key is None:
        get_project(session, scope.project)
    else:
        get_key(session, scope.project, scope.key)


def add(ctx: Context, caller: Caller, identity: str, role: str, scope: str) -> GrantView:
    r = Role.parse(role)
    s = Scope.parse(scope)
    target = Target(Action.GRANT_ADD, f"{identity} {r.value} {s}", s.project,
                    str(s) if s.key else None)

    def run(session: Session, actor: Actor) -> GrantView:
        d = decide.may_grant(actor, s)
        require(d.allowed, d.reason)
        _check_scope_exists(session, s)
        who = get_identity(session, identity)
        exists = session.execute(
            select(GrantRow.id).where(GrantRow.identity_id == who.id, GrantRow.role == r.value,
                                      GrantRow.scope == str(s))
        ).first()
        if exists:
            raise Conflict(f"identity {identity} already has {r.value} on {s}")
        row = GrantRow(identity_id=who.id, role=r.value, scope=str(s), created_at=ctx.clock.now())
        session.add(row)
        session.flush()
        ctx.record(session, Record(actor.name, Action.GRANT_ADD, Outcome.ALLOWED, target.subject,
                                   target.project, target.key_ref,
                                   {"identity": identity, "role": r.value, "scope": str(s)}))
        return GrantView(identity, r.value, str(s), row.created_at)

    return ctx.write(caller, target, run)


def remove(ctx: Context, caller: Caller, identity: str, role: str, scope: str) -> GrantView:
    r = Role.parse(role)
    s = Scope.parse(scope)
    target = Target(Action.GRANT_REMOVE, f"{identity} {r.value} {s}", s.project,
                    str(s) if s.key else None)

    def run(session: Session, actor: Actor) -> GrantView:
        d = decide.may_grant(actor, s)
        require(d.allowed, d.reason)
        who = get_identity(session, identity)
        row = session.execute(
            select(GrantRow).where(GrantRow.identity_id == who.id, GrantRow.role == r.value,
                                   GrantRow.scope == str(s))
        ).scalar_one_or_none()
        if row is None:
            raise NotFound(f"identity {identity} has no {r.value} grant on {s}")
        if who.name == actor.name and r is Role.ADMIN and s.is_global:
            raise Conflict("an identity cannot remove its own global admin grant")
        view = GrantView(identity, r.value, str(s), row.created_at)
        session.delete(row)
        ctx.record(session, Record(actor.name, Action.GRANT_REMOVE, Outcome.ALLOWED,
                                   target.subject, target.project, target.key_ref,
                                   {"identity": identity, "role": r.value, "scope": str(s)}))
        return view

    return ctx.write(caller, target, run)


def list_grants(ctx: Context, caller: Caller, identity: str | None = None) -> list[GrantView]:
    """Global admins see every grant; others see their own and those of projects they admin."""

    def run(session: Session, actor: Actor) -> list[GrantView]:
        stmt = select(GrantRow, Identity.name).join(Identity, GrantRow.identity_id == Identity.id)
        if identity is not None:
            get_identity(session, identity)
            stmt = stmt.where(Identity.name == identity)
        rows = session.execute(stmt.order_by(Identity.name, GrantRow.scope, GrantRow.role)).all()
        out = []
        for row, name in rows:
            scope = Scope.parse(row.scope)
            visible = name == actor.name or decide.may_grant(actor, scope).allowed
            if visible:
                out.append(GrantView(name, row.role, row.scope, row.created_at))
        return out

    return ctx.read(caller, Target(Action.READ, "grants"), run)
